"""Fixtures shared by the renderer's tests."""

import numpy as np
import pytest

from tests.ray_render.test_mosaic import source_of


@pytest.fixture
def scene(make_raster):
    rng = np.random.default_rng(7)
    smooth = np.cumsum(np.cumsum(rng.integers(0, 3, (3, 300, 300)), axis=1), axis=2)
    data = (smooth % 60000 + 1).astype(np.uint16)
    return source_of(make_raster("big.tif", data, origin=(500000, 4003000), nodata=0), "big", bands=("red", "green", "blue"))
