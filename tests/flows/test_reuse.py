"""Identical exports reuse their render: the same user, tool tree, grid and compression over unchanged inputs is
delivered from a copy of the earlier file, named for the new export, its estimate saying so; anything that
changes the bytes (an input file, the compression, another user, a file gone from the store) renders again."""

import hashlib
import json
import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from api.app import create_app
from flows.export_flow import export_flow
from flows.services.reuse import render_fingerprint
from flows.services.status import claim_export
from flows.services.submission import create_export
from flows.services.views import export_log_view
from models.catalogue import get_or_create_user
from models.db import get_engine
from models.rendered import rendered_of
from models.schemas import ExportRequest, TargetRequest
from models.status import ExportStatus
from models.tables import Export
from models.users import issue_api_token
from tests.conftest import SMALL_AOI
from tests.support.rows import set_row
from tests.support.stac import validate_stac

pytestmark = pytest.mark.usefixtures("ray_cluster", "prefect_server")


def run(session, owner, **fields) -> Export:
    """Order an export of 'alps' over the small AOI, run its flow here, and return its row, fresh."""
    fields = {"aoi": SMALL_AOI, "resolution": 480, "targets": [TargetRequest(kind="http")], **fields}
    export = create_export(session, owner=owner, request=ExportRequest(project="alps", **fields))
    session.commit()
    assert claim_export(export.id)
    export_flow(export.id)
    with Session(get_engine()) as fresh:
        done = fresh.get(Export, export.id)
    assert done.status == ExportStatus.success, done.error
    return done


