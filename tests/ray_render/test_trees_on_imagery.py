"""Multi-source tool trees on real imagery, against numpy references computed here from each file warped alone.

- NAIP of 2014 and 2020 (grids 1 m apart): the NDVI change between the dates, and that change classified
  (loss / stable / gain) and coloured, rendered whole and through Ray at 64, 256 and 1024 px tiles.
- Landsat 8: NDVI with the clouds of its Collection-1 QA band (bit 4) removed, the QA leaf read with nearest
  while the reflectance leaf reads bilinear.
"""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.enums import ColorInterp, Resampling
from rasterio.vrt import WarpedVRT

from models.tooltree import parse_tool_tree
from ray_render.grid import OutputGrid, plan_grid
from ray_render.inspect import inspect_scene
from ray_render.reader import BLOCKWISE_WARP, DEFAULT_ERROR_THRESHOLD, WARP_BLOCK
from ray_render.render import RenderOptions, render
from tests.conftest import require_imagery
from tests.ray_render.test_real_imagery import render_whole, scene_of

NAIP = "naip_m_4709963_se_14_utm14n/m_4709963_se_14_1_{}.tif"
L8 = "landsat8_LC08_016037_20170813_utm17n/LC08_L1TP_016037_20170813_20170814_01_RT_{}.TIF"
RULES = [{"max": -0.15, "value": 1}, {"min": -0.15, "max": 0.15, "value": 2}, {"min": 0.15, "value": 3}]
CLASSES = {"1": "#d7191c", "2": "#ffffbf", "3": "#1a9641"}


def warped_with_mask(path, grid: OutputGrid, resampling: Resampling, **options) -> tuple[np.ndarray, np.ndarray]:
    """(pixels, valid) of one file warped alone onto `grid`, as GDAL warps it."""
    with rasterio.Env(**BLOCKWISE_WARP), rasterio.open(path) as src, WarpedVRT(
            src, crs=grid.crs, transform=grid.transform, width=grid.width, height=grid.height, resampling=resampling,
            tolerance=DEFAULT_ERROR_THRESHOLD, blockxsize=WARP_BLOCK, blockysize=WARP_BLOCK, **options) as vrt:
        return vrt.read(), vrt.read_masks() > 0


def leaf(scene, bands, resampling="bilinear"):
    return {"type": "project", "project": scene.name, "scenes": [scene.model_dump(mode="json")], "bands": bands,
            "resampling": resampling}


def ndvi_node(source):
    return {"type": "normalized_difference", "a": "nir", "b": "red", "name": "ndvi", "input": source}


def change_node(before, after):
    return {"type": "band_math", "name": "dndvi", "inputs": {"before": ndvi_node(before), "after": ndvi_node(after)},
            "expr": {"op": "-", "args": [{"band": "ndvi", "input": "after"}, {"band": "ndvi", "input": "before"}]}}


def reference_ndvi(path, grid) -> np.ma.MaskedArray:
    """NDVI of a NAIP file (red band 1, NIR band 4), float32, nodata where a band has none or red + nir is 0."""
    pixels, valid = warped_with_mask(path, grid, Resampling.bilinear, src_nodata=0, nodata=0)
    red, nir = pixels[0].astype(np.float32), pixels[3].astype(np.float32)
    total = red + nir
    bad = ~valid[0] | ~valid[3] | (total == 0)
    return np.ma.masked_array((nir - red) / np.where(bad, 1, total), mask=bad)


@pytest.fixture(scope="module")
def naip():
    paths = require_imagery(NAIP.format("20140720"), NAIP.format("20200831"))
    scenes = [scene_of(inspect_scene(path=str(p), band_names=["red", "green", "blue", "nir"]), f"naip-{p.stem[-8:-4]}", i)
              for i, p in enumerate(paths, 1)]
    return paths, scenes


def test_ndvi_change_between_two_dates_matches_numpy(naip):
    (path_2014, path_2020), (before, after) = naip
    grid = plan_grid("EPSG:26914", (486000, 5205700, 490500, 5209200), 5.0)
    tree = parse_tool_tree({"type": "output", "dtype": "float32", "nodata": -9999,
                            "input": change_node(leaf(before, ["red", "nir"]), leaf(after, ["red", "nir"]))})
    actual = render_whole(tree, grid)[0]

    change = reference_ndvi(path_2020, grid).astype(np.float64) - reference_ndvi(path_2014, grid)
    expected = np.where(np.ma.getmaskarray(change), -9999, np.ma.getdata(change)).astype(np.float32)
    assert np.array_equal(actual == -9999, expected == -9999)
    assert np.allclose(actual, expected, atol=1e-6)
    # SOURCES.md: NDVI's median is 0.01 in 2014 and 0.29 in 2020, so the land greened.
    assert 0.1 < np.median(actual[actual != -9999]) < 0.45


