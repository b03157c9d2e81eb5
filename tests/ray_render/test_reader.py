"""A scene reader's pixels and valid masks, warped into the output grid, against GDAL's own masks."""

import math

import numpy as np
import pytest
import rasterio
import rasterio.features
import rasterio.warp
import shapely
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window
from shapely.geometry import shape

from ray_render.geometry import bounds_polygon, to_geojson
from ray_render.grid import plan_grid
from ray_render.reader import WARP_BLOCK, WARP_ROWS, SceneReader, warp_scales
from tests.ray_render.test_mosaic import source_of


def textured(dtype, nodata):
    """Three bands with varied values, a hole of nodata and, where the type allows, values beside nodata."""
    rng = np.random.default_rng(5)
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    low, high = (info.min, info.max) if info else (-1.0, 1.0)
    data = (rng.random((3, 60, 70)) * (high - low) + low).astype(dtype)
    data[:, 10:20, 30:45] = nodata  # a hole in every band
    data[1, 40:44, 5:9] = nodata  # and one in one band only
    return data


@pytest.mark.parametrize("resampling", ["nearest", "bilinear", "average", "cubic"])
@pytest.mark.parametrize("dtype,nodata", [("uint8", 0), ("uint16", 65535), ("int16", -9999), ("float32", -1.5)])
def test_pixels_and_valid_masks_are_gdals_own_nodata_masked_warp(make_raster, dtype, nodata, resampling):
    # With nearest resampling and an integer nodata value the reader warps without GDAL's nodata masking, and with
    # bilinear or average and a nodata value at an end of its type's range, with an alpha band for coverage; both
    # tell validity from the values: pixels and masks must be exactly those of the masked warp.
    path = make_raster("scene.tif", textured(dtype, nodata), crs="EPSG:32633", origin=(500000, 5100600), nodata=nodata,
                       bands=["red", "green", "blue"])
    scene = source_of(path, "scene", bands=("red", "green", "blue"))
    left, bottom, right, top = bounds_polygon(scene.bounds, scene.crs, "EPSG:3857").bounds
    # Reprojected, beyond the scene on each side, and far beyond it to the east: whole warp blocks no source
    # pixel reaches are filled too.
    grid = plan_grid("EPSG:3857", (left - 200, bottom - 200, right + 1200 * 13.0, top + 200), 13.0)
    assert grid.width > 2 * WARP_BLOCK
    window = Window(0, 0, grid.width, grid.height)
    with SceneReader(scene, grid, Resampling[resampling]) as reader:
        data, valid = reader.read(["red", "green", "blue"], window, np.dtype(dtype))
    with rasterio.open(path) as src, WarpedVRT(src, crs=grid.crs, transform=grid.transform, width=grid.width,
                                               height=grid.height, resampling=Resampling[resampling], src_nodata=nodata,
                                               nodata=nodata, blockxsize=WARP_BLOCK, blockysize=WARP_BLOCK) as masked:
        with rasterio.Env(GDAL_VRT_WARP_USE_DATASET_RASTERIO="NO"):
            expected, gdal_masks = masked.read(window=window), masked.read_masks(window=window) > 0
    assert np.array_equal(valid, gdal_masks) and np.array_equal(data, expected)
    assert valid.any() and not valid.all() and not valid[:, :, -WARP_BLOCK:].any()
    if resampling == "nearest":
        assert not np.array_equal(valid[0], valid[1])  # each band its own mask
    assert (data[~valid] == np.dtype(dtype).type(nodata)).all()


