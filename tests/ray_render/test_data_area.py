"""A scene's data area: it holds every valid pixel, and little of the nodata around them."""

import numpy as np
import pytest
import rasterio
import rasterio.features
import shapely
from rasterio.windows import Window
from shapely.geometry import box, shape

from models.errors import InvalidRequest
from ray_render.data_area import CHUNK, MAX_VERTICES, cell_size, data_area, valid_cells, whole_block_windows
from ray_render.inspect import inspect_scene
from tests.conftest import require_imagery
from tests.ray_render.test_reader import write


def swath(rows: int, cols: int, turn_degrees: float = 12.0, fill: float = 0.7) -> np.ndarray:
    """Where a tilted swath holds data in a rows x cols raster (as Landsat's do): a rectangle turned about the
    centre, covering `fill` of each side before the turn."""
    r, c = np.mgrid[0:rows, 0:cols]
    y, x = r - rows / 2, c - cols / 2
    turn = np.radians(turn_degrees)
    along, across = x * np.cos(turn) + y * np.sin(turn), -x * np.sin(turn) + y * np.cos(turn)
    return (np.abs(along) < fill * cols / 2) & (np.abs(across) < fill * rows / 2)


def pixel_squares(valid: np.ndarray, transform) -> tuple[np.ndarray, np.ndarray]:
    """The corners and centres of every valid pixel, in the raster's CRS: the points the area must hold."""
    rows, cols = np.nonzero(valid)
    points = [transform @ (cols + dc, rows + dr) for dr, dc in ((0, 0), (0, 1), (1, 0), (1, 1), (0.5, 0.5))]
    return np.concatenate([p[0] for p in points]), np.concatenate([p[1] for p in points])


def assert_holds_every_valid_pixel(area, valid, path):
    with rasterio.open(path) as src:
        xs, ys = pixel_squares(valid, src.transform)
    assert shapely.intersects_xy(area, xs, ys).all()


def test_the_area_holds_every_valid_pixel_and_leaves_out_the_nodata_around_the_swath(tmp_path):
    rng = np.random.default_rng(4)
    valid = swath(700, 900)
    data = rng.integers(1, 4000, (3, 700, 900)).astype(np.uint16) * valid
    data[1, 20, 30] = 77  # one pixel of one band alone, far out in the nodata: it must not be left out
    valid[20, 30] = True
    path = write(tmp_path / "swath.tif", data, nodata=0)

    area = shape(data_area([str(path)], None))

    assert_holds_every_valid_pixel(area, valid, path)
    pixel_area, cell = 100.0, cell_size(900, 700) * 10.0
    with rasterio.open(path) as src:
        bounds_area = src.width * src.height * pixel_area
    # The swath and a ring about two cells wide around it (and around the lone pixel), not the whole rectangle.
    assert area.area < valid.sum() * pixel_area + 3 * cell * shapely.length(area) < 0.75 * bounds_area
    assert shapely.get_num_coordinates(area) <= MAX_VERTICES


@pytest.mark.parametrize("layout", [{"tiled": True, "blockxsize": 48, "blockysize": 32},
                                    {"tiled": False, "blockysize": 5}, {"tiled": False, "blockysize": 1}])
