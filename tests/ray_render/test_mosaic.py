"""Mosaicking real rasters written by the factory: project order, nodata fall-through, mixed CRSs."""

import numpy as np
import pytest
import rasterio
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from models.catalogue import scene_source
from models.tables import Scene
from models.tooltree import Identity, Output, ProjectSource, parse_tool_tree
from ray_render.geometry import bounds_polygon
from ray_render.grid import plan_grid
from ray_render.inspect import inspect_scene
from ray_render.mosaic import WHOLE, FirstValid
from ray_render.reader import BLOCKWISE_WARP, WARP_BLOCK, WARP_ROWS
from ray_render.tile import TileRenderer, empty_strips, joined_reads, warp_block_parts


def source_of(path, name, bands=("red",)):
    from dataclasses import asdict

    info = asdict(inspect_scene(path=str(path), band_names=list(bands)))
    return scene_source(Scene(id=None, name=name, owner_id=1, **info))


def identity_tree(*scenes, bands=("red",), dtype="uint16"):
    root = Output(input=Identity(input=ProjectSource(scenes=list(scenes), bands=list(bands))), dtype=dtype, nodata=0)
    return parse_tool_tree(root.model_dump(mode="json"))


def render_all(tree, grid):
    with TileRenderer(tree, grid) as renderer:
        return renderer.render(Window(0, 0, grid.width, grid.height))


@pytest.fixture
def overlapping_pair(make_raster):
    """Two 10 m scenes, 20x20 px each, overlapping by 10 px in x; A has a nodata hole in the overlap."""
    a = np.full((1, 20, 20), 100, np.uint16)
    a[0, 5:10, 12:16] = 0  # nodata hole inside the overlap
    b = np.full((1, 20, 20), 200, np.uint16)
    path_a = make_raster("a.tif", a, origin=(500000, 4000200), nodata=0)
    path_b = make_raster("b.tif", b, origin=(500100, 4000200), nodata=0)
    return source_of(path_a, "a"), source_of(path_b, "b")


def test_first_scene_in_project_order_wins_and_nodata_falls_through(overlapping_pair):
    a, b = overlapping_pair
    grid = plan_grid("EPSG:32618", (500000, 4000000, 500300, 4000200), 10)
    out = render_all(identity_tree(a, b), grid)[0]
    assert out.shape == (20, 30)
    assert (out[:, :10] == 100).all()                         # only A
    assert (out[:, 20:] == 200).all()                         # only B
    overlap = out[:, 10:20]
    assert (overlap[5:10, 2:6] == 200).all()                  # A's hole is filled from B
    hole = np.zeros_like(overlap, bool)
    hole[5:10, 2:6] = True
    assert (overlap[~hole] == 100).all()                      # elsewhere A wins


def test_reversing_project_order_reverses_priority(overlapping_pair):
    a, b = overlapping_pair
    grid = plan_grid("EPSG:32618", (500000, 4000000, 500300, 4000200), 10)
    out = render_all(identity_tree(b, a), grid)[0]
    assert (out[:, 10:20] == 200).all()


def test_pixels_no_scene_covers_are_nodata(overlapping_pair):
    a, b = overlapping_pair
    grid = plan_grid("EPSG:32618", (499900, 4000000, 500400, 4000200), 10)
    out = render_all(identity_tree(a, b), grid)[0]
    assert (out[:, :10] == 0).all() and (out[:, -10:] == 0).all()


def test_scenes_in_another_crs_are_warped_into_the_output_grid(make_raster):
    # A scene in UTM 18N and the same ground in Web Mercator output: values survive the warp.
    data = np.arange(1, 401, dtype=np.uint16).reshape(1, 20, 20)
    scene = source_of(make_raster("utm.tif", data, origin=(500000, 4000200), nodata=0), "utm")
    footprint = bounds_polygon(scene.bounds, scene.crs, "EPSG:3857")
    grid = plan_grid("EPSG:3857", footprint.bounds, 10)
    out = render_all(identity_tree(scene), grid)[0]
    assert set(np.unique(out)) - {0} <= set(range(1, 401))
    # Nearly every source value appears (Mercator pixels are ~1.24x smaller here, so none is skipped),
    # and the output's valid area matches the scene's footprint.
    assert len(set(np.unique(out)) - {0}) > 390
    assert abs((out > 0).sum() * 100 - footprint.area) / footprint.area < 0.05


