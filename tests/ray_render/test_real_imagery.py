"""The renderer's correctness claims on real imagery (../shared/data/imagery, see its SOURCES.md).

Sentinel-2 and Landsat bands as separate files with NIR and SWIR, a NAIP RGBN pair of two dates on grids
1 m apart, a pair in different CRSs, dtypes and resolutions (one CRS without an EPSG code), a pair made
cross-CRS by reprojecting one scene, and alpha bands and internal masks written from real pixels.
"""

from dataclasses import asdict

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.vrt import WarpedVRT
from rasterio.warp import Resampling, calculate_default_transform, reproject
from rasterio.windows import Window

from models.catalogue import scene_source
from models.tables import Scene
from models.tooltree import BandMath, Identity, NormalizedDifference, Output, ProjectSource, parse_tool_tree
from ray_render.grid import OutputGrid, plan_grid
from ray_render.inspect import inspect_scene, with_scaling
from ray_render.reader import BLOCKWISE_WARP, DEFAULT_ERROR_THRESHOLD, WARP_BLOCK
from ray_render.tile import TileRenderer
from tests.conftest import require_imagery

S2 = "sentinel2_L1C_T19UDP_20170729_utm19n/S2_L1C_T19UDP_20170729_{}.tif"
LS5 = "landsat5_nbar_090084_19920323_mga55/LS5_TM_NBAR_P54_GANBAR01-002_090_084_19920323_{}.tif"
# A Lambert conformal conic over the north-eastern US: a CRS no EPSG code names.
LAMBERT = ("+proj=lcc +lat_1=44 +lat_2=47 +lat_0=45 +lon_0=-74 +x_0=0 +y_0=0 +ellps=WGS84 +units=m +no_defs")


def scene_of(info, name: str, scene_id: int):
    return scene_source(Scene(id=scene_id, name=name, owner_id=1, **asdict(info)))


def render_whole(tree, grid: OutputGrid) -> np.ndarray:
    with TileRenderer(tree, grid) as renderer:
        return renderer.render(Window(0, 0, grid.width, grid.height))


def tree_of(node, dtype: str, nodata) -> object:
    return parse_tool_tree(Output(input=node, dtype=dtype, nodata=nodata).model_dump(mode="json"))


def warped(path, grid: OutputGrid, **options) -> np.ndarray:
    """One file warped onto `grid` as the renderer warps it (same transformer, same blocks)."""
    with rasterio.Env(**BLOCKWISE_WARP), rasterio.open(path) as src, WarpedVRT(
            src, crs=grid.crs, transform=grid.transform, width=grid.width, height=grid.height,
            tolerance=DEFAULT_ERROR_THRESHOLD, blockxsize=WARP_BLOCK, blockysize=WARP_BLOCK, **options) as vrt:
        return vrt.read()


def test_sentinel2_ndvi_from_separate_band_files_on_reflectance(tmp_path):
    red, nir = require_imagery(S2.format("B04"), S2.format("B08"))
    # No nodata tag: 0 is fill outside the swath. DN = reflectance x 10000.
    info = with_scaling(inspect_scene(band_files=[("red", str(red)), ("nir", str(nir))], nodata=0), 1e-4, 0.0)
    scene = scene_of(info, "s2", 1)
    grid = plan_grid("EPSG:32619", tuple(scene.bounds), 900.0)
    source = ProjectSource(scenes=[scene], bands=["red", "nir"], reflectance=True)
    ndvi = render_whole(tree_of(NormalizedDifference(input=source, a="nir", b="red", name="ndvi"), "float32", -9999), grid)[0]
    valid = ndvi != -9999
    with rasterio.open(red) as r:
        swath = r.read(1) > 0
    assert abs(valid.mean() - swath.mean()) < 0.01  # about 62 % of the tile: the swath, not the fill
    assert np.isfinite(ndvi).all() and ndvi[valid].min() >= -1 and ndvi[valid].max() <= 1
    # SOURCES.md: NDVI(B08, B04) has p5 / p50 / p95 = -0.41 / 0.06 / 0.81.
    p5, p50, p95 = np.percentile(ndvi[valid], [5, 50, 95])
    assert abs(p5 + 0.41) < 0.03 and abs(p50 - 0.06) < 0.03 and abs(p95 - 0.81) < 0.03