def classified(change: np.ndarray, nodata: np.ndarray) -> np.ndarray:
    """Loss (1), stable (2), gain (3) from a change band, written out independently of the tree's rules."""
    classes = np.select([change < -0.15, change < 0.15], [1, 2], 3)
    return np.where(nodata, 0, classes)


def test_a_classified_coloured_change_map_is_rgba_and_identical_at_any_tile_size(ray_cluster, naip, tmp_path):
    (path_2014, path_2020), (before, after) = naip
    # Web Mercator at 5 m: a grid more than two warp blocks wide, warped from UTM.
    grid = plan_grid("EPSG:3857", (-11041200, 5938400, -11034800, 5943900), 5.0)
    assert grid.width > 2 * WARP_BLOCK
    tree = parse_tool_tree({"type": "output", "dtype": "uint8", "nodata": None, "input": {
        "type": "colormap", "classes": CLASSES,
        "input": {"type": "classify", "rules": RULES,
                  "input": change_node(leaf(before, ["red", "nir"]), leaf(after, ["red", "nir"]))}}})
    files = []
    for size in (64, 256, 1024):
        path = tmp_path / f"change-{size}.tif"
        render(tree, grid, path, RenderOptions(tile_size=size, resampling="bilinear"))
        with rasterio.open(path) as out:
            files.append(out.read())
            assert out.colorinterp == (ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha)
            assert out.nodata is None and out.overviews(1)
    for other in files[1:]:
        assert np.array_equal(files[0], other)

    change = reference_ndvi(path_2020, grid).astype(np.float64) - reference_ndvi(path_2014, grid)
    classes = classified(np.ma.getdata(change), np.ma.getmaskarray(change))
    palette = np.array([[0, 0, 0, 0], [0xd7, 0x19, 0x1c, 255], [0xff, 0xff, 0xbf, 255], [0x1a, 0x96, 0x41, 255]])
    expected = palette[classes].transpose(2, 0, 1)
    # Values within float32 rounding of a class boundary may fall either side of it.
    near_edge = np.isclose(np.abs(np.ma.getdata(change)), 0.15, atol=1e-5)
    differs = (files[0] != expected).any(axis=0)
    assert not (differs & ~near_edge).any(), f"{(differs & ~near_edge).sum()} pixels differ"
    assert (files[0][3] == 0).mean() > 0.05 and len(np.unique(classes[classes > 0])) == 3


def test_ndvi_without_the_clouds_of_a_qa_band(tmp_path):
    red, nir, qa = require_imagery(L8.format("B4"), L8.format("B5"), L8.format("BQA"))
    info = inspect_scene(band_files=[("red", str(red)), ("nir", str(nir)), ("qa", str(qa))], nodata=0)
    scene = scene_of(info, "l8", 7)
    grid = plan_grid("EPSG:32617", tuple(scene.bounds), 900.0)
    tree = parse_tool_tree({"type": "output", "dtype": "float32", "nodata": -9999, "input": {
        "type": "mask_by", "input": ndvi_node(leaf(scene, ["red", "nir"], "bilinear")),
        "by": leaf(scene, ["qa"], "nearest"), "remove_where": {"bits": [4, 1], "equals": 1}}})
    actual = render_whole(tree, grid)[0]

    (r,), r_ok = warped_with_mask(red, grid, Resampling.bilinear, src_nodata=0, nodata=0)
    (n,), n_ok = warped_with_mask(nir, grid, Resampling.bilinear, src_nodata=0, nodata=0)
    (q,), q_ok = warped_with_mask(qa, grid, Resampling.nearest, src_nodata=0, nodata=0)
    r, n = r.astype(np.float32), n.astype(np.float32)
    cloud = ((q.astype(np.int64) >> 4) & 1) == 1
    keep = r_ok[0] & n_ok[0] & q_ok[0] & (r + n != 0) & ~cloud
    expected = np.where(keep, (n - r) / np.where(keep, r + n, 1), -9999).astype(np.float32)
    assert np.array_equal(actual == -9999, ~keep)
    assert np.allclose(actual, expected, atol=1e-6)
    clear = r_ok[0] & n_ok[0] & (r + n != 0)
    assert 0.05 < (cloud & clear).sum() / clear.sum() < 0.6  # a cloudy coastal scene (26.7 % cloud cover)