def test_a_scene_without_the_band_contributes_nothing_to_it(make_raster):
    red_only = source_of(make_raster("r.tif", np.full((1, 10, 10), 7, np.uint16), nodata=0), "r", bands=("red",))
    both = source_of(make_raster("rn.tif", np.full((2, 10, 10), 9, np.uint16), nodata=0), "rn", bands=("red", "nir"))
    grid = plan_grid("EPSG:32618", (500000, 3999900, 500100, 4000000), 10)
    out = render_all(identity_tree(red_only, both, bands=("red", "nir")), grid)
    assert (out[0] == 7).all() and (out[1] == 9).all()


def test_reflectance_reads_apply_each_scenes_own_scale_and_offset(make_raster):

    left = np.full((1, 10, 10), 10000, np.uint16)
    right = np.full((1, 10, 10), 5000, np.uint16)
    a = make_raster("a.tif", left, origin=(500000, 4000100), nodata=0)
    b = make_raster("b.tif", right, origin=(500100, 4000100), nodata=0)
    scene_a = source_of(a, "a", bands=("nir",))
    scene_b = source_of(b, "b", bands=("nir",))
    scaled_a = scene_a.model_copy(update={"bands": [scene_a.bands[0].model_copy(update={"scale": 0.0000275, "offset": -0.2})]})
    scaled_b = scene_b.model_copy(update={"bands": [scene_b.bands[0].model_copy(update={"scale": 0.0001})]})
    source = ProjectSource(scenes=[scaled_a, scaled_b], bands=["nir"], reflectance=True)
    tree = parse_tool_tree(Output(input=Identity(input=source), dtype="float32", nodata=-9999).model_dump(mode="json"))
    out = render_all(tree, plan_grid("EPSG:32618", (500000, 4000000, 500200, 4000100), 10))
    assert out[0, 0, 0] == pytest.approx(10000 * 0.0000275 - 0.2) and out[0, 0, 15] == pytest.approx(0.5)


def test_a_later_scene_is_warped_only_for_the_strips_of_warp_blocks_left_with_empty_pixels(make_raster):
    # A grid of 2 x 2 warp blocks, one tile. A covers the left 700 columns, with a nodata hole in the lower-left
    # block; B covers everything. B is needed for the right-hand blocks (every row of them has empty pixels) and
    # for the one strip of the lower-left block that holds the hole, not for the upper-left block.
    first = np.full((1, 1024, 700), 100, np.uint16)
    first[0, 600:620, 100:120] = 0
    a = source_of(make_raster("a.tif", first, nodata=0), "a")
    b = source_of(make_raster("b.tif", np.full((1, 1024, 1024), 200, np.uint16), nodata=0), "b")
    grid = plan_grid("EPSG:32618", (500000, 4000000 - 10240, 500000 + 10240, 4000000), 10)
    assert (grid.width, grid.height) == (2 * WARP_BLOCK, 2 * WARP_BLOCK)
    tree = identity_tree(a, b)

    with TileRenderer(tree, grid) as renderer:
        out = renderer.render(Window(0, 0, grid.width, grid.height))[0]
        read = renderer.bytes_read
    expected = np.full((1024, 1024), 200, np.uint16)
    expected[:, :700] = 100
    expected[600:620, 100:120] = 200
    assert np.array_equal(out, expected)
    # A's whole window in one read, then two of B's four blocks and one strip of another (2 bytes a pixel).
    assert read == 2 * (1024 * 1024 + 2 * WARP_BLOCK * WARP_BLOCK + WARP_ROWS * WARP_BLOCK)
    with TileRenderer(tree, grid) as renderer:  # block by block: the same pixels
        for row in (0, WARP_BLOCK):
            for col in (0, WARP_BLOCK):
                block = renderer.render(Window(col, row, WARP_BLOCK, WARP_BLOCK))[0]
                assert np.array_equal(block, out[row:row + WARP_BLOCK, col:col + WARP_BLOCK])


