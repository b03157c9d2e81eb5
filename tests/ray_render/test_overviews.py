"""Overview blocks computed block by block agree with the overviews GDAL's COG driver builds itself."""

import math
from fractions import Fraction

import numpy as np
import pytest
import rasterio
import rasterio.shutil
from affine import Affine

from ray_render.overviews import Axis, Validity, level_sizes, reduce_block

BLOCK = 128


def gdal_overviews(tmp_path, pixels, nodata, method, alpha=False):
    """Every overview level GDAL's COG driver builds for `pixels`, largest first."""
    bands, height, width = pixels.shape
    profile = dict(driver="GTiff", width=width, height=height, count=bands, dtype=pixels.dtype.name, nodata=nodata,
                   crs="EPSG:32633", transform=Affine(10, 0, 500000, 0, -10, 6000000), tiled=True)
    if alpha:
        profile.update(photometric="RGB", alpha="YES")
    with rasterio.open(tmp_path / "flat.tif", "w", **profile) as flat:
        flat.write(pixels)
    rasterio.shutil.copy(tmp_path / "flat.tif", tmp_path / "cog.tif", driver="COG", blocksize=BLOCK,
                         overviews="AUTO", overview_resampling=method)
    with rasterio.open(tmp_path / "cog.tif") as cog:
        count = len(cog.overviews(1))
    levels = []
    for level in range(count):
        with rasterio.open(tmp_path / "cog.tif", overview_level=level) as view:
            levels.append(view.read())
    return levels


def our_overviews(pixels, validity, method):
    """Every overview level, each made block by block from the level below, as the tile actors make them."""
    sizes = level_sizes(pixels.shape[2], pixels.shape[1], BLOCK)
    below, levels = pixels, []
    for (sw, sh), (tw, th) in zip(sizes, sizes[1:], strict=False):
        y, x = Axis(sh, th, method), Axis(sw, tw, method)
        level = np.zeros((pixels.shape[0], th, tw), pixels.dtype)
        for r0 in range(0, th, BLOCK):
            for c0 in range(0, tw, BLOCK):
                rows, cols = (r0, min(th, r0 + BLOCK)), (c0, min(tw, c0 + BLOCK))
                (ylo, yhi), (xlo, xhi) = y.span(*rows), x.span(*cols)
                level[:, r0:rows[1], c0:cols[1]] = reduce_block(below[:, ylo:yhi, xlo:xhi], y, x, rows, cols, validity)
        levels.append(level)
        below = level
    return levels


def assert_same_as_gdal(ours, theirs):
    """Equal, but for means that land on an exact half (1 DN): ours are exact and round halves away from zero,
    GDAL's float sums land a little either side of them (about 0.3 % of the pixels of an odd-sided level)."""
    difference = np.abs(ours.astype(np.int64) - theirs)
    assert difference.max() <= 1 and (difference == 0).mean() > 0.99