def test_landsat5_int16_surface_reflectance_with_nodata_gives_its_ndvi_and_a_bounded_evi():
    paths = require_imagery(*(LS5.format(b) for b in ("B10", "B30", "B40", "B50")))
    band_files = list(zip(["blue", "red", "nir", "swir16"], map(str, paths), strict=True))
    info = with_scaling(inspect_scene(band_files=band_files), 1e-4, 0)
    assert info.dtype == "int16" and info.nodata == -999 and info.epsg == 28355
    scene = scene_of(info, "ls5", 1)
    grid = plan_grid("EPSG:28355", tuple(scene.bounds), 25.0)
    source = ProjectSource(scenes=[scene], bands=["blue", "red", "nir", "swir16"], reflectance=True)
    ndvi = render_whole(tree_of(NormalizedDifference(input=source, a="nir", b="red", name="ndvi"), "float32", -9999), grid)[0]
    valid = ndvi != -9999
    assert 0.9 < valid.mean() < 0.98  # 94 % valid: -999 is nodata, not a reflectance
    assert abs(np.median(ndvi[valid]) - 0.55) < 0.03  # SOURCES.md: p50 = 0.55
    # EVI = 2.5 (NIR - red) / (NIR + 6 red - 7.5 blue + 1), the standard coefficients, on reflectance.
    evi = tree_of(BandMath.model_validate({"input": source, "name": "evi", "expr": {"op": "*", "args": [
        {"const": 2.5}, {"op": "/", "args": [
            {"op": "-", "args": [{"band": "nir"}, {"band": "red"}]},
            {"op": "+", "args": [{"op": "-", "args": [
                {"op": "+", "args": [{"band": "nir"}, {"op": "*", "args": [{"const": 6}, {"band": "red"}]}]},
                {"op": "*", "args": [{"const": 7.5}, {"band": "blue"}]}]}, {"const": 1}]}]}]}}), "float32", -9999)
    values = render_whole(evi, grid)[0]
    green = values[valid & (ndvi > 0.5)]
    assert np.isfinite(values).all() and 0.2 < np.median(green) < 0.9  # vegetation; EVI saturates less than NDVI


def test_naip_rgbn_pair_of_two_dates_mosaics_first_valid_in_project_order():
    west, east = require_imagery("derived/naip_20140720_west.tif", "derived/naip_20200831_east.tif")
    names = ["red", "green", "blue", "nir"]
    scenes = [scene_of(inspect_scene(path=str(p), band_names=names), p.stem, i) for i, p in enumerate((west, east), 1)]
    grid = plan_grid("EPSG:26914", (485900, 5205630, 490570, 5209246), 5.0)  # both grids, which sit 1 m apart
    tree = tree_of(Identity(input=ProjectSource(scenes=scenes, bands=names)), "uint8", 0)
    mosaic = render_whole(tree, grid)
    a, b = warped(west, grid, nodata=0), warped(east, grid, nodata=0)
    in_a, in_b = (a > 0).any(axis=0), (b > 0).any(axis=0)
    assert (in_a & in_b).mean() > 0.1  # about 930 m of overlap
    assert np.array_equal(mosaic[:, in_a], a[:, in_a])  # the first scene wins wherever it has data ...
    only_b = in_b & ~in_a
    assert np.array_equal(mosaic[:, only_b], b[:, only_b])  # ... the second fills the rest ...
    assert not mosaic[:, ~(in_a | in_b)].any()  # ... and outside both is nodata
    ndvi = render_whole(tree_of(NormalizedDifference(input=ProjectSource(scenes=scenes, bands=names), a="nir", b="red",
                                                     name="ndvi"), "float32", -9999), grid)[0]
    # SOURCES.md: NDVI p50 is 0.01 in 2014 (the west scene) and 0.29 in 2020 (the east scene).
    assert np.median(ndvi[only_b & (ndvi != -9999)]) > np.median(ndvi[in_a & (ndvi != -9999)]) + 0.1


def test_scenes_of_different_crs_dtype_and_resolution_one_without_an_epsg_code():
    aerial, landsat = require_imagery("overlap_multicrs_idaho/aerial_rgb_10m_utm12n.tif",
                                      "overlap_multicrs_idaho/landsat_rgb_uint16_mercator.tif")
    rgb = ["red", "green", "blue"]
    first = scene_of(inspect_scene(path=str(landsat), band_names=rgb), "landsat", 1)
    second = scene_of(inspect_scene(path=str(aerial), band_names=rgb), "aerial", 2)
    assert CRS.from_wkt(first.crs).to_epsg() is None  # spherical Mercator, no EPSG code
    with rasterio.open(aerial) as src:
        grid = plan_grid("EPSG:26912", tuple(src.bounds), 10.0)
    tree = tree_of(Identity(input=ProjectSource(scenes=[first, second], bands=rgb)), "uint16", 0)
    mosaic = render_whole(tree, grid)
    # Each scene warped straight into the output grid, then first valid wins (uint8 aerial pixels widen to uint16).
    from_landsat = warped(landsat, grid, nodata=0)
    from_aerial = warped(aerial, grid, add_alpha=True)
    landsat_valid = (from_landsat > 0).any(axis=0)
    aerial_valid = from_aerial[3] > 0
    assert 0.1 < landsat_valid.mean() < 1 and aerial_valid.mean() > 0.9
    assert np.array_equal(mosaic[:, landsat_valid], from_landsat[:, landsat_valid])
    fill = aerial_valid & ~landsat_valid
    assert fill.any() and np.array_equal(mosaic[:, fill], from_aerial[:3, fill].astype(np.uint16))


