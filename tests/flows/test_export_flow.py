"""The export flow end to end on the embedded defaults: SQLite (or the test database), Prefect, Ray."""

import copy
import hashlib
import json
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
import rasterio
import shapely.ops
from fastapi.testclient import TestClient
from pyproj import Transformer
from rasterio.features import geometry_mask
from rio_cogeo.cogeo import cog_validate
from shapely.geometry import shape
from sqlmodel import select

from api.app import create_app
from flows.export_flow import export_flow
from flows.services.status import claim_export
from flows.services.submission import create_export, plan_export
from flows.services.views import export_log_view, export_view
from models.errors import SceneReadError
from models.schemas import ExportRequest, TargetRequest
from models.settings import get_settings
from models.status import ExportStatus, TargetStatus
from models.tables import Download, Export
from ray_render.grid import OutputGrid
from tests.conftest import SMALL_AOI
from tests.support.stac import validate_stac

pytestmark = pytest.mark.usefixtures("ray_cluster", "prefect_server")


def submit(session, owner, **fields) -> int:
    export = create_export(session, owner=owner, request=ExportRequest(project="alps", **fields))
    session.commit()
    assert claim_export(export.id)
    return export.id


def run_to_success(session, export_id: int) -> Export:
    """Run the export's flow here; returns its row, fresh, after checking it succeeded."""
    export_flow(export_id)
    session.expire_all()
    export = session.get(Export, export_id)
    assert export.status == ExportStatus.success, export.error
    return export


def test_an_export_renders_delivers_and_downloads(session, owner, project, monkeypatch):
    monkeypatch.setenv("GEOSHIP_TILE_SIZE", "64")  # several tiles even on a small output
    from models.settings import get_settings

    get_settings.cache_clear()
    export_id = submit(session, owner, aoi=SMALL_AOI, targets=[TargetRequest(config={"ttl_hours": 1})])
    export_flow(export_id)

    session.expire_all()
    export = session.get(Export, export_id)
    view = export_view(session, export)
    assert view.status == ExportStatus.success, view.error
    assert view.progress == 1.0 and view.tiles_done == view.tiles_total > 1
    assert view.flow_run_id and export.finished_at is not None

    path = Path(view.artifact)
    assert cog_validate(str(path))[0]
    stac = json.loads(path.with_name(f"export-{export_id}.stac.json").read_text())  # the STAC item beside it
    assert stac["assets"]["data"]["file:checksum"] == "1220" + hashlib.sha256(path.read_bytes()).hexdigest()
    assert stac["properties"]["proj:shape"] == [export.grid["height"], export.grid["width"]]
    # The two sample scenes were acquired a week apart: the item spans both.
    assert (stac["properties"]["start_datetime"], stac["properties"]["end_datetime"]) == (
        "2024-07-02T10:12:00Z", "2024-07-09T10:05:00Z")
    assert export.rendered["stac_uri"] == str(path.with_name(f"export-{export_id}.stac.json"))
    validate_stac(stac)
    with rasterio.open(path) as out:
        assert out.crs.to_epsg() == 3857 and out.count == 3 and out.nodata == 0
        assert (out.width, out.height) == (export.grid["width"], export.grid["height"])
        assert max(out.width, out.height) <= 1024  # small enough for exact statistics, recomputed here
        pixels, transform = out.read(), out.transform
    for band, described in zip(pixels, stac["assets"]["data"]["raster:bands"], strict=True):
        values = band[band != 0].astype(np.float64)
        assert (described["statistics"]["minimum"], described["statistics"]["maximum"]) == (values.min(), values.max())
        assert described["statistics"]["mean"] == pytest.approx(values.mean())
    valid = (pixels > 0).all(axis=0)
    assert 0.5 < valid.mean() < 1.0  # the AOI polygon covers most, but not all, of its bounding box
    assert pixels[:, valid].std() > 100  # real structure, not a constant
    # The quality summary, against the pixels and the AOI rasterised here.
    quality = export.rendered["quality"]
    to_grid = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True).transform
    inside = ~geometry_mask([shapely.ops.transform(to_grid, shape(SMALL_AOI))], out_shape=valid.shape,
                            transform=transform)
    assert quality["pixels"] == valid.size
    assert quality["valid_pixels"] == min(int((band > 0).sum()) for band in pixels)
    assert quality["aoi_pixels"] == pytest.approx(int(inside.sum()), rel=0.02)
    assert quality["valid_share_of_aoi"] == pytest.approx(min(1.0, quality["valid_pixels"] / quality["aoi_pixels"]), abs=1e-4)
    assert [b["mean"] for b in quality["bands"]] == pytest.approx([band[band > 0].mean() for band in pixels])

    (target,) = view.targets
    assert target.status == TargetStatus.success
    assert target.result["sha256"] and target.result["bytes"] == path.stat().st_size
    link_path = urlsplit(target.result["url"]).path
    assert link_path.endswith(f"/export-{export_id}.tif")  # GIS clients go by the extension
    client = TestClient(create_app())
    response = client.get(link_path)
    assert response.status_code == 200
    assert response.content == path.read_bytes()
    (download,) = session.exec(select(Download)).all()
    assert download.completed and download.bytes_sent == path.stat().st_size

    # The export's own log tells its story in order, through the view the API and the CLI share.
    lines = [line.message for line in export_log_view(session, owner=owner, export_id=export_id)]
    expected = ["pending: ordered by", "submitted", "rendering", "rendering ", f"rendered export-{export_id}.tif",
                "delivering", "delivering to target 0 (http)", "delivered to target 0 (http)", "success"]
    assert len(lines) == len(expected) and all(line.startswith(e) for line, e in zip(lines, expected, strict=True)), lines
    assert f"sha256 {export.rendered['sha256']}" in lines[4]


