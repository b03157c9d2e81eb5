"""COGs assembled from blocks encoded one by one (no Ray here): what GDAL, rio-cogeo and tifffile see in them."""

import hashlib

import numpy as np
import pytest
import rasterio
import rasterio.shutil
import tifffile
from affine import Affine
from rasterio.enums import ColorInterp
from rio_cogeo.cogeo import cog_validate

from ray_render import blocks as blocks_module
from ray_render.blocks import assemble, layout, remove_spills, spill_dir
from ray_render.codec import BlockCodec, predictor_for
from ray_render.encoding import BlockMaker, BlockSpec
from ray_render.grid import OutputGrid
from ray_render.overviews import Validity
from ray_render.pyramid import Pyramid
from ray_render.tiff import Profile, gdal_tags, overview_tags

TILE, BLOCK = 256, 128
GRID = OutputGrid("EPSG:32633", Affine(10, 0, 500000, 0, -10, 6000000), 601, 523)


def write_cog(path, pixels, nodata=0, compress="DEFLATE", alpha=False, skip=(), grid=GRID, names=None):
    """Make every block of `pixels` the way tile actors do, then assemble the COG; tiles in `skip` are not rendered."""
    dtype = pixels.dtype.name
    spec = BlockSpec(BlockCodec(compress, dtype, BLOCK), Validity(dtype, nodata, alpha), "average")
    tiles = [(r, c) for r in range(-(-grid.height // TILE)) for c in range(-(-grid.width // TILE)) if (r, c) not in skip]
    pyramid = Pyramid(grid.width, grid.height, TILE, BLOCK, tiles, "average")
    maker = BlockMaker(spec, spill_dir(path), "actor-0")
    made, arrays = {}, {}
    for r, c in tiles:
        tile = pixels[:, r * TILE:(r + 1) * TILE, c * TILE:(c + 1) * TILE]
        made.update(maker.tile_blocks((r, c), tile, TILE))
        arrays[(0, r, c)] = tile
    for reduction in pyramid.reductions():  # planned level by level, so inputs come first
        block, out = maker.reduce(reduction, [arrays[p.unit] for p in reduction.pieces])
        made[reduction.key], arrays[reduction.key] = block, out
    maker.close()
    names = names or [f"b{i}" for i in range(pixels.shape[0])]
    full = gdal_tags(Profile(grid, pixels.shape[0], dtype, nodata, tuple(names), compress, predictor_for(dtype), BLOCK,
                             alpha))
    tags = [full] + [overview_tags(full, w, h) for w, h in pyramid.sizes[1:]]
    digest = assemble(path, layout(tags, [pyramid.grid(level) for level in range(pyramid.levels)], made), spill_dir(path))
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()  # hashed from the spills, as it was copied
    remove_spills(path)
    return pyramid


def imagery(shape, dtype="uint16", seed=0):
    rng = np.random.default_rng(seed)
    bands, height, width = shape
    coarse = rng.random((bands, height // 16 + 2, width // 16 + 2))
    smooth = np.kron(coarse, np.ones((1, 16, 16)))[:, :height, :width]
    return (1 + 4000 * (0.8 * smooth + 0.2 * rng.random(shape))).astype(dtype)


def test_gdal_reads_every_pixel_and_the_georeferencing_back(tmp_path):
    pixels = imagery((3, GRID.height, GRID.width))
    pixels[:, :20, :30] = 0
    write_cog(tmp_path / "out.tif", pixels, names=["red", "green", "blue"])
    valid, errors, warnings = cog_validate(str(tmp_path / "out.tif"))
    assert valid and not errors and not warnings, (errors, warnings)
    with rasterio.open(tmp_path / "out.tif") as cog:
        assert np.array_equal(cog.read(), pixels)
        assert cog.crs.to_epsg() == 32633 and cog.transform == GRID.transform
        assert cog.nodata == 0 and cog.descriptions == ("red", "green", "blue")
        assert cog.block_shapes[0] == (BLOCK, BLOCK) and cog.compression.name == "deflate"
        assert cog.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"  # GDAL recognises its own layout block
        assert cog.overviews(1) == [2, 4, 8]  # 601 x 523 down to 75 x 65, within one 128 px block
    assert not spill_dir(tmp_path / "out.tif").exists()


def test_overviews_equal_those_gdal_builds_from_the_same_pixels(tmp_path):
    pixels = imagery((3, GRID.height, GRID.width), seed=4)
    pixels[:, 200:, 250:] = 0
    write_cog(tmp_path / "ours.tif", pixels)
    with rasterio.open(tmp_path / "ours.tif") as ours:
        profile = ours.profile
    rasterio.shutil.copy(tmp_path / "ours.tif", tmp_path / "gdal.tif", driver="COG", blocksize=BLOCK,
                         overview_resampling="AVERAGE")
    for level in range(3):
        with rasterio.open(tmp_path / "ours.tif", overview_level=level) as a, \
                rasterio.open(tmp_path / "gdal.tif", overview_level=level) as b:
            assert np.array_equal(a.read(), b.read())
    assert profile["nodata"] == 0


def test_the_ifd_carries_the_tags_gdal_writes_in_the_same_order(tmp_path):
    pixels = imagery((3, GRID.height, GRID.width), seed=2)
    write_cog(tmp_path / "ours.tif", pixels)
    rasterio.shutil.copy(tmp_path / "ours.tif", tmp_path / "gdal.tif", driver="COG", blocksize=BLOCK, compress="DEFLATE",
                         predictor="YES")
    with tifffile.TiffFile(tmp_path / "ours.tif") as a, tifffile.TiffFile(tmp_path / "gdal.tif") as b:
        assert len(a.pages) == len(b.pages)
        for page_a, page_b in zip(a.pages, b.pages, strict=True):
            assert [t.code for t in page_a.tags] == [t.code for t in page_b.tags]
            for tag in page_a.tags:
                if tag.code not in (324, 325):  # tile offsets and sizes
                    assert tag.value == page_b.tags[tag.code].value, tag.name
        # Full resolution's IFD first; its data last, after every overview's.
        offsets = [min(o for o in page.dataoffsets if o) for page in a.pages]
        assert offsets == sorted(offsets, reverse=True)


@pytest.mark.parametrize("compress", ["DEFLATE", "ZSTD", "LZW"])
@pytest.mark.parametrize("dtype", ["uint8", "int16", "float32"])
def test_every_lossless_codec_and_predictor_decodes_in_gdal(tmp_path, compress, dtype):
    pixels = (imagery((2, GRID.height, GRID.width), "float64", seed=1) / 4000 * 250).astype(dtype)
    if dtype == "int16":
        pixels -= 120
    write_cog(tmp_path / "out.tif", pixels, nodata=-1 if dtype != "uint8" else 0, compress=compress)
    with rasterio.open(tmp_path / "out.tif") as cog:
        assert cog.compression.name == compress.lower()
        assert np.array_equal(cog.read(), pixels)


def test_tiles_never_rendered_are_sparse_and_read_as_nodata(tmp_path):
    pixels = imagery((1, GRID.height, GRID.width), seed=5)
    write_cog(tmp_path / "out.tif", pixels, nodata=0, skip={(0, 1), (2, 2)})
    expected = pixels.copy()
    expected[:, 0:256, 256:512] = 0
    expected[:, 512:, 512:] = 0
    with rasterio.open(tmp_path / "out.tif") as cog:
        assert np.array_equal(cog.read(), expected)
    assert cog_validate(str(tmp_path / "out.tif"))[0]
    with tifffile.TiffFile(tmp_path / "out.tif") as tiff:
        assert 0 in tiff.pages[0].databytecounts  # the skipped tiles take no bytes


def test_an_rgba_output_is_red_green_blue_and_alpha(tmp_path):
    rng = np.random.default_rng(9)
    rgba = rng.integers(0, 255, (4, GRID.height, GRID.width)).astype("uint8")
    rgba[3] = np.where(rgba[3] > 60, 255, 0)
    write_cog(tmp_path / "out.tif", rgba, nodata=None, alpha=True, names=["red", "green", "blue", "alpha"])
    with rasterio.open(tmp_path / "out.tif") as cog:
        assert cog.colorinterp == (ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha)
        assert np.array_equal(cog.read(), rgba)
        assert cog.nodata is None


def test_a_file_past_the_classic_tiff_limit_is_bigtiff(tmp_path, monkeypatch):
    monkeypatch.setattr(blocks_module, "CLASSIC_LIMIT", 1000)
    pixels = imagery((1, GRID.height, GRID.width), seed=6)
    write_cog(tmp_path / "out.tif", pixels)
    assert (tmp_path / "out.tif").read_bytes()[:4] == b"II+\0"
    with rasterio.open(tmp_path / "out.tif") as cog:
        assert np.array_equal(cog.read(), pixels)
    assert cog_validate(str(tmp_path / "out.tif"))[0]
