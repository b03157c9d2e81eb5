"""Submitting exports: the tree that is built, and every refusal, which writes nothing."""

from dataclasses import asdict

import pytest
from sqlmodel import func, select

from flows.services.submission import create_export, plan_export
from models.errors import InvalidAOI, InvalidRequest, NotFound
from models.schemas import ColorCorrection, ExportRequest, TargetRequest
from models.status import ExportStatus
from models.tables import Export, ExportTarget, User
from models.tooltree import ColorCorrect, Identity, Mask, NormalizedDifference, parse_tool_tree
from tests.conftest import SMALL_AOI


def count_rows(session) -> tuple[int, int]:
    return (session.exec(select(func.count()).select_from(Export)).one(),
            session.exec(select(func.count()).select_from(ExportTarget)).one())


def test_an_rgb_export_is_a_pending_row_with_a_masked_identity_tree(session, owner, project):
    export = create_export(session, owner=owner, request=ExportRequest(project="alps", aoi=SMALL_AOI))
    session.commit()
    assert export.status == ExportStatus.pending
    tree = parse_tool_tree(export.tool)
    assert [type(n) for n in tree.root.walk()][1:3] == [Mask, Identity]
    assert tree.root.dtype == "uint16" and tree.root.nodata == 0
    assert [s.name for s in tree.sources()[0].scenes] == ["alpine-foreland-west", "alpine-foreland-east"]
    assert export.grid["crs"] == "EPSG:3857" and export.grid["width"] > 0
    assert 170 < export.resolution < 175  # 120 m at 46 degrees north, in Web Mercator metres
    assert count_rows(session) == (1, 1)


def test_colour_correction_stretch_is_computed_once_into_the_tree(session, owner, project):
    request = ExportRequest(project=project.id, color_correct=ColorCorrection(percentiles=(2, 98)))
    tree = parse_tool_tree(create_export(session, owner=owner, request=request).tool)
    (node,) = tree.find(ColorCorrect)
    assert [s.band for s in node.stretch] == ["red", "green", "blue"]
    assert all(0 < s.min < s.max < 10000 for s in node.stretch)
    assert tree.root.dtype == "uint8" and tree.root.scale == 255
    assert not tree.find(Mask)  # no AOI: the whole footprint, unmasked


def test_ndvi_is_a_float_index_with_nodata(session, owner, project):
    tree = parse_tool_tree(create_export(session, owner=owner, request=ExportRequest(project="alps", tool="ndvi")).tool)
    (node,) = tree.find(NormalizedDifference)
    assert (node.a, node.b, node.name) == ("nir", "red", "ndvi")
    assert tree.root.dtype == "float32" and tree.root.nodata == -9999


BOWTIE = {"type": "Polygon", "coordinates": [[[11.9, 45.9], [12.1, 46.1], [12.1, 45.9], [11.9, 46.1], [11.9, 45.9]]]}
FAR_AWAY = {"type": "Polygon", "coordinates": [[[100, 10], [101, 10], [101, 11], [100, 10]]]}


@pytest.mark.parametrize("changes,error,needle", [
    ({"srid": 999999}, InvalidRequest, "srid: unknown CRS or EPSG code 999999"),
    ({"aoi": BOWTIE}, InvalidAOI, "Self-intersection"),
    ({"aoi": FAR_AWAY}, InvalidAOI, "does not overlap"),
    ({"aoi": {"type": "Point", "coordinates": [12, 46]}}, InvalidAOI, "Polygon or MultiPolygon"),
    ({"aoi": {"type": "FeatureCollection", "features": []}}, InvalidAOI, "no features"),
    ({"aoi": SMALL_AOI, "aoi_crs": "EPSG:0"}, InvalidRequest, "aoi_crs"),
    ({"bands": ["red", "swir16", "blue"]}, InvalidRequest, "no band(s) swir16"),
    ({"tool": "ndvi", "bands": ["nir"]}, InvalidRequest, "takes 2 bands (nir, red), got 1"),
    ({"resolution": 0.01}, InvalidRequest, "over the limit"),
    ({"resolution": 1e-12}, InvalidRequest, "resolution: 1e-12 would make the output 5.79e+16 px across"),
    ({"resolution": 1e308}, InvalidRequest, "resolution: 1e+308 is larger than the whole area"),
    ({"project": "nope"}, NotFound, "project 'nope' not found"),
    ({"targets": [TargetRequest(), TargetRequest(kind="dropbox")]}, InvalidRequest,
     "targets.1.credential_id: a dropbox target needs a credential id"),
    ({"targets": [TargetRequest(kind="s3", config={"bucket": "b"}, credential_id=1)]}, InvalidRequest,
     "targets.0.config.bucket: Value error, 'b' is not a valid S3 bucket name"),
    ({"targets": [TargetRequest(kind="s3", config={"bucket": "bucket-one"}, credential_id=99)]}, InvalidRequest,
     "targets.0.credential_id: you have no credential 99"),
    ({"targets": [TargetRequest(config={"ttl_hours": -1})]}, InvalidRequest,
     "targets.0.config.ttl_hours: Input should be greater than 0"),
    ({"targets": [TargetRequest(config={"rate": 5})]}, InvalidRequest, "targets.0.config.rate: Extra inputs"),
])
def test_refused_requests_name_the_problem_and_write_nothing(session, owner, project, changes, error, needle):
    request = ExportRequest(**{"project": "alps", **changes})
    with pytest.raises(error) as info:
        create_export(session, owner=owner, request=request)
    assert needle in str(info.value)
    session.rollback()
    assert count_rows(session) == (0, 0)


