"""Neighbourhood operations rendered through Ray: identical files at 64, 256 and 1024 px tiles, and equal to
numpy references computed here over whole arrays.

- A DEM generated with known slopes, split into two scenes side by side (so tiles beside the seam need the
  other scene for their halo), with a nodata hole, an AOI edge inside it and the DEM's own edge on the grid.
- A real NAIP band for focal statistics, and a mask_by with dilation.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import rasterio
from affine import Affine
from numpy.lib.stride_tricks import sliding_window_view
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT

from models.tooltree import parse_tool_tree
from ray_render.grid import OutputGrid, plan_grid
from ray_render.inspect import inspect_scene
from ray_render.reader import BLOCKWISE_WARP, DEFAULT_ERROR_THRESHOLD, WARP_BLOCK
from ray_render.render import RenderOptions, render
from tests.conftest import require_imagery
from tests.ray_render.test_mosaic import source_of
from tests.ray_render.test_real_imagery import scene_of
from tests.ray_render.test_trees_on_imagery import NAIP

TILE_SIZES = (64, 256, 1024)
RES = 10.0
ORIGIN = (500000.0, 4020000.0)
ROWS, COLS = 700, 1200
# East and north gradients of the plane under the DEM's bump, in metres per metre.
EAST, NORTH = 0.3, -0.1


def dem() -> np.ndarray:
    """A plane rising east and falling north, with a round hill on it and a hole without data."""
    rows, cols = np.mgrid[0:ROWS, 0:COLS].astype(np.float64)
    x, y = cols * RES, -rows * RES
    hill = 150.0 * np.exp(-(((cols - 400) / 120) ** 2 + ((rows - 300) / 90) ** 2))
    z = 1000.0 + EAST * x + NORTH * y + hill
    z[420:440, 800:830] = np.nan
    return z.astype(np.float32).astype(np.float64)  # as stored


def horn(z: np.ndarray, product: str, azimuth=315.0, altitude=45.0) -> np.ndarray:
    """Horn's slope, aspect or hillshade of the interior of z (NaN = no data, a missing neighbour takes the
    centre's value), written out cell by cell in the textbook's names."""
    centre = z[1:-1, 1:-1]
    win = {}
    for name, (dr, dc) in zip("abcdefghi", [(r, c) for r in (-1, 0, 1) for c in (-1, 0, 1)], strict=True):
        cell = z[1 + dr:z.shape[0] - 1 + dr, 1 + dc:z.shape[1] - 1 + dc]
        win[name] = np.where(np.isnan(cell), centre, cell)
    a, b, c, d, f, g, h, i = (win[k] for k in "abcdfghi")
    dzdx = ((c + 2 * f + i) - (a + 2 * d + g)) / (8 * RES)
    dzdy = ((g + 2 * h + i) - (a + 2 * b + c)) / (8 * RES)  # ESRI's: towards the south
    slope = np.arctan(np.sqrt(dzdx ** 2 + dzdy ** 2))
    if product == "slope":
        out = np.degrees(slope)
    else:
        math_aspect = np.arctan2(dzdy, -dzdx)  # ESRI: counter-clockwise from east
        if product == "aspect":
            out = (90.0 - np.degrees(math_aspect)) % 360.0
            out[(dzdx == 0) & (dzdy == 0)] = np.nan
        else:
            zenith, az = math.radians(90 - altitude), math.radians((360.0 - azimuth + 90.0) % 360.0)
            out = 255.0 * np.maximum(np.cos(zenith) * np.cos(slope)
                                     + np.sin(zenith) * np.sin(slope) * np.cos(az - math_aspect), 0)
    return np.where(np.isnan(centre), np.nan, out)


@pytest.fixture(scope="module")
def dem_scenes(tmp_path_factory):
    """The DEM as two scenes, west and east of column 600, with nodata -9999."""
    folder = tmp_path_factory.mktemp("dem")
    z = np.nan_to_num(dem(), nan=-9999).astype(np.float32)
    scenes = []
    for name, cols in (("west", slice(0, 600)), ("east", slice(600, COLS))):
        path = folder / f"{name}.tif"
        origin_x = ORIGIN[0] + cols.start * RES
        with rasterio.open(path, "w", driver="GTiff", width=cols.stop - cols.start, height=ROWS, count=1,
                           dtype="float32", crs="EPSG:32618", nodata=-9999,
                           transform=Affine(RES, 0, origin_x, 0, -RES, ORIGIN[1])) as dst:
            dst.write(z[None, :, cols])
        scenes.append(source_of(path, name, bands=("elevation",)))
    return scenes


def leaf_of(scenes, bands, resampling="nearest"):
    return {"type": "project", "project": "p", "scenes": [s.model_dump(mode="json") for s in scenes],
            "bands": bands, "resampling": resampling}


def rendered_at_every_tile_size(tree, grid: OutputGrid, tmp_path) -> np.ndarray:
    """The pixels of `tree` rendered at each tile size, checked identical to each other."""
    files = []
    for size in TILE_SIZES:
        path = tmp_path / f"out-{size}.tif"
        render(tree, grid, path, RenderOptions(tile_size=size))
        with rasterio.open(path) as out:
            files.append(out.read())
    for size, other in zip(TILE_SIZES[1:], files[1:], strict=True):
        assert np.array_equal(files[0], other), f"{size} px tiles differ from {TILE_SIZES[0]} px tiles"
    return files[0]


# The grid: from 30 px inside the DEM's west and north edges to its east and south edges (the DEM's edge).
GRID = OutputGrid("EPSG:32618", Affine(RES, 0, ORIGIN[0] + 30 * RES, 0, -RES, ORIGIN[1] - 30 * RES), COLS - 30, ROWS - 30)
# The AOI leaves out the grid's first 70 columns: pixels at its edge have neighbours outside it.
AOI_COL = 100
AOI = {"type": "Polygon", "coordinates": [[
    [ORIGIN[0] + AOI_COL * RES, ORIGIN[1]], [ORIGIN[0] + COLS * RES, ORIGIN[1]],
    [ORIGIN[0] + COLS * RES, ORIGIN[1] - ROWS * RES], [ORIGIN[0] + AOI_COL * RES, ORIGIN[1] - ROWS * RES],
    [ORIGIN[0] + AOI_COL * RES, ORIGIN[1]]]]}


def masked_to_aoi(node):
    return {"type": "mask", "crs": "EPSG:32618", "geometry": AOI, "input": node}


@pytest.mark.parametrize("product", ["slope", "aspect", "hillshade"])
def test_terrain_is_the_same_at_any_tile_size_and_matches_horn(ray_cluster, dem_scenes, tmp_path, product):
    tree = parse_tool_tree({"type": "output", "dtype": "float32", "nodata": -9999, "input": masked_to_aoi(
        {"type": "terrain", "product": product, "input": leaf_of(dem_scenes, ["elevation"])})})
    actual = rendered_at_every_tile_size(tree, GRID, tmp_path)[0]

    padded = np.pad(dem(), 1, constant_values=np.nan)  # beyond the DEM there is no data
    expected = horn(padded, product)[30:, 30:]
    expected[:, :AOI_COL - 30] = np.nan
    nodata = np.isnan(expected)
    assert np.array_equal(actual == -9999, nodata)
    assert np.allclose(actual[~nodata], expected[~nodata], rtol=1e-5, atol=1e-4)
    # The AOI's edge pixel has its slope from neighbours outside the AOI: far from the plane only at the hill.
    if product == "slope":
        plane = math.degrees(math.atan(math.hypot(EAST, NORTH)))
        assert np.isclose(actual[650, AOI_COL - 30], plane, atol=1e-3)
        # On the DEM's east edge the missing eastern column is level with the centre: half the eastward
        # gradient, three quarters of the northward one.
        edge = math.degrees(math.atan(math.hypot(EAST / 2, NORTH * 3 / 4)))
        assert np.isclose(actual[650, COLS - 30 - 1], edge, atol=1e-3)


def test_a_focal_step_on_the_seam_between_two_scenes_reads_both(ray_cluster, dem_scenes, tmp_path):
    tree = parse_tool_tree({"type": "output", "dtype": "float32", "nodata": -9999, "input": {
        "type": "focal", "stat": "max", "radius": 5, "shape": "circle", "input": leaf_of(dem_scenes, ["elevation"])}})
    actual = rendered_at_every_tile_size(tree, GRID, tmp_path)[0]
    padded = np.pad(dem(), 5, constant_values=np.nan)
    circle = np.array([[math.hypot(r, c) <= 5 for c in range(-5, 6)] for r in range(-5, 6)])
    windows = sliding_window_view(padded, (11, 11))
    expected = np.nanmax(np.where(circle, windows, np.nan), axis=(2, 3))
    expected = np.where(np.isnan(dem()), np.nan, expected)[30:, 30:]
    nodata = np.isnan(expected)
    assert np.array_equal(actual == -9999, nodata)
    assert np.allclose(actual[~nodata], expected[~nodata], rtol=1e-6)


def padded_warp(path, grid: OutputGrid, pad: int, band: int) -> tuple[np.ndarray, np.ndarray]:
    """One band of a file warped onto `grid` grown by `pad` pixels, as the renderer reads its halo."""
    with rasterio.Env(**BLOCKWISE_WARP), rasterio.open(path) as src, WarpedVRT(
            src, crs=grid.crs, transform=grid.transform @ Affine.translation(-pad, -pad), width=grid.width + 2 * pad,
            height=grid.height + 2 * pad, resampling=Resampling.bilinear, tolerance=DEFAULT_ERROR_THRESHOLD,
            blockxsize=WARP_BLOCK, blockysize=WARP_BLOCK, src_nodata=0, nodata=0) as vrt:
        return vrt.read(band).astype(np.float64), vrt.read_masks(band) > 0


def test_focal_statistics_of_a_real_band(ray_cluster, tmp_path):
    (path,) = require_imagery(NAIP.format("20140720"))
    scene = scene_of(inspect_scene(path=str(path), band_names=["red", "green", "blue", "nir"]), "naip", 1)
    # Web Mercator at 4 m, from inside the image to past its eastern edge.
    grid = plan_grid("EPSG:3857", (-11040400, 5938600, -11035700, 5942300), 4.0)
    source = leaf_of([scene], ["red"], "bilinear")
    stats = {"mean": ("mean", 3, "circle"), "med": ("median", 2, "square"), "sd": ("std", 4, "circle")}
    tree = parse_tool_tree({"type": "output", "dtype": "float32", "nodata": -9999, "input": {
        "type": "band_math", "outputs": {name: {"band": "red", "input": name} for name in stats},
        "inputs": {name: {"type": "focal", "stat": stat, "radius": r, "shape": shape, "input": source}
                   for name, (stat, r, shape) in stats.items()}}})
    actual = rendered_at_every_tile_size(tree, grid, tmp_path)

    values, valid = padded_warp(path, grid, WARP_BLOCK, 1)
    data = np.where(valid, values, np.nan)
    reduce = {"mean": np.nanmean, "median": np.nanmedian, "std": np.nanstd}
    for band, (name, (stat, r, shape)) in enumerate(stats.items()):
        footprint = np.array([[shape == "square" or math.hypot(i, j) <= r for j in range(-r, r + 1)]
                              for i in range(-r, r + 1)])
        inner = data[WARP_BLOCK - r:WARP_BLOCK + grid.height + r, WARP_BLOCK - r:WARP_BLOCK + grid.width + r]
        windows = np.where(footprint, sliding_window_view(inner, footprint.shape), np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN neighbourhoods beyond the image
            expected = reduce[stat](windows, axis=(2, 3))
        centre = ~valid[WARP_BLOCK:WARP_BLOCK + grid.height, WARP_BLOCK:WARP_BLOCK + grid.width]
        expected[centre] = np.nan
        nodata = np.isnan(expected)
        assert np.array_equal(actual[band] == -9999, nodata), name
        assert np.allclose(actual[band][~nodata], expected[~nodata], rtol=1e-5, atol=1e-3), name
    assert (actual[0] == -9999).mean() > 0.05  # the grid runs past the image's edge



def test_mask_by_dilates_what_it_removes_across_tiles(ray_cluster, dem_scenes, tmp_path):
    """Remove the hill's high ground and 6 px around it (a buffer, as around clouds); the hole stays nodata
    without growing, since only matched pixels spread."""
    source = leaf_of(dem_scenes, ["elevation"])
    tree = parse_tool_tree({"type": "output", "dtype": "float32", "nodata": -9999, "input": {
        "type": "mask_by", "input": source, "by": source, "remove_where": {"range": [0, 1900]}, "dilate": 6}})
    actual = rendered_at_every_tile_size(tree, GRID, tmp_path)[0]
    z = dem()
    padded = np.pad(z, 6, constant_values=np.nan)
    with np.errstate(invalid="ignore"):
        hit = (padded >= 0) & (padded <= 1900)
    grown = np.zeros(z.shape, dtype=bool)
    for dr in range(-6, 7):
        for dc in range(-6, 7):
            if math.hypot(dr, dc) <= 6:
                grown |= hit[6 + dr:6 + dr + ROWS, 6 + dc:6 + dc + COLS]
    expected = np.where(grown | np.isnan(z), -9999, z).astype(np.float32)[30:, 30:]
    assert np.array_equal(actual, expected)
    assert 0.05 < (actual == -9999).mean() < 0.9