def test_an_export_over_the_shard_size_arrives_as_one_zip_of_shards_a_vrt_and_a_stac_collection(
        session, owner, project, monkeypatch):
    whole_id = submit(session, owner, aoi=SMALL_AOI)
    export_flow(whole_id)
    monkeypatch.setenv("GEOSHIP_TILE_SIZE", "64")
    monkeypatch.setenv("GEOSHIP_SHARD_MAX_BYTES", str(64 * 64 * 3 * 2))  # 64 px shards of 3 uint16 bands
    get_settings.cache_clear()
    estimate = plan_export(session, owner=owner, request=ExportRequest(project="alps", aoi=SMALL_AOI)).estimate
    assert estimate.shards == 4  # about 100 x 100 px: a 2 x 2 lattice of 64 px shards, every one with data
    export_id = submit(session, owner, aoi=SMALL_AOI, targets=[TargetRequest(config={"ttl_hours": 1})])
    export_flow(export_id)

    session.expire_all()
    whole, export = session.get(Export, whole_id), session.get(Export, export_id)
    assert export.status == ExportStatus.success, export.error
    archive = Path(export.artifact)
    assert archive.name == f"export-{export_id}.zip"
    base = f"export-{export_id}"
    with zipfile.ZipFile(archive) as zipped:
        names = sorted(zipped.namelist())
        assert all(info.compress_type == zipfile.ZIP_STORED for info in zipped.infolist())
        collection = json.loads(zipped.read(f"{base}/collection.json"))
        validate_stac(collection)
        items = [json.loads(zipped.read(f"{base}/{link['href'][2:]}")) for link in collection["links"]
                 if link["rel"] == "item"]
        for item in items:
            validate_stac(item)
            member = f"{base}/{item['assets']['data']['href'][2:]}"
            assert item["assets"]["data"]["file:checksum"] == "1220" + hashlib.sha256(zipped.read(member)).hexdigest()
            assert item["collection"] == base
    shard_files = [n for n in names if n.endswith(".tif")]
    assert len(shard_files) == len(items) == estimate.shards == len(export.rendered["shards"])
    assert f"{base}/{base}.vrt" in names
    for name in shard_files:  # every shard is a valid COG, read straight from the archive
        assert cog_validate(f"/vsizip/{archive}/{name}")[0]
    with rasterio.open(f"/vsizip/{archive}/{base}/{base}.vrt") as mosaic, rasterio.open(whole.artifact) as single:
        assert (mosaic.width, mosaic.height, mosaic.transform) == (single.width, single.height, single.transform)
        assert np.array_equal(mosaic.read(), single.read())  # the shards are the unsharded export, seamlessly
    sidecar = json.loads(archive.with_name(f"{base}.stac.json").read_text())
    assert sidecar["type"] == "Collection" and len(sidecar["links"]) == len(items)

    (target,) = export_view(session, export).targets
    response = TestClient(create_app()).get(urlsplit(target.result["url"]).path)
    assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
    assert f'filename="{base}.zip"' in response.headers["content-disposition"]
    assert response.content == archive.read_bytes()


