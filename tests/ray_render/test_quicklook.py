"""The quicklook PNG: an RGB output's own pixels from its overview, one band stretched to grey, an RGBA output's
alpha kept, missing pixels transparent, and an output with no data at all a transparent picture, not an error."""

import warnings

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.enums import ColorInterp, Resampling
from rasterio.errors import NotGeoreferencedWarning
from rasterio.io import MemoryFile

from ray_render.quicklook import quicklook_png


def cog(tmp_path, data, nodata=None, alpha=False):
    source = tmp_path / "source.tif"
    with rasterio.open(source, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                       dtype=data.dtype.name, crs="EPSG:32633", nodata=nodata,
                       transform=rasterio.transform.from_origin(500000, 5010000, 10, 10)) as dst:
        dst.write(data)
        if alpha:
            dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha]
    path = tmp_path / "cog.tif"
    rasterio.shutil.copy(source, path, driver="COG", overviews="AUTO", resampling="nearest")
    return path


def pixels_of(png: bytes) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # a picture, not a map
        with MemoryFile(png) as memory, memory.open() as picture:
            assert picture.driver == "PNG" and picture.count == 4
            return picture.read()


def test_an_rgb_output_shows_its_own_pixels_and_its_gaps_are_transparent(tmp_path):
    data = np.random.default_rng(4).integers(1, 256, (3, 1500, 1000), dtype=np.uint8)
    data[:, :, :250] = 0  # no data on the left quarter
    path = cog(tmp_path, data, nodata=0)
    picture = pixels_of(quicklook_png(path))
    assert picture.shape == (4, 512, 341)  # at most 512 px, the aspect kept
    with rasterio.open(path) as src:  # the same decimated read, done here
        expected = src.read(out_shape=(3, 512, 341), resampling=Resampling.nearest, masked=True)
    valid = ~np.ma.getmaskarray(expected).any(axis=0)
    assert np.array_equal(picture[:3][:, valid], expected.data[:, valid])
    assert np.array_equal(picture[3] == 255, valid) and 0.7 < valid.mean() < 0.8


def test_one_band_is_stretched_to_grey_between_its_2nd_and_98th_percentiles(tmp_path):
    ramp = np.linspace(-0.5, 0.9, 400 * 400, dtype=np.float32).reshape(1, 400, 400)
    ramp[0, 0, :10] = 1000  # outliers: they must not squeeze the picture into black
    picture = pixels_of(quicklook_png(cog(tmp_path, ramp, nodata=-9999)))
    grey = picture[0].astype(int).ravel()
    assert np.array_equal(picture[0], picture[1]) and np.array_equal(picture[1], picture[2])
    assert (grey.min(), grey.max()) == (0, 255) and (picture[3] == 255).all()
    assert 0.015 < (grey == 0).mean() < 0.03 and 0.015 < (grey == 255).mean() < 0.03  # 2 % clipped at each end
    assert 110 < np.median(grey) < 145  # the ramp's middle is mid-grey
    assert (np.diff(grey[picture.shape[2]:]) >= 0).all()  # order kept below the outliers' row


def test_an_rgba_output_keeps_its_alpha(tmp_path):
    data = np.zeros((4, 300, 300), np.uint8)
    data[0, :, :150], data[3, :, :150] = 200, 255  # red and opaque on the left, transparent on the right
    picture = pixels_of(quicklook_png(cog(tmp_path, data, alpha=True)))
    assert (picture[3][:, :140] == 255).all() and (picture[3][:, 160:] == 0).all()
    assert (picture[0][:, :140] == 200).all()


def test_an_output_with_no_data_at_all_is_a_transparent_picture(tmp_path):
    empty = np.full((1, 600, 600), -9999, np.float32)
    picture = pixels_of(quicklook_png(cog(tmp_path, empty, nodata=-9999)))
    assert (picture[3] == 0).all()