def textured(rng, shape, low, high, dtype):
    """Imagery-like pixels: smooth structure plus noise."""
    bands, height, width = shape
    coarse = rng.random((bands, height // 8 + 2, width // 8 + 2))
    smooth = np.kron(coarse, np.ones((1, 8, 8)))[:, :height, :width]
    return (low + (high - low) * (0.7 * smooth + 0.3 * rng.random(shape))).astype(dtype)


def test_level_sizes_halve_rounding_down_until_one_block_holds_the_level():
    assert level_sizes(1300, 1100, 512) == [(1300, 1100), (650, 550), (325, 275)]
    assert level_sizes(512, 300, 512) == [(512, 300)]
    assert level_sizes(2049, 700, 512) == [(2049, 700), (1024, 350), (512, 175)]


def test_a_source_span_reaches_at_most_one_pixel_past_the_children():
    axis = Axis(1001, 500, "average")  # ratio 2.002
    assert axis.span(0, 128) == (0, 257)
    assert axis.span(384, 500) == (768, 1001)
    assert Axis(1000, 500, "average").span(128, 256) == (256, 512)


@pytest.mark.parametrize("width,height", [(512, 512), (601, 389), (1025, 300)])
def test_average_with_nodata_matches_gdal(tmp_path, width, height):
    rng = np.random.default_rng(width)
    pixels = textured(rng, (3, height, width), 1, 255, "uint8")
    pixels[:, :37, :53] = 0  # a nodata corner
    pixels[1, 100:103, 40:45] = 0  # a hole in one band only
    ours = our_overviews(pixels, Validity("uint8", 0), "average")
    theirs = gdal_overviews(tmp_path, pixels, 0, "AVERAGE")
    assert [o.shape for o in ours] == [t.shape for t in theirs]
    for o, t in zip(ours, theirs, strict=True):
        assert_same_as_gdal(o, t)


@pytest.mark.parametrize("height,width", [(389, 601), (256, 512)])  # odd sides (weighted), even (integer halves)
def test_signed_and_floating_point_averages_match_gdal(tmp_path, height, width):
    rng = np.random.default_rng(7)
    signed = textured(rng, (1, height, width), -3000, 3000, "int16")
    signed[:, -40:, -40:] = -9999
    for o, t in zip(our_overviews(signed, Validity("int16", -9999), "average"),
                    gdal_overviews(tmp_path, signed, -9999, "AVERAGE"), strict=True):
        assert np.abs(o.astype(int) - t).max() <= 1 and (o == t).mean() > 0.99  # GDAL rounds int16 halves at float precision
    floats = textured(rng, (1, height, width), 0, 1, "float32")
    floats[:, 5:50, 5:9] = np.nan
    for o, t in zip(our_overviews(floats, Validity("float32", float("nan")), "average"),
                    gdal_overviews(tmp_path, floats, float("nan"), "AVERAGE"), strict=True):
        assert np.array_equal(np.isnan(o), np.isnan(t))
        assert np.nanmax(np.abs(o - t)) < 1e-6


@pytest.mark.parametrize("height,width", [(300, 555), (256, 512)])
def test_alpha_masks_every_band_of_an_rgba_output_like_gdal(tmp_path, height, width):
    rng = np.random.default_rng(3)
    rgba = textured(rng, (4, height, width), 0, 255, "uint8")
    rgba[3] = np.where(rng.random((height, width)) < 0.2, 0, 255)
    rgba[:, :20] = 0
    for o, t in zip(our_overviews(rgba, Validity("uint8", None, alpha=True), "average"),
                    gdal_overviews(tmp_path, rgba, None, "AVERAGE", alpha=True), strict=True):
        assert_same_as_gdal(o, t)


# (source height, target height, output rows), (source width, target width, output cols): a whole small level,
# whose simple weights give exact halves; rows and columns inside a large level, more rows than one strip
# (`STRIP_ROWS`), whose sums need int64; and the first level of a 20,000 px image, odd rows and even columns,
# whose uint16 sums need more than int32 and fit uint32; and the same with the odd side across. Unsigned types take
# their own sums (`_unsigned_average`): a nodata value amid the values (cleared before summing, and means that land
# on it moved off), at the top of the type, and uint32 at the top of its range (sums in uint64).
LEVELS = [((23, 11, (0, 11)), (17, 8, (0, 8))), ((4001, 2000, (1000, 1150)), (3001, 1500, (700, 709))),
          ((20051, 10025, (10000, 10025)), (2000, 1000, (0, 9))), ((2000, 1000, (990, 1000)), (20051, 10025, (0, 70)))]


@pytest.mark.parametrize("dtype,nodata,low,high", [("uint8", 0, 1, 5), ("uint16", 0, 60000, 60004),
                                                   ("uint16", 0, 65530, 65535), ("int16", -9999, -3, 3),
                                                   ("uint8", 3, 1, 5), ("uint8", 255, 250, 255),
                                                   ("uint32", 0, 2**32 - 4, 2**32 - 1)])
@pytest.mark.parametrize("along_y,along_x", LEVELS)
@pytest.mark.parametrize("coverage", ["partial", "whole"])
def test_an_odd_sided_integer_average_is_the_exact_area_weighted_mean(dtype, nodata, low, high, along_y, along_x,
                                                                      coverage):
    """Against the definition, in fractions: each output pixel covers source pixels [i * S / T, (i + 1) * S / T)
    on each axis; the mean of the valid ones under it, weighted by area, rounded half away from zero. Few values
    give many exact halves; values at the top of the type give the largest sums a type must hold."""
    (sh, th, rows), (sw, tw, cols) = along_y, along_x
    y, x = Axis(sh, th, "average"), Axis(sw, tw, "average")
    (ylo, yhi), (xlo, xhi) = y.span(*rows), x.span(*cols)
    rng = np.random.default_rng(11)
    source = rng.integers(low, high, (1, yhi - ylo, xhi - xlo), endpoint=True).astype(dtype)
    if coverage == "partial":
        source[0, 2:6, 3:8] = nodata
        source[rng.random(source.shape) < 0.4] = nodata  # partial coverage: simple weights, so exact halves
    ours = reduce_block(source, y, x, rows, cols, Validity(dtype, nodata))
    assert ours.shape == (1, rows[1] - rows[0], cols[1] - cols[0])

    def covered(i, side, target, lo):
        left, right = Fraction(i * side, target), Fraction((i + 1) * side, target)
        return [(k - lo, min(right, k + 1) - max(left, k)) for k in range(int(left), min(side, math.ceil(right)))]

    halves = 0
    for r in range(*rows):
        for c in range(*cols):
            total = weight = Fraction(0)
            for row, wy in covered(r, sh, th, ylo):
                for col, wx in covered(c, sw, tw, xlo):
                    if source[0, row, col] != nodata:
                        total += int(source[0, row, col]) * wy * wx
                        weight += wy * wx
            found = ours[0, r - rows[0], c - cols[0]]
            if weight == 0:
                assert found == nodata
                continue
            mean = total / weight
            halves += mean.denominator == 2
            rounded = math.floor(abs(mean) + Fraction(1, 2)) * (1 if mean >= 0 else -1)
            expected = rounded if rounded != nodata else nodata + 1
            assert found == expected, (r, c, mean)
    assert halves or sh > 100 or coverage == "whole", "the small sample should hold a mean that is an exact half"


def test_nearest_picks_the_pixels_gdal_picks(tmp_path):
    # Each pixel holds its own column and row, so any wrong pick shows.
    height, width = 389, 601
    cols, rows = np.meshgrid(np.arange(width), np.arange(height))
    pixels = np.stack([cols, rows]).astype("uint16") + 1
    for o, t in zip(our_overviews(pixels, Validity("uint16", 0), "nearest"),
                    gdal_overviews(tmp_path, pixels, 0, "NEAREST"), strict=True):
        assert np.array_equal(o, t)


def test_a_valid_mean_never_becomes_nodata():
    pixels = np.zeros((1, 2, 2), "uint8")
    pixels[0, :, 0], pixels[0, :, 1] = 99, 101  # their mean, 100, is the nodata value
    out = reduce_block(pixels, Axis(2, 1, "average"), Axis(2, 1, "average"), (0, 1), (0, 1), Validity("uint8", 100))
    assert out[0, 0, 0] == 101  # GDAL's replacement: one step up
    empty = np.full((1, 2, 2), 100, "uint8")
    out = reduce_block(empty, Axis(2, 1, "average"), Axis(2, 1, "average"), (0, 1), (0, 1), Validity("uint8", 100))
    assert out[0, 0, 0] == 100  # nothing valid under it: nodata