def sha256_of(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_an_identical_export_is_delivered_from_a_copy_of_the_earlier_render(session, owner, project):
    first = run(session, owner)
    assert rendered_of(first).reused_from is None and first.render_fingerprint

    token = issue_api_token(session, owner)
    session.commit()
    client = TestClient(create_app(), headers={"Authorization": f"Bearer {token}"})
    body = {"project": "alps", "aoi": SMALL_AOI, "resolution": 480}
    assert client.post("/api/v1/exports/estimate", json=body).json()["reuses_export"] == first.id
    assert client.post("/api/v1/exports/estimate", json={**body, "compression": "zstd"}).json()["reuses_export"] is None

    second = run(session, owner)
    rendered, earlier = rendered_of(second), rendered_of(first)
    assert rendered.reused_from == first.id and second.render_fingerprint == first.render_fingerprint
    assert Path(second.artifact).name == f"export-{second.id}.tif" and second.artifact != first.artifact
    assert sha256_of(second.artifact) == sha256_of(first.artifact) == rendered.sha256 == earlier.sha256
    assert (rendered.bytes, rendered.width, rendered.height, rendered.quality) == (earlier.bytes, earlier.width,
                                                                                   earlier.height, earlier.quality)
    assert second.progress == 1.0 and second.tiles_done == second.tiles_total == earlier.tiles

    # Its STAC item and manifest name the new export's files; the STAC stays valid and its checksum true.
    item = json.loads(Path(rendered.stac_uri).read_text())
    assert len(validate_stac(item)) == 4  # the core schema and its three extensions; raises on any error
    assert item["id"] == f"export-{second.id}" and item["assets"]["data"]["href"] == f"./export-{second.id}.tif"
    assert item["assets"]["thumbnail"]["href"] == f"./export-{second.id}.png"
    assert item["assets"]["data"]["file:checksum"] == "1220" + rendered.sha256
    assert item["geometry"] == json.loads(Path(earlier.stac_uri).read_text())["geometry"]
    assert Path(rendered.quicklook_uri).read_bytes() == Path(earlier.quicklook_uri).read_bytes()
    manifest = json.loads(Path(rendered.manifest_uri).read_text())
    assert {f["name"] for f in manifest["files"]} == {f"export-{second.id}.tif", f"export-{second.id}.stac.json",
                                                      f"export-{second.id}.png"}

    lines = [line.message for line in export_log_view(session, owner=owner, export_id=second.id)]
    assert any(line.startswith(f"reused the render of export {first.id} ") for line in lines)
    assert not any(line.startswith("rendering ") for line in lines)  # no tile actor was asked for anything
    assert client.get(f"/api/v1/exports/{second.id}").json()["reused_from"] == first.id

    # Deleting the first export's file leaves the second's whole (a copy, not a reference).
    Path(first.artifact).unlink()
    assert sha256_of(second.artifact) == rendered.sha256


def test_an_identical_export_still_rendering_is_not_reused_and_its_twin_renders(session, owner, project):
    fields = {"aoi": SMALL_AOI, "resolution": 480}
    twin = create_export(session, owner=owner, request=ExportRequest(project="alps", **fields))
    session.commit()
    assert claim_export(twin.id)
    # The twin is mid-render: its fingerprint recorded (as its reuse check does first), no file yet.
    set_row(twin.id, status=ExportStatus.rendering, render_fingerprint=render_fingerprint(
        tool=twin.tool, grid=twin.grid, compression=twin.compression, resampling=twin.resampling))

    done = run(session, owner, **fields)

    assert done.rendered["reused_from"] is None and done.rendered["tiles"] > 0


def test_what_changes_the_bytes_renders_again(session, owner, project, sample_scene_paths):
    first = run(session, owner)

    other_compression = run(session, owner, compression="zstd")
    assert rendered_of(other_compression).reused_from is None

    someone_else = get_or_create_user(session, name="bob")
    session.commit()
    from models.catalogue import share_project

    share_project(session, owner=owner, project=project, with_user=someone_else)
    session.commit()
    assert rendered_of(run(session, someone_else)).reused_from is None  # another user's renders are their own

    stat = os.stat(sample_scene_paths[0])
    os.utime(sample_scene_paths[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # an input changed
    changed = run(session, owner)
    assert rendered_of(changed).reused_from is None and changed.render_fingerprint != first.render_fingerprint

    same_again = run(session, owner)
    assert rendered_of(same_again).reused_from == changed.id  # the newest render of the same inputs

    for uri in (changed.artifact, same_again.artifact):
        Path(uri).unlink()  # gone from the store (cleaned up by hand): nothing to reuse
    assert rendered_of(run(session, owner)).reused_from is None


def test_the_fingerprint_is_stable_and_none_when_an_input_cannot_tell(session, owner, project, sample_scene_paths):
    export = create_export(session, owner=owner, request=ExportRequest(project="alps", aoi=SMALL_AOI, resolution=480))
    session.commit()
    fields = {"grid": export.grid, "compression": "deflate", "resampling": "nearest"}
    fingerprint = render_fingerprint(tool=export.tool, **fields)
    assert fingerprint and fingerprint == render_fingerprint(tool=json.loads(json.dumps(export.tool)), **fields)
    assert render_fingerprint(tool=export.tool, **{**fields, "resampling": "bilinear"}) != fingerprint
    text, path = json.dumps(export.tool), str(sample_scene_paths[0])
    assert path in text
    assert render_fingerprint(tool=json.loads(text.replace(path, path + ".gone")), **fields) is None


def test_an_identical_sharded_export_gets_the_package_renamed_for_it(session, owner, project, monkeypatch):
    import zipfile

    import numpy as np
    import rasterio

    from models.settings import get_settings

    monkeypatch.setenv("GEOSHIP_TILE_SIZE", "64")
    monkeypatch.setenv("GEOSHIP_SHARD_MAX_BYTES", str(64 * 64 * 3 * 2))  # 64 px shards of 3 uint16 bands
    get_settings.cache_clear()
    first = run(session, owner, resolution=None)
    second = run(session, owner, resolution=None)
    rendered, earlier = rendered_of(second), rendered_of(first)
    assert rendered.kind == "package" and rendered.reused_from == first.id
    assert rendered.sha256 == sha256_of(second.artifact) and rendered.shards == earlier.shards
    old, new = f"export-{first.id}", f"export-{second.id}"
    with zipfile.ZipFile(first.artifact) as before, zipfile.ZipFile(second.artifact) as after:
        assert sorted(n.replace(old, new) for n in before.namelist()) == sorted(after.namelist())
        for info in before.infolist():
            if info.filename.endswith(".tif"):  # every shard's bytes as they were
                assert after.read(info.filename.replace(old, new)) == before.read(info)
        collection = json.loads(after.read(f"{new}/collection.json"))
        assert collection["id"] == new and old not in json.dumps(collection)
        validate_stac(collection)
        assert old not in after.read(f"{new}/{new}.vrt").decode()
    with rasterio.open(f"/vsizip/{first.artifact}/{old}/{old}.vrt") as a, \
            rasterio.open(f"/vsizip/{second.artifact}/{new}/{new}.vrt") as b:
        assert np.array_equal(a.read(), b.read()) and a.transform == b.transform
    sidecar = json.loads(Path(rendered.stac_uri).read_text())
    assert sidecar["id"] == new and old not in json.dumps(sidecar)