def test_strips_of_a_later_scene_hold_the_pixels_of_gdal_s_whole_grid_warp(make_raster):
    """A later scene in another CRS, read only for the strips of its warp blocks with holes, gives the pixels
    GDAL's warp of the whole grid gives."""
    rng = np.random.default_rng(3)
    first = rng.integers(1, 1000, (1, 1100, 1100)).astype(np.uint16)
    first[0, 300:310, 200:900] = 0  # a hole across a few rows: B is read for one or two strips of those blocks
    first[0, 700:760, 40:60] = 0
    a = source_of(make_raster("a.tif", first, nodata=0), "a")
    grid = plan_grid("EPSG:32618", (500000, 4000000 - 10240, 500000 + 10240, 4000000), 10)
    left, _, _, top = transform_bounds(grid.crs, "EPSG:32617", *grid.bounds)  # the same ground, one zone west
    later = rng.integers(1, 1000, (1, 1300, 1300)).astype(np.uint16)
    path_b = make_raster("b.tif", later, crs="EPSG:32617", origin=(left - 500.0, top + 500.0), nodata=0)
    b = source_of(path_b, "b")
    with TileRenderer(identity_tree(a, b), grid) as renderer:
        out = renderer.render(Window(0, 0, grid.width, grid.height))[0]
        read = renderer.bytes_read
    with rasterio.open(path_b) as src, WarpedVRT(src, crs=grid.crs, transform=grid.transform, width=grid.width,
                                                 height=grid.height, resampling=Resampling.nearest, tolerance=0.125,
                                                 src_nodata=0, nodata=0, blockxsize=WARP_BLOCK,
                                                 blockysize=WARP_BLOCK) as vrt, rasterio.Env(**BLOCKWISE_WARP):
        whole_blocks = vrt.read(1)
    expected = np.where(first[0, :1024, :1024] != 0, first[0, :1024, :1024], whole_blocks)
    hole = first[0, :1024, :1024] == 0
    assert (whole_blocks[hole] != 0).all()  # B covers the holes: the test compares warped pixels
    assert np.array_equal(out, expected)
    assert read < 2 * (1024 * 1024 + 3 * WARP_ROWS * 2 * WARP_BLOCK)  # A once, a few strips of B


def test_empty_strips_are_cut_at_the_grid_s_multiples_of_the_strip_halo_included():
    # Rows -70 .. 70 of a window with a halo (its place in the window starts at row 5): rows -70 and 10 .. 12
    # hold empty pixels. Strips are cut at -128, -64, 0, 64 of the grid.
    part = Window(-3, -70, 20, 140)
    empty = np.zeros(140, bool)
    empty[0] = True          # grid row -70: strip [-128, -64), cut to the part: [-70, -64)
    empty[80:83] = True      # grid rows 10 .. 12: strip [0, 64)
    strips = empty_strips(part, (slice(5, 145), slice(0, 20)), empty, 64)
    assert [(w.row_off, w.height, at[0]) for w, at in strips] == [(-70, 6, slice(5, 11)), (0, 64, slice(75, 139))]
    assert all(w.col_off == -3 and w.width == 20 and at[1] == slice(0, 20) for w, at in strips)
    # Only those a scene reaches; with no mosaic yet (None), every strip is empty.
    below_zero = empty_strips(part, (slice(5, 145), slice(0, 20)), None, 64, lambda strip: strip.row_off < 0)
    assert [(w.row_off, w.height) for w, _ in below_zero] == [(-70, 6), (-64, 64)]
    empty[69] = True         # grid row -1 too: the strips from -70 to 64 follow each other, one read once joined
    strips = empty_strips(part, (slice(5, 145), slice(0, 20)), empty, 64)
    assert [(w.row_off, w.height) for w, _ in joined_reads(Window(-3, -75, 20, 150), [at for _, at in strips])] == [
        (-70, 134)]


def test_a_window_is_cut_at_the_grid_s_warp_blocks_halo_included():
    parts = warp_block_parts(Window(-3, 509, 518, 6))
    assert [(p.col_off, p.row_off, p.width, p.height) for p, _ in parts] == [
        (-3, 509, 3, 3), (0, 509, 512, 3), (512, 509, 3, 3), (-3, 512, 3, 3), (0, 512, 512, 3), (512, 512, 3, 3)]
    assert [at for _, at in parts][4] == (slice(3, 6), slice(3, 515))