@pytest.mark.parametrize("resampling", ["nearest", "bilinear"])
def test_gdal_warps_blocks_of_warp_rows_by_warp_block_whatever_rasterio_is_told(make_raster, resampling):
    # Rows of later scenes are read by strips of WARP_ROWS on the strength of this: GDAL's warped VRT keeps its
    # default block size (rasterio's blockxsize and blockysize reach it as warp options, which it does not read).
    path = make_raster("scene.tif", textured("uint8", 0), crs="EPSG:32633", origin=(500000, 5100600), nodata=0,
                       bands=["red", "green", "blue"])
    scene = source_of(path, "scene", bands=("red", "green", "blue"))
    grid = plan_grid("EPSG:3857", bounds_polygon(scene.bounds, scene.crs, "EPSG:3857").bounds, 1.0)
    assert grid.width > WARP_BLOCK and grid.height > WARP_ROWS
    with SceneReader(scene, grid, Resampling[resampling]) as reader:
        reader.read(["red"], Window(0, 0, 8, 8), np.dtype("uint8"))
        assert [vrt.block_shapes[0] for vrt in reader._vrts.values()] == [(WARP_ROWS, WARP_BLOCK)]
    with rasterio.open(path) as src, WarpedVRT(src, crs=grid.crs, transform=grid.transform, width=grid.width,
                                               height=grid.height, blockxsize=256, blockysize=256) as told:
        assert told.block_shapes[0] == (WARP_ROWS, WARP_BLOCK)


def test_warp_scales_are_output_pixels_per_source_pixel_whatever_the_rotation():
    grid = plan_grid("EPSG:32633", (500000, 5090000, 507000, 5097000), 7.0)
    north_up = rasterio.Affine(10, 0, 501000, 0, -10, 5096000)
    assert warp_scales("EPSG:32633", north_up, 400, 300, grid) == pytest.approx((10 / 7, 10 / 7), rel=1e-9)
    # Rotated by 20 degrees: a bounding box of the source pixels a block needs would take a third more of them.
    rotated = north_up @ rasterio.Affine.rotation(20)
    assert warp_scales("EPSG:32633", rotated, 400, 300, grid) == pytest.approx((10 / 7, 10 / 7), rel=1e-9)
    # Into Web Mercator at 46 degrees north: 10 m of ground (UTM's scale factor 0.9996 on its central meridian)
    # is about 10 / 0.9996 / cos(46 deg) metres of the map (Web Mercator, spherical on the ellipsoid's
    # coordinates, stretches its two axes differently by about 0.35 % there).
    mercator = plan_grid("EPSG:3857", (1670000, 5780000, 1690000, 5800000), 14.0)
    utm = rasterio.Affine(10, 0, 500000 - 2000, 0, -10, 5095000 + 2000)
    latitude = math.radians(rasterio.warp.transform("EPSG:32633", "EPSG:4326", [500000], [5095000])[1][0])
    expected = 10 / 0.9996 / math.cos(latitude) / 14.0
    assert warp_scales("EPSG:32633", utm, 400, 400, mercator) == pytest.approx((expected, expected), rel=4e-3)


def test_bilinear_blocks_warp_with_the_scale_of_the_whole_file_as_one_large_warp_does(make_raster):
    # Near the edge of its UTM zone a scene is turned 3 degrees against Web Mercator's grid: each 512 x 128 warp
    # block needs about 155 source rows for its 128, and GDAL, left to guess the scale block by block, widens its
    # bilinear kernel as if reducing. With the file's scale, the blocks give what one large warp gives.
    rng = np.random.default_rng(11)
    data = rng.integers(1, 255, (1, 1400, 1400)).astype("uint8")
    path = make_raster("edge.tif", data, crs="EPSG:32633", origin=(260000, 5120000), nodata=0, bands=["red"])
    scene = source_of(path, "edge")
    left, bottom, right, top = bounds_polygon(scene.bounds, scene.crs, "EPSG:3857").bounds
    grid = plan_grid("EPSG:3857", (left + 2500, bottom + 2500, left + 2500 + 1024 * 14, bottom + 2500 + 1024 * 14), 14.0)
    window = Window(0, 0, 1024, 1024)
    with SceneReader(scene, grid, Resampling.bilinear) as reader:
        ours, valid = reader.read(["red"], window, np.dtype("uint8"))
    assert valid.all()
    options = dict(crs=grid.crs, transform=grid.transform, width=grid.width, height=grid.height,
                   resampling=Resampling.bilinear, src_nodata=0, nodata=0)
    with rasterio.open(path) as src:
        with rasterio.Env(GDAL_VRT_WARP_USE_DATASET_RASTERIO="YES"), WarpedVRT(src, **options) as one_warp:
            large = one_warp.read(1, window=window).astype(int)  # one chunk of 1024 x 1024: GDAL's scale is right
        with rasterio.Env(GDAL_VRT_WARP_USE_DATASET_RASTERIO="NO"), WarpedVRT(src, **options) as by_block:
            guessed = by_block.read(1, window=window).astype(int)
    assert np.abs(ours[0].astype(int) - large).max() <= 1 and (ours[0] == large).mean() > 0.95
    assert (guessed != large).mean() > 0.5  # the blur of GDAL's guesses


