"""A scene reader's pixels and valid masks, warped into the output grid, against GDAL's own masks."""

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from ray_render.geometry import bounds_polygon
from ray_render.grid import plan_grid
from ray_render.reader import SceneReader
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


@pytest.mark.parametrize("dtype,nodata", [("uint8", 0), ("uint16", 65535), ("int16", -9999), ("float32", -1.5)])
def test_valid_pixels_are_exactly_gdals_masks_of_the_warped_bands(make_raster, dtype, nodata):
    path = make_raster("scene.tif", textured(dtype, nodata), crs="EPSG:32633", origin=(500000, 5100600), nodata=nodata,
                       bands=["red", "green", "blue"])
    scene = source_of(path, "scene", bands=("red", "green", "blue"))
    footprint = bounds_polygon(scene.bounds, scene.crs, "EPSG:3857")
    grid = plan_grid("EPSG:3857", footprint.buffer(200).bounds, 13.0)  # reprojected, beyond the scene on each side
    window = Window(0, 0, grid.width, grid.height)
    with SceneReader(scene, grid) as reader:
        data, valid = reader.read(["red", "green", "blue"], window, np.dtype(dtype))
        vrt = reader._vrt(scene.band("red").uri)
        with rasterio.Env(GDAL_VRT_WARP_USE_DATASET_RASTERIO="NO"):
            gdal_masks = vrt.read_masks([1, 2, 3], window=window) > 0
    assert np.array_equal(valid, gdal_masks)
    assert valid.any() and not valid.all() and not np.array_equal(valid[0], valid[1])  # each band its own mask
    assert (data[~valid] == np.dtype(dtype).type(nodata)).all()
