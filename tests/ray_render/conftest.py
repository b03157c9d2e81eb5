"""Fixtures shared by the renderer's tests."""

import numpy as np
import pytest

from tests.ray_render.test_mosaic import source_of
from tests.ray_render.test_upload import noise_scene, rgb_of


@pytest.fixture
def scene(make_raster):
    rng = np.random.default_rng(7)
    smooth = np.cumsum(np.cumsum(rng.integers(0, 3, (3, 300, 300)), axis=1), axis=2)
    data = (smooth % 60000 + 1).astype(np.uint16)
    return source_of(make_raster("big.tif", data, origin=(500000, 4003000), nodata=0), "big", bands=("red", "green", "blue"))


@pytest.fixture
def noise_tree(make_raster):
    return rgb_of(str(noise_scene(make_raster)))


@pytest.fixture
def platform_writer(s3_server, monkeypatch):
    """The standard AWS environment of a platform that may write its artifact bucket."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.writer.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.writer.secret_access_key)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    return s3_server