@pytest.mark.parametrize("dtype,nodata,values,resampling", [
    ("uint8", 100, (99, 101), "bilinear"), ("uint8", 100, (99, 101), "average"), ("uint16", 100, (99, 101), "cubic"),
    ("uint8", 0, (1, 200), "cubic"), ("int16", -32768, (-32767, -32500), "lanczos")])
@pytest.mark.parametrize("every_band", [True, False])
def test_where_an_interpolation_can_land_on_nodata_the_reader_keeps_gdals_masked_warp(make_raster, dtype, nodata,
                                                                                      values, resampling, every_band):
    # Stripes of valid values on both sides of nodata, or beside the type's least value where the kernel
    # overshoots: interpolations land on nodata. GDAL's warp with a destination nodata value moves such a pixel off
    # nodata band by band, which a warp with an alpha band for coverage could not tell from a band left uncovered
    # (another band holding data, where `every_band` is False).
    stripes = np.indices((60, 70))[1] // 3 % 2 == 1
    data = np.where(stripes, *values).astype(dtype)[None].repeat(3, axis=0)
    if not every_band:
        data[2] = values[0]
    data[:, 20:30, 25:40] = nodata
    path = make_raster("stripes.tif", data, crs="EPSG:32633", origin=(500000, 5100600), nodata=nodata,
                       bands=["red", "green", "blue"])
    scene = source_of(path, "stripes", bands=("red", "green", "blue"))
    grid = plan_grid("EPSG:3857", bounds_polygon(scene.bounds, scene.crs, "EPSG:3857").buffer(100).bounds, 7.0)
    window = Window(0, 0, grid.width, grid.height)
    with SceneReader(scene, grid, Resampling[resampling]) as reader:
        pixels, valid = reader.read(["red", "green", "blue"], window, np.dtype(dtype))
    common = dict(crs=grid.crs, transform=grid.transform, width=grid.width, height=grid.height,
                  resampling=Resampling[resampling], src_nodata=nodata)
    with rasterio.open(path) as src, WarpedVRT(src, nodata=nodata, **common) as masked, \
            WarpedVRT(src, nodata=None, add_alpha=True, **common) as covered, \
            rasterio.Env(GDAL_VRT_WARP_USE_DATASET_RASTERIO="NO"):
        expected, gdal_masks = masked.read(window=window), masked.read_masks(window=window) > 0
        raw = covered.read(window=window)
    assert ((raw[:3] == nodata) & (raw[3] > 0)).any()  # the case arises: covered pixels warped onto nodata
    assert np.array_equal(pixels, expected) and np.array_equal(valid, gdal_masks)
    assert valid.any() and not valid.all()


RGB = ["red", "green", "blue"]


def rgb_and_a_fourth_band():
    """Four bands; in one patch red, green and blue hold nodata (0) while the fourth band holds data."""
    rng = np.random.default_rng(8)
    data = rng.integers(1, 250, (4, 60, 70)).astype("uint8")
    data[:3, 20:32, 20:36] = 0
    return data


def write(path, data, nodata=None, mask=None, **profile):
    """A 10 m GeoTIFF in UTM 33N; `profile` says what its bands are (four uint8 bands default to RGBA); `mask`:
    an internal mask of the whole file (255 data, 0 none)."""
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(
            path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
            dtype=data.dtype.name, crs="EPSG:32633", nodata=nodata,
            transform=rasterio.Affine(10, 0, 500000, 0, -10, 5100600), **profile) as out:
        out.write(data)
        if mask is not None:
            out.write_mask(mask)
    return path