def test_another_users_private_project_is_not_found(session, project):
    stranger = User(name="eve")
    session.add(stranger)
    session.commit()
    with pytest.raises(NotFound):
        create_export(session, owner=stranger, request=ExportRequest(project=project.id))


ACROSS_180 = {"type": "Polygon", "coordinates": [[[179.5, 10], [180, 10], [180, 11], [179.5, 11], [179.5, 10]]]}
SPLIT_AT_180 = {"type": "MultiPolygon", "coordinates": [ACROSS_180["coordinates"],
                                                        [[[-180, 10], [-179.5, 10], [-179.5, 11], [-180, 11], [-180, 10]]]]}
POLAR = {"type": "Polygon", "coordinates": [[[0, 80], [90, 80], [180, 90], [0, 90], [0, 80]]]}


@pytest.mark.parametrize("aoi, needle", [(SPLIT_AT_180, "crosses the antimeridian"), (POLAR, "reaches a pole")])
def test_aois_across_the_antimeridian_or_at_a_pole_are_refused_clearly(session, owner, project, aoi, needle):
    with pytest.raises(InvalidAOI, match=needle):
        create_export(session, owner=owner, request=ExportRequest(project="alps", aoi=aoi))


def test_the_default_resampling_suits_the_tool(session, owner, project):
    def resampling(**fields):
        return create_export(session, owner=owner, request=ExportRequest(project="alps", resolution=480, **fields)).resampling

    assert resampling() == "nearest"  # plain RGB: every output pixel is a source pixel
    assert resampling(tool="ndvi") == "bilinear"
    assert resampling(color_correct={"gamma": 1.2}) == "bilinear"
    assert resampling(tool="ndvi", resampling="cubic") == "cubic"


def test_scenes_lacking_a_band_are_recorded_as_skipped_for_it(session, owner, sample_scene_paths, make_raster):
    import numpy as np
    import rasterio

    from flows.services.views import export_view
    from models.catalogue import add_scene, create_project
    from ray_render.inspect import inspect_scene

    with rasterio.open(sample_scene_paths[0]) as src:  # the same place, without its NIR band
        rgb = make_raster("rgb-only.tif", src.read([1, 2, 3]), crs=src.crs.to_string(),
                          origin=(src.transform.c, src.transform.f), res=src.res[0], nodata=0,
                          bands=["red", "green", "blue"])
    mixed = create_project(session, owner=owner, name="mixed")
    add_scene(session, owner=owner, project=mixed, name="rgb-only", info=asdict(inspect_scene(path=str(rgb))))
    add_scene(session, owner=owner, project=mixed, name="rgbn", info=asdict(inspect_scene(path=str(sample_scene_paths[0]))))
    session.commit()
    export = create_export(session, owner=owner, request=ExportRequest(project="mixed", tool="ndvi", resolution=480))
    assert export_view(session, export).skipped_scenes == {"nir": ["rgb-only"]}
    plain = create_export(session, owner=owner, request=ExportRequest(project="mixed", resolution=480))
    assert export_view(session, plain).skipped_scenes == {}
    assert np.dtype(export.tool["dtype"]) == np.float32


@pytest.mark.parametrize("fields", [{"tool": "ndvi"}, {}])
def test_lossy_compression_is_refused_for_anything_but_8_bit_rgb(session, owner, project, fields):
    with pytest.raises(InvalidRequest) as raised:
        plan_export(session, owner=owner, request=ExportRequest(project=project.id, compression="jpeg", **fields))
    assert raised.value.field == "compression"
    assert "8-bit RGB only" in str(raised.value) and "deflate, zstd or lzw" in str(raised.value)
