"""The AOI mask on real pixels: a pixel is kept exactly when its centre lies in the polygon (holes too)."""

import numpy as np
import shapely
from rasterio.windows import Window
from shapely.geometry import Polygon, mapping

from models.tooltree import Identity, Mask, Output, ProjectSource, parse_tool_tree
from ray_render.aoi import AoiRasterizer
from ray_render.grid import plan_grid
from ray_render.tile import TileRenderer
from tests.ray_render.test_mosaic import source_of

RING = Polygon(
    [(500013, 4000187), (500171, 4000150), (500190, 4000020), (500040, 4000004), (500013, 4000187)],
    holes=[[(500080, 4000120), (500120, 4000120), (500120, 4000070), (500080, 4000070), (500080, 4000120)]],
)


def test_masked_render_keeps_exactly_the_pixels_whose_centres_are_inside(make_raster):
    data = (np.arange(400, dtype=np.uint16).reshape(1, 20, 20) + 1)
    scene = source_of(make_raster("s.tif", data, origin=(500000, 4000200), nodata=0), "s")
    grid = plan_grid("EPSG:32618", (500000, 4000000, 500200, 4000200), 10)
    mask = Mask(input=Identity(input=ProjectSource(scenes=[scene], bands=["red"])), geometry=mapping(RING), crs=grid.crs)
    tree = parse_tool_tree(Output(input=mask, dtype="uint16", nodata=0).model_dump(mode="json"))
    with TileRenderer(tree, grid) as renderer:
        out = renderer.render(Window(0, 0, 20, 20))[0]

    rows, cols = np.mgrid[0:20, 0:20]
    xs, ys = grid.transform @ (cols + 0.5, rows + 0.5)
    inside = shapely.contains_xy(RING, xs, ys)
    assert inside.sum() > 100 and (~inside).sum() > 100      # a real test: both sides are populated
    assert (out[inside] == data[0][inside]).all()             # inside: the scene's own pixels
    assert (out[~inside] == 0).all()                          # outside and in the hole: nodata


def test_rasterizer_short_cuts_agree_with_the_full_rasterisation():
    grid = plan_grid("EPSG:32618", (500000, 4000000, 500200, 4000200), 10)
    aoi = AoiRasterizer(mapping(RING), grid)
    outside_tile = Window(0, 0, 1, 1)                        # the top-left corner is outside the ring
    assert not aoi.inside(outside_tile).any()
    full = aoi.inside(Window(0, 0, 20, 20))
    for row in range(0, 20, 5):
        for col in range(0, 20, 5):
            assert (aoi.inside(Window(col, row, 5, 5)) == full[row:row + 5, col:col + 5]).all()