def grid_around(scene):
    return plan_grid("EPSG:3857", bounds_polygon(scene.bounds, scene.crs, "EPSG:3857").buffer(200).bounds, 11.0)


def read_everything(scene, grid, resampling, bands=None):
    with SceneReader(scene, grid, Resampling[resampling], bands=bands) as reader:
        return reader.read(RGB, Window(0, 0, grid.width, grid.height), np.dtype("uint8"))


@pytest.mark.parametrize("resampling", ["nearest", "bilinear", "cubic"])
def test_a_reader_warps_only_the_bands_it_reads_as_if_the_file_held_no_others(tmp_path, resampling):
    data = rgb_and_a_fourth_band()
    four = write(tmp_path / "rgbn.tif", data, nodata=0, photometric="MINISBLACK", alpha="NO")  # like NAIP's files
    three = write(tmp_path / "rgb.tif", data[:3], nodata=0)
    scene = source_of(four, "rgbn", bands=(*RGB, "nir"))
    grid = grid_around(scene)

    subset, subset_valid = read_everything(scene, grid, resampling, bands=RGB)
    reference, reference_valid = read_everything(source_of(three, "rgb", bands=RGB), grid, resampling)
    assert np.array_equal(subset, reference) and np.array_equal(subset_valid, reference_valid)
    assert subset_valid.any() and not subset_valid.all()

    # Warped with the fourth band (a reader told nothing of its bands), GDAL counts the patch as data, as one of the
    # bands holds some: nearest picks the same pixels, but an interpolation spreads the patch's zeros around it.
    everything, _ = read_everything(scene, grid, resampling)
    assert np.array_equal(everything, subset) == (resampling == "nearest")


def test_a_files_alpha_band_still_masks_the_bands_read(tmp_path):
    data = rgb_and_a_fourth_band()
    data[3] = 255
    data[3, 40:50, 10:30] = 0  # transparent, though red, green and blue hold values
    scene = source_of(write(tmp_path / "rgba.tif", data, photometric="RGB", alpha="YES"), "rgba", bands=(*RGB, "alpha"))
    without_alpha = source_of(write(tmp_path / "rgb.tif", data[:3]), "rgb", bands=RGB)
    grid = grid_around(scene)

    subset, subset_valid = read_everything(scene, grid, "nearest", bands=RGB)
    everything, everything_valid = read_everything(scene, grid, "nearest")
    assert np.array_equal(subset, everything) and np.array_equal(subset_valid, everything_valid)
    _, unmasked = read_everything(without_alpha, grid, "nearest")
    assert subset_valid.sum() < unmasked.sum()  # the transparent pixels are not data


@pytest.mark.parametrize("bands", [RGB, None])
def test_a_nodata_value_wins_over_an_alpha_band_as_in_gdals_masked_warp(tmp_path, bands):
    # Often a fourth band written as alpha is not one (NIR in RGBA files): with a nodata value, the file's alpha
    # band masks nothing, whether the warp masks nodata itself or the reader tells it from the values.
    data = rgb_and_a_fourth_band()
    data[3] = 255
    data[3, 40:50, 10:30] = 0  # "transparent", though red, green and blue hold values
    path = write(tmp_path / "rgba.tif", data, nodata=0, photometric="RGB", alpha="YES")
    scene = source_of(path, "rgba", bands=(*RGB, "alpha"))
    grid = grid_around(scene)
    pixels, valid = read_everything(scene, grid, "nearest", bands=bands)
    with rasterio.open(path) as src, WarpedVRT(src, crs=grid.crs, transform=grid.transform, width=grid.width,
                                               height=grid.height, src_nodata=0, nodata=0, blockxsize=WARP_BLOCK,
                                               blockysize=WARP_BLOCK) as masked:
        with rasterio.Env(GDAL_VRT_WARP_USE_DATASET_RASTERIO="NO"):
            expected = masked.read([1, 2, 3], window=Window(0, 0, grid.width, grid.height))
    assert np.array_equal(pixels, expected) and np.array_equal(valid, expected != 0)