def test_a_pair_made_cross_crs_by_reprojecting_one_scene_mosaics_like_the_original(tmp_path):
    one, two = require_imagery("overlap_pair_uint16_utm18n/mosaic_cog1.tif", "overlap_pair_uint16_utm18n/mosaic_cog2.tif")
    moved = tmp_path / "cog2_lambert.tif"
    with rasterio.open(two) as src:
        transform, width, height = calculate_default_transform(src.crs, LAMBERT, src.width, src.height, *src.bounds)
        profile = {**src.profile, "driver": "GTiff", "crs": CRS.from_proj4(LAMBERT), "transform": transform,
                   "width": width, "height": height}
        with rasterio.open(moved, "w", **profile) as dst:
            for band in src.indexes:
                reproject(rasterio.band(src, band), rasterio.band(dst, band), resampling=Resampling.nearest,
                          src_nodata=0, dst_nodata=0)
    bands = ["b1", "b2", "b3"]
    first = scene_of(inspect_scene(path=str(one), band_names=bands), "cog1", 1)
    original = scene_of(inspect_scene(path=str(two), band_names=bands), "cog2", 2)
    lambert = scene_of(inspect_scene(path=str(moved), band_names=bands), "cog2-lcc", 3)
    assert CRS.from_wkt(lambert.crs).to_epsg() is None
    grid = plan_grid("EPSG:32618", (425085.0, 4978484.8, 778214.8, 5216115.0), 300.04)
    as_is = render_whole(tree_of(Identity(input=ProjectSource(scenes=[first, original], bands=bands)), "uint16", 0), grid)
    moved_out = render_whole(tree_of(Identity(input=ProjectSource(scenes=[first, lambert], bands=bands)), "uint16", 0), grid)
    first_valid = (warped(one, grid, nodata=0) > 0).any(axis=0)
    assert np.array_equal(as_is[:, first_valid], moved_out[:, first_valid])  # the first scene wins in both
    rest = ~first_valid
    valid_a, valid_b = (as_is > 0).any(axis=0) & rest, (moved_out > 0).any(axis=0) & rest
    assert (valid_a & valid_b).sum() / (valid_a | valid_b).sum() > 0.97  # the same footprint, within a pixel
    # The Lambert scene is warped straight into the output grid, with no intermediate resampling ...
    direct = warped(moved, grid, nodata=0)
    assert np.array_equal(moved_out[:, valid_b], direct[:, valid_b])
    # ... and shows the same ground as the original scene (two nearest-neighbour warps instead of one).
    both = valid_a & valid_b
    assert np.corrcoef(as_is[0, both].astype(float), moved_out[0, both].astype(float))[0, 1] > 0.7  # 0.79 here


@pytest.mark.parametrize("how", ["alpha", "internal_mask"])
def test_alpha_bands_and_internal_masks_are_respected(tmp_path, how):
    (tci,) = require_imagery("sentinel2_tci_utm34n/S2_TCI_utm34n_100m.tif")
    with rasterio.open(tci) as src:
        pixels, profile = src.read(), src.profile
    rgb = ["red", "green", "blue"]
    hidden = np.zeros(pixels.shape[1:], bool)
    hidden[200:500, 300:700] = True  # a block the first scene says it has no data for
    holed = tmp_path / f"{how}.tif"
    base = {**profile, "driver": "GTiff", "nodata": None, "tiled": True, "blockxsize": 256, "blockysize": 256}
    if how == "alpha":
        with rasterio.open(holed, "w", **{**base, "count": 4}) as dst:
            dst.write(pixels, [1, 2, 3])
            dst.write(np.where(hidden, 0, 255).astype(np.uint8), 4)
            dst.colorinterp = [*dst.colorinterp[:3], rasterio.enums.ColorInterp.alpha]
        first = scene_of(inspect_scene(path=str(holed)), "holed", 1)
        assert [b.name for b in first.bands] == [*rgb, "alpha"]
    else:
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(holed, "w", **base) as dst:
            dst.write(pixels)
            dst.write_mask(np.where(hidden, 0, 255).astype(np.uint8))
        first = scene_of(inspect_scene(path=str(holed), band_names=rgb), "holed", 1)
    flat = tmp_path / "flat.tif"
    with rasterio.open(flat, "w", **{**profile, "driver": "GTiff"}) as dst:
        dst.write(np.full_like(pixels, 77))
    second = scene_of(inspect_scene(path=str(flat), band_names=rgb), "flat", 2)
    grid = OutputGrid(profile["crs"].to_string(), profile["transform"], profile["width"], profile["height"])
    out = render_whole(tree_of(Identity(input=ProjectSource(scenes=[first, second], bands=rgb)), "uint8", 0), grid)
    assert (out[:, hidden] == 77).all()  # hidden by the alpha band or mask: the next scene shows through
    shown = ~hidden & (pixels > 0).all(axis=0)
    assert np.array_equal(out[:, shown], pixels[:, shown])  # same grid: the rest passes through unchanged
