"""Reading scene metadata from files: names from options, descriptions or colour interpretation."""

import numpy as np
import pytest
import rasterio
from rasterio.enums import ColorInterp

from models.errors import InvalidRequest
from ray_render.inspect import inspect_scene


def test_a_multi_band_file_takes_names_from_its_descriptions(make_raster):
    path = make_raster("d.tif", np.ones((2, 5, 6), np.uint16), bands=["Red", "NIR"], nodata=0, res=30)
    info = inspect_scene(path=str(path))
    assert [b["name"] for b in info.bands] == ["red", "nir"]
    assert (info.width, info.height, info.res_x, info.dtype, info.nodata, info.epsg) == (6, 5, 30.0, "uint16", 0.0, 32618)
    assert info.bounds == [500000.0, 4000000.0 - 150, 500000.0 + 180, 4000000.0]
    assert info.footprint["type"] == "MultiPolygon"


def test_colour_interpretation_names_rgb_bands(make_raster):
    path = make_raster("rgb.tif", np.ones((3, 4, 4), np.uint8))
    with rasterio.open(path, "r+") as dst:
        dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue]
    assert [b["name"] for b in inspect_scene(path=str(path)).bands] == ["red", "green", "blue"]


def test_unnamed_bands_need_names_and_counts_must_match(make_raster):
    path = make_raster("u.tif", np.ones((2, 4, 4), np.uint8))
    with pytest.raises(InvalidRequest, match="does not name its bands"):
        inspect_scene(path=str(path))
    with pytest.raises(InvalidRequest, match="3 band names given for 2 bands"):
        inspect_scene(path=str(path), band_names=["red", "green", "blue"])


def test_single_band_files_make_one_scene_if_they_share_a_grid(make_raster):
    red = make_raster("B4.TIF", np.ones((1, 4, 4), np.uint16))
    nir = make_raster("B5.TIF", np.ones((1, 4, 4), np.uint16))
    info = inspect_scene(band_files=[("red", str(red)), ("nir", str(nir))], nodata=0)
    described = [(b["name"], b["uri"].rsplit("/", 1)[1], b["index"]) for b in info.bands]
    assert described == [("red", "B4.TIF", 1), ("nir", "B5.TIF", 1)]
    assert info.nodata == 0
    shifted = make_raster("B6.TIF", np.ones((1, 4, 4), np.uint16), origin=(500010, 4000000))
    with pytest.raises(InvalidRequest, match="not on the same grid"):
        inspect_scene(band_files=[("red", str(red)), ("swir16", str(shifted))])


def test_an_unreadable_file_is_a_clear_error(tmp_path):
    (tmp_path / "x.tif").write_text("not a raster")
    with pytest.raises(InvalidRequest, match="cannot read"):
        inspect_scene(path=str(tmp_path / "x.tif"), band_names=["red"])


def test_scale_offset_and_acquisition_time_come_from_the_file(make_raster):
    from ray_render.inspect import with_scaling

    path = make_raster("l8.tif", np.ones((2, 4, 4), np.uint16), bands=["red", "nir"])
    with rasterio.open(path, "r+") as dst:
        dst.scales, dst.offsets = (0.0000275, 1.0), (-0.2, 0.0)
        dst.update_tags(TIFFTAG_DATETIME="2024:06:01 10:30:00")
    info = inspect_scene(path=str(path))
    assert [(b["name"], b.get("scale"), b.get("offset")) for b in info.bands] == [
        ("red", 0.0000275, -0.2), ("nir", None, None)]
    assert info.acquired_at.isoformat() == "2024-06-01T10:30:00+00:00"
    given = with_scaling(info, 0.0001, None)  # --scale applies where the file said nothing
    assert [(b["scale"], b["offset"]) for b in given.bands] == [(0.0000275, -0.2), (0.0001, 0.0)]