def test_a_files_internal_mask_still_masks_the_bands_read(tmp_path):
    data = rgb_and_a_fourth_band()
    mask = np.full(data.shape[1:], 255, np.uint8)
    mask[5:25, 40:60] = 0
    # no nodata value: the mask says what is data
    path = write(tmp_path / "masked.tif", data, mask=mask, photometric="MINISBLACK", alpha="NO")
    scene = source_of(path, "masked", bands=(*RGB, "nir"))
    grid = grid_around(scene)
    subset, subset_valid = read_everything(scene, grid, "nearest", bands=RGB)
    everything, everything_valid = read_everything(scene, grid, "nearest")
    assert np.array_equal(subset, everything) and np.array_equal(subset_valid, everything_valid)
    assert 0 < subset_valid.mean() < 0.9


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5])
def test_without_nodata_a_file_of_any_band_count_is_valid_exactly_inside_its_footprint(tmp_path, count):
    """No nodata value, no alpha band: the warp adds an alpha band from the file's extent, and that says what is
    data (GDAL's own masks would heed it only for 2 and 4 bands in all)."""
    data = np.random.default_rng(count).integers(1, 250, (count, 60, 70)).astype("uint8")  # never 0 inside
    names = ("red", "green", "blue", "nir", "swir")[:count]
    scene = source_of(write(tmp_path / f"{count}.tif", data, photometric="MINISBLACK", alpha="NO"), "plain", bands=names)
    grid = grid_around(scene)
    with SceneReader(scene, grid) as reader:
        pixels, valid = reader.read(list(names), Window(0, 0, grid.width, grid.height), np.dtype("uint8"))
    assert np.array_equal(valid, pixels > 0)  # warped pixels outside the footprint are 0 and not data
    assert 0.2 < valid.mean() < 0.8


def test_a_source_alpha_band_masks_a_file_of_five_bands(tmp_path):
    data = np.random.default_rng(2).integers(1, 250, (5, 60, 70)).astype("uint8")
    data[4] = 255
    data[4, 10:30, 10:40] = 0
    path = write(tmp_path / "rgbna.tif", data, photometric="MINISBLACK")
    with rasterio.open(path, "r+") as out:
        out.colorinterp = [*out.colorinterp[:4], rasterio.enums.ColorInterp.alpha]
    scene = source_of(path, "rgbna", bands=(*RGB, "nir", "alpha"))
    grid = grid_around(scene)
    with SceneReader(scene, grid) as reader:
        pixels, valid = reader.read(RGB, Window(0, 0, grid.width, grid.height), np.dtype("uint8"))
    _, unmasked = read_everything(source_of(write(tmp_path / "rgb.tif", data[:3]), "rgb", bands=RGB), grid, "nearest")
    assert np.array_equal(valid, pixels > 0) and valid.sum() < unmasked.sum()


def windows(grid, height, width):
    """The grid cut into windows of height x width, row by row (edge ones smaller)."""
    for row in range(0, grid.height, height):
        for col in range(0, grid.width, width):
            yield Window(col, row, min(width, grid.width - col), min(height, grid.height - row))


@pytest.mark.parametrize("resampling", [Resampling.nearest, Resampling.bilinear])
def test_a_scene_reaches_every_window_its_warp_gives_values_and_not_its_bounding_box_s_corners(make_raster,
                                                                                               resampling):
    """A scene 12 degrees of longitude from the grid's zone is turned 7 degrees in it: the bounding box of its
    footprint holds corners it does not cover. `overlaps` must never miss a window GDAL's warp of the whole grid
    gives a value to (the footprint is grown for the transformer's error and the polygon's chords); small windows
    along every edge test that margin, whole VRT blocks in the corners that it saves reading them."""
    rng = np.random.default_rng(5)
    path = make_raster("far.tif", rng.integers(1, 1000, (1, 3000, 3000)).astype(np.uint16), nodata=0)
    scene = source_of(path, "far")
    grid = plan_grid("EPSG:32616", bounds_polygon(scene.bounds, scene.crs, "EPSG:32616").bounds, 10)
    with rasterio.open(path) as src, WarpedVRT(src, crs=grid.crs, transform=grid.transform, width=grid.width,
                                               height=grid.height, resampling=resampling, tolerance=0.125,
                                               src_nodata=0, nodata=0) as vrt:
        covered = vrt.read(1) != 0

    with SceneReader(scene, grid, resampling) as reader:
        for window in windows(grid, 8, 8):
            values = covered[window.toslices()]
            if values.any() and not values.all():  # along an edge of the footprint, where the margin counts
                assert reader.overlaps(window), window
        skipped = [w for w in windows(grid, WARP_ROWS, WARP_BLOCK) if not reader.overlaps(w)]
    assert len(skipped) >= 4, "whole blocks in the corners of the footprint's bounding box (the grid) are not read"