def test_cells_read_in_whole_blocks_are_those_of_every_pixel_whatever_the_file_s_layout(tmp_path, layout):
    # Blocks of 48 x 32 px, strips of 5 rows or of one: none falls on the cells' 8 px edges.
    rng = np.random.default_rng(9)
    valid = swath(1100, 1300) | (rng.random((1100, 1300)) < 0.0005)
    data = (rng.integers(1, 255, (2, 1100, 1300)) * valid).astype(np.uint8)
    path = write(tmp_path / "layout.tif", data, nodata=0, **layout)

    cells, _, _ = valid_cells([str(path)], None)

    cell = cell_size(1300, 1100)
    padded = np.zeros((-(-1100 // cell) * cell, -(-1300 // cell) * cell), dtype=bool)
    padded[:1100, :1300] = valid
    expected = padded.reshape(padded.shape[0] // cell, cell, padded.shape[1] // cell, cell).any(axis=(1, 3))
    assert np.array_equal(cells, expected)


@pytest.mark.parametrize("width,height,block", [(13000, 13000, (256, 256)), (13000, 9000, (1, 13000)),
                                                (40000, 700, (512, 40000)), (1000, 1000, (2048, 2048)),
                                                (10980, 10980, (1024, 1024))])
def test_the_tracer_reads_whole_blocks_each_once_about_a_chunk_at_a_time(width, height, block):
    windows = whole_block_windows(width, height, block)
    covered = np.zeros((-(-height // block[0]), -(-width // block[1])), dtype=int)
    for w in windows:
        assert w.row_off % block[0] == 0 and w.col_off % block[1] == 0  # starts on a block ...
        assert w.row_off + w.height == height or w.height % block[0] == 0  # ... and ends on one or on the edge
        assert w.col_off + w.width == width or w.width % block[1] == 0
        # About a chunk of pixels, unless one block (a strip of a wide file) is more.
        assert w.width * w.height <= max(CHUNK * CHUNK, block[0] * block[1])
        covered[w.row_off // block[0]:-(-(w.row_off + w.height) // block[0]),
                w.col_off // block[1]:-(-(w.col_off + w.width) // block[1])] += 1
    assert (covered == 1).all()  # every block in exactly one window
    if block[1] >= width:  # strips: read whole rows, not once per window across
        assert all(w.width == width for w in windows)


def test_without_a_nodata_value_the_file_s_mask_says_where_the_data_is(tmp_path):
    rng = np.random.default_rng(5)
    data = rng.integers(0, 256, (3, 300, 400)).astype(np.uint8)  # zeros are data here
    valid = swath(300, 400, turn_degrees=-20)
    path = write(tmp_path / "masked.tif", data, mask=np.where(valid, 255, 0).astype(np.uint8))

    area = shape(data_area([str(path)], None))

    assert_holds_every_valid_pixel(area, valid, path)
    with rasterio.open(path) as src:
        corner = src.transform @ (2, 2)  # masked out, far from the swath
    assert not area.intersects(shapely.Point(corner))


def test_a_scene_s_nodata_value_counts_where_the_file_has_none(tmp_path):
    # `scenes add --nodata 0` on a file that declares none: the readers take 0 as nodata, so does the area.
    data = np.zeros((1, 300, 300), np.uint8)
    data[:, 100:200, 100:200] = 9
    path = write(tmp_path / "undeclared.tif", data, photometric="minisblack")

    info = inspect_scene(path=str(path), band_names=["pan"], nodata=0)

    area = shape(info.data_area)
    with rasterio.open(path) as src:
        assert area.covers(shapely.box(*src.xy(100, 100, offset="ul"), *src.xy(200, 200, offset="ul")))
        assert area.area < 0.3 * (src.width * src.height * 100)
    assert shape(inspect_scene(path=str(path), band_names=["pan"]).data_area).area == pytest.approx(300 * 300 * 100)


def test_a_scene_of_single_band_files_holds_data_wherever_any_of_them_does(tmp_path):
    left, right = np.zeros((1, 200, 300), np.uint16), np.zeros((1, 200, 300), np.uint16)
    left[:, :, :100] = 5
    right[:, :, 200:] = 6
    a = write(tmp_path / "b1.tif", left, nodata=0, photometric="minisblack")
    b = write(tmp_path / "b2.tif", right, nodata=0, photometric="minisblack")

    area = shape(inspect_scene(band_files=[("red", str(a)), ("nir", str(b))]).data_area)

    with rasterio.open(a) as src:
        both = np.zeros((200, 300), bool)
        both[:, :100] = both[:, 200:] = True
        assert_holds_every_valid_pixel(area, both, a)
        assert not area.intersects(shapely.Point(src.xy(100, 150)))  # the middle holds nothing in either file


def test_a_scene_without_a_valid_pixel_has_no_area(tmp_path):
    path = write(tmp_path / "empty.tif", np.zeros((1, 64, 64), np.uint8), nodata=0, photometric="minisblack")
    assert data_area([str(path)], None) is None


def test_a_file_whose_pixels_cannot_all_be_read_is_refused_naming_it(tmp_path):
    rng = np.random.default_rng(2)
    path = write(tmp_path / "cut.tif", rng.integers(1, 255, (3, 600, 600)).astype(np.uint8), nodata=0, tiled=True,
                 blockxsize=256, blockysize=256, compress="deflate")
    with open(path, "r+b") as cut:  # its header and first blocks stay; the rest of its tiles are gone
        cut.truncate(path.stat().st_size // 2)

    with pytest.raises(InvalidRequest) as refused:
        inspect_scene(path=str(path), band_names=["red", "green", "blue"])

    assert refused.value.field == "path" and str(path) in str(refused.value)


@pytest.mark.parametrize("dtype,nodata,everywhere", [("uint8", -1.0, True), ("float32", float("nan"), False),
                                                     ("float32", -9999.0, False)])
def test_nodata_values_are_taken_as_the_readers_take_them(tmp_path, dtype, nodata, everywhere):
    # A value the type cannot hold marks nothing; NaN marks NaN pixels; a float value marks the pixels equal to it.
    data = np.full((2, 256, 256), 7, dtype=dtype)
    if np.issubdtype(np.dtype(dtype), np.floating):
        data[:, :, :] = nodata
        data[:, :128, :128] = 3.5
        data[1, :128, :128] = nodata  # one band alone holding data is enough
    path = write(tmp_path / "values.tif", data, photometric="minisblack")

    area = shape(data_area([str(path)], nodata))

    with rasterio.open(path) as src:
        whole = box(*src.bounds)
        quadrant = box(*src.xy(128, 0, offset="ul"), *src.xy(0, 128, offset="ul"))
    assert area.covers(quadrant) and area.within(whole)
    if everywhere:
        assert area.equals(whole)
    else:
        assert area.area < 0.4 * whole.area


def test_scattered_data_is_simplified_until_few_vertices_are_left_and_still_held(tmp_path):
    # Valid pixels strewn over a ragged region trace into hundreds of cells' corners: the outline is simplified
    # with a larger tolerance until it fits, and still holds every valid pixel.
    rng = np.random.default_rng(11)
    valid = (rng.random((800, 800)) < 0.02) & swath(800, 800, turn_degrees=33, fill=0.8)
    path = write(tmp_path / "strewn.tif", (valid * 9).astype(np.uint8)[None], nodata=0, photometric="minisblack")
    cells, transform, _ = valid_cells([str(path)], None)
    traced = shapely.union_all([shape(g) for g, _ in rasterio.features.shapes(cells.astype(np.uint8), mask=cells,
                                                                             transform=transform)])
    assert shapely.get_num_coordinates(traced) > 4 * MAX_VERTICES

    area = shape(data_area([str(path)], None))

    assert shapely.get_num_coordinates(area) <= MAX_VERTICES
    assert_holds_every_valid_pixel(area, valid, path)


@pytest.mark.parametrize("name", ["landsat7_rgb_utm18n/RGB.byte.tif", "sentinel2_tci_utm34n/S2_TCI_utm34n_100m.tif"])
def test_real_scenes_with_a_collar_hold_data_in_three_quarters_of_their_rectangle(name):
    (path,) = require_imagery(name)
    with rasterio.open(path) as src:
        valid = src.dataset_mask() > 0 if src.nodata is None else (src.read() != src.nodata).any(axis=0)
        bounds_area = box(*src.bounds).area

    area = shape(inspect_scene(path=str(path), band_names=["red", "green", "blue"]).data_area)

    assert_holds_every_valid_pixel(area, valid, path)
    assert 0.6 < area.area / bounds_area < 0.82


def test_a_real_overlapping_pair_mosaicked_by_data_areas_gives_the_same_pixels_for_less_warping():
    from models.tooltree import Identity, Output, ProjectSource, parse_tool_tree
    from ray_render.geometry import bounds_polygon
    from ray_render.grid import plan_grid
    from ray_render.tile import TileRenderer
    from tests.ray_render.test_mosaic import source_of

    first, second = require_imagery("overlap_pair_uint16_utm18n/mosaic_cog1.tif", "overlap_pair_uint16_utm18n/mosaic_cog2.tif")
    scenes = [source_of(path, path.stem, bands=("red", "green", "blue")) for path in (first, second)]
    extent = bounds_polygon(scenes[0].bounds, scenes[0].crs, "EPSG:3857").union(
        bounds_polygon(scenes[1].bounds, scenes[1].crs, "EPSG:3857"))
    grid = plan_grid("EPSG:3857", extent.bounds, 300)

    def render(*sources):
        leaf = ProjectSource(scenes=list(sources), bands=["red", "green", "blue"])
        tree = parse_tool_tree(Output(input=Identity(input=leaf), dtype="uint16", nodata=0).model_dump(mode="json"))
        with TileRenderer(tree, grid) as renderer:
            return renderer.render(Window(0, 0, grid.width, grid.height)), renderer.bytes_read

    by_area, read_by_area = render(*scenes)
    by_bounds, read_by_bounds = render(*(s.model_copy(update={"data_area": None}) for s in scenes))
    assert (by_area != 0).any() and np.array_equal(by_area, by_bounds)
    assert read_by_area < 0.9 * read_by_bounds