def test_an_export_can_keep_the_project_extent_with_nodata_outside_the_aoi(session, owner, project):
    whole = plan_export(session, owner=owner, request=ExportRequest(project="alps")).grid
    cropped = plan_export(session, owner=owner, request=ExportRequest(project="alps", aoi=SMALL_AOI)).grid
    export_id = submit(session, owner, aoi=SMALL_AOI, extent="project")
    export = run_to_success(session, export_id)
    assert OutputGrid.from_dict(export.grid) == whole and cropped.pixels < whole.pixels / 2
    with rasterio.open(export.artifact) as out:
        valid = (out.read() > 0).all(axis=0)
        rows, cols = np.nonzero(valid)
        left, top = out.transform @ (cols.min(), rows.min())
        right, bottom = out.transform @ (cols.max() + 1, rows.max() + 1)
    # Data only inside the AOI, whose bounds are the cropped grid's: the rest of the extent is nodata.
    assert 0 < valid.mean() < 0.5
    assert abs(left - cropped.bounds[0]) <= cropped.resolution and abs(top - cropped.bounds[3]) <= cropped.resolution
    assert abs(right - cropped.bounds[2]) <= cropped.resolution and abs(bottom - cropped.bounds[1]) <= cropped.resolution


def test_an_ndvi_export_writes_float_indices_with_nodata(session, owner, project):
    export_id = submit(session, owner, tool="ndvi", aoi=SMALL_AOI)
    export = run_to_success(session, export_id)
    with rasterio.open(export.artifact) as out:
        ndvi = out.read(1, masked=True)
        assert out.dtypes[0] == "float32" and out.nodata == -9999
    assert ndvi.count() > 0 and float(ndvi.min()) >= -1 and float(ndvi.max()) <= 1
    assert np.ma.median(ndvi) > 0.2  # a green landscape
    assert np.isfinite(ndvi.compressed()).all()


@pytest.mark.parametrize("codec", ["jpeg", "webp"])
def test_a_colour_corrected_rgb_export_can_be_lossy_with_an_internal_mask(session, owner, project, codec):
    triangle = {"type": "Polygon", "coordinates": [[[11.93, 45.97], [12.08, 45.97], [12.0, 46.08], [11.93, 45.97]]]}
    export_id = submit(session, owner, aoi=triangle, color_correct={"percentiles": (2, 98)}, compression=codec)
    export = run_to_success(session, export_id)
    assert cog_validate(export.artifact)[0]
    with rasterio.open(export.artifact) as out:
        assert out.profile["compress"] == codec and out.dtypes == ("uint8",) * 3 and out.nodata is None
        mask, pixels = out.dataset_mask(), out.read()
    # Outside the AOI the mask says "no data"; inside it the picture is there, not smeared black.
    assert 0.3 < (mask > 0).mean() < 0.7
    assert not mask[0, 0] and not mask[0, -1] and pixels[:, mask > 0].mean() > 40
    item = json.loads((Path(export.artifact).parent / f"export-{export_id}.stac.json").read_text())
    assert all("nodata" not in band for band in item["assets"]["data"]["raster:bands"])


def test_a_failing_render_ends_in_error_with_the_reason(session, owner, project, sample_scene_paths, tmp_path):
    export_id = submit(session, owner, aoi=SMALL_AOI)
    # Break the export: point its first scene at a file that does not exist.
    export = session.get(Export, export_id)
    tool = copy.deepcopy(export.tool)  # a new object, so the JSON column sees the change
    scene = tool["input"]["input"]["input"]["scenes"][0]
    scene["bands"] = [dict(b, uri=str(tmp_path / "gone.tif")) for b in scene["bands"]]
    export.tool = tool
    session.add(export)
    session.commit()

    with pytest.raises(SceneReadError):
        export_flow(export_id)
    session.expire_all()
    view = export_view(session, session.get(Export, export_id))
    assert view.status == ExportStatus.error
    assert view.error.startswith("scene alpine-foreland-west: cannot open") and "gone.tif" in view.error
    assert "Traceback" not in view.error
    assert view.targets[0].status == TargetStatus.pending  # never delivered


def test_an_evi_export_computes_on_reflectance_from_each_scenes_scale(session, owner, project):
    from models.tables import Scene

    for scene in session.exec(select(Scene)).all():  # the sample scenes store reflectance x 10000
        scene.bands = [{**b, "scale": 0.0001} for b in scene.bands]
        session.add(scene)
    session.commit()
    export_id = submit(session, owner, tool="evi", aoi=SMALL_AOI)
    export = session.get(Export, export_id)
    source = export.tool["input"]["input"]["input"]
    assert export.tool["input"]["input"]["type"] == "band_math" and source["reflectance"] is True
    export = run_to_success(session, export_id)
    with rasterio.open(export.artifact) as out:
        evi = out.read(1, masked=True)
        assert out.dtypes[0] == "float32" and out.descriptions == ("evi",)
    assert evi.count() > 0 and np.isfinite(evi.compressed()).all()
    assert 0.1 < np.ma.median(evi) < 1.0  # green, vegetated sample land on reflectance