@pytest.mark.parametrize("first_at", [WHOLE, (slice(0, 4), slice(2, 7))])
def test_first_valid_takes_each_pixel_from_the_first_scene_that_has_it(first_at):
    """The mosaic's own rule, fed as the renderer feeds it: a first scene over the whole window is kept as it is
    (no copy), over a part of it copied in; either way later scenes fill only what is still empty."""
    rng = np.random.default_rng(7)
    shape = (2, 6, 8)
    scenes = [(rng.integers(1, 100, shape).astype(np.uint16), rng.random(shape) < 0.5) for _ in range(3)]
    mosaic = FirstValid(shape, np.uint16)
    first_data, first_valid = scenes[0]
    mosaic.feed(first_data[..., first_at[0], first_at[1]].copy(), first_valid[..., first_at[0], first_at[1]].copy(),
                first_at)
    for data, valid in scenes[1:]:
        mosaic.feed(data.copy(), valid.copy())
    # The reference: scene by scene, a pixel keeps the first valid value (the first scene only inside `first_at`).
    expected = np.zeros(shape, np.uint16)
    filled = np.zeros(shape, bool)
    first_region = np.zeros(shape, bool)
    first_region[..., first_at[0], first_at[1]] = True
    for n, (data, valid) in enumerate(scenes):
        usable = valid & ~filled & (first_region if n == 0 else True)
        expected[usable] = data[usable]
        filled |= usable
    result = mosaic.result()
    assert np.array_equal(~np.ma.getmaskarray(result), filled)
    assert np.array_equal(result.filled(0), expected)


def test_first_valid_with_nothing_fed_is_all_empty():
    result = FirstValid((1, 3, 4), np.uint8).result()
    assert result.mask.all() and result.shape == (1, 3, 4)


def test_pieces_side_by_side_then_above_one_another_are_read_together():
    window = Window(1000, 2000, 1024, 1024)
    pieces = [(slice(0, 512), slice(0, 512)), (slice(0, 512), slice(512, 1024)),  # two whole warp blocks
              (slice(512, 640), slice(512, 1024)), (slice(512, 640), slice(0, 512)),  # a strip of each below
              (slice(896, 1024), slice(512, 1024))]  # a strip of one block further down
    reads = joined_reads(window, pieces)
    assert reads == [(Window(1000, 2000, 1024, 640), (slice(0, 640), slice(0, 1024))),
                     (Window(1512, 2896, 512, 128), (slice(896, 1024), slice(512, 1024)))]
    assert joined_reads(window, []) == []


@pytest.mark.parametrize("resampling", ["nearest", "bilinear"])
def test_scenes_read_by_their_data_areas_give_the_same_mosaic_for_fewer_pixels_warped(make_raster, resampling):
    """Two tilted swaths in neighbouring UTM zones, nodata around each, mosaicked in Web Mercator: each scene read
    only where its data area reaches gives the pixels of each read wherever its bounds reach, for less warping."""
    from tests.ray_render.test_data_area import swath

    rng = np.random.default_rng(9)
    a_path = make_raster("a.tif", (rng.integers(1, 1000, (2, 1200, 1200)) * swath(1200, 1200, 12)).astype(np.uint16),
                         nodata=0)
    left, _, _, top = transform_bounds("EPSG:32618", "EPSG:32617", 503000, 3990000, 515000, 4002000)
    b_path = make_raster("b.tif", (rng.integers(1, 1000, (2, 1200, 1200)) * swath(1200, 1200, -9)).astype(np.uint16),
                         crs="EPSG:32617", origin=(left, top), nodata=0)
    a, b = source_of(a_path, "a", ("red", "nir")), source_of(b_path, "b", ("red", "nir"))
    assert a.data_area is not None and b.data_area is not None
    area = bounds_polygon(a.bounds, a.crs, "EPSG:3857").union(bounds_polygon(b.bounds, b.crs, "EPSG:3857"))
    grid = plan_grid("EPSG:3857", area.bounds, 13)

    def render(*scenes):
        with TileRenderer(identity_tree(*scenes, bands=("red", "nir")), grid, resampling=resampling) as renderer:
            tiles = [[renderer.render(Window(col, row, min(1024, grid.width - col), min(1024, grid.height - row)))
                      for col in range(0, grid.width, 1024)] for row in range(0, grid.height, 1024)]
            return np.block(tiles), renderer.bytes_read

    by_area, read_by_area = render(a, b)
    by_bounds, read_by_bounds = render(*(s.model_copy(update={"data_area": None}) for s in (a, b)))
    assert (by_area != 0).mean() > 0.3  # the swaths hold data, and so the comparison means something
    assert np.array_equal(by_area, by_bounds)
    assert read_by_area < 0.9 * read_by_bounds