@pytest.mark.parametrize("validity", ["nodata", "mask"])
@pytest.mark.parametrize("resampling,resolution", [(Resampling.nearest, 10), (Resampling.bilinear, 10),
                                                   (Resampling.cubic, 10), (Resampling.average, 30),
                                                   (Resampling.bilinear, 30), (Resampling.lanczos, 30)])
def test_a_scene_s_data_area_reaches_every_pixel_its_warp_gives_a_value_and_not_the_nodata_around_it(
        tmp_path, resampling, resolution, validity):
    """A tilted swath of data, nodata (a value, or the file's mask) around it, in a scene turned 7 degrees against
    the grid. Reading by the data area must never miss a pixel that GDAL's warp of the whole grid gives a value,
    whatever the kernel and the reduction; it skips whole VRT blocks of the nodata that the bounds reach."""
    from tests.ray_render.test_data_area import swath

    rng = np.random.default_rng(6)
    valid = swath(2000, 2000)
    data = rng.integers(1, 1000, (1, 2000, 2000)).astype(np.uint16)
    if validity == "nodata":
        path = write(tmp_path / "swath.tif", data * valid, nodata=0, photometric="minisblack")
    else:
        path = write(tmp_path / "swath.tif", data, mask=np.where(valid, 255, 0).astype(np.uint8), photometric="minisblack")
    # The valid pixels' own outline, not the traced area (which has a cell or two to spare): the margin is tested.
    with rasterio.open(path) as src:
        outline = shapely.union_all([shape(g) for g, _ in rasterio.features.shapes(valid.astype(np.uint8), mask=valid,
                                                                                   transform=src.transform)])
    scene = source_of(path, "swath").model_copy(update={"data_area": to_geojson(outline)})
    grid = plan_grid("EPSG:32631", bounds_polygon(scene.bounds, scene.crs, "EPSG:32631").bounds, resolution)
    with rasterio.open(path) as src, WarpedVRT(src, crs=grid.crs, transform=grid.transform, width=grid.width,
                                               height=grid.height, resampling=resampling, tolerance=0.125,
                                               add_alpha=True) as vrt:
        covered = vrt.read(vrt.count) > 0
    # The outermost pixels the warp gives values: those with a neighbour it gives none.
    inner = np.pad(covered, 1)
    inner = inner[:-2, 1:-1] & inner[2:, 1:-1] & inner[1:-1, :-2] & inner[1:-1, 2:]
    outermost = np.argwhere(covered & ~inner)

    with SceneReader(scene, grid, resampling) as reader:
        missed = [(row, col) for row, col in outermost if not reader.overlaps(Window(col, row, 1, 1))]
        assert not missed, f"{len(missed)} of {len(outermost)} pixels given values, e.g. {missed[:3]}"
        skipped = sum(not reader.overlaps(block) for block in windows(grid, WARP_ROWS, WARP_BLOCK))
    with SceneReader(scene.model_copy(update={"data_area": None}), grid, resampling) as by_bounds:
        skipped_by_bounds = sum(not by_bounds.overlaps(block) for block in windows(grid, WARP_ROWS, WARP_BLOCK))
    assert skipped > skipped_by_bounds, (skipped, skipped_by_bounds)
