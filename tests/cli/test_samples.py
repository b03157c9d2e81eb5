"""The demo's sample scenes look like imagery: spatial structure, plausible spectra, one shared landscape."""

from dataclasses import replace

import numpy as np
import rasterio
import tifffile
from rasterio.enums import ColorInterp
from rasterio.vrt import WarpedVRT

from cli.samples import BANDS, SampleScene, write_scene


def test_sample_scenes_are_structured_vegetated_and_bordered_by_nodata(sample_scene_paths):
    for path in sample_scene_paths:
        with rasterio.open(path) as src:
            assert src.count == 4 and src.dtypes[0] == "uint16" and src.nodata == 0
            assert tuple(d for d in src.descriptions) == BANDS
            assert src.overviews(1)
            red, nir = src.read(1, masked=True).astype(float), src.read(4, masked=True).astype(float)
        valid = ~np.ma.getmaskarray(red)
        assert 0.6 < valid.mean() < 0.95                      # a tilted swath with nodata corners
        assert not valid[0, 0] and not valid[-1, -1]
        # Neighbouring pixels are strongly correlated (imagery), unlike independent noise (about 0).
        a, b = red[:, :-1], red[:, 1:]
        both = ~(np.ma.getmaskarray(a) | np.ma.getmaskarray(b))
        assert np.corrcoef(a.data[both], b.data[both])[0, 1] > 0.6
        ndvi = (nir - red) / (nir + red)
        values = ndvi.compressed()
        assert np.percentile(values, 75) > 0.5               # vegetation (fields, forest) ...
        assert 0 < (values < 0).mean() < 0.5                  # ... and water, but not a water world


def test_two_zones_show_the_same_ground_where_they_overlap(sample_scene_paths):
    west, east = sample_scene_paths
    with rasterio.open(west) as w, rasterio.open(east) as e:
        assert (w.crs.to_epsg(), e.crs.to_epsg()) == (32632, 32633)
        with WarpedVRT(e, crs=w.crs, transform=w.transform, width=w.width, height=w.height, nodata=0) as warped:
            east_in_west = warped.read(4, masked=True).astype(float)
        west_nir = w.read(4, masked=True).astype(float)
    overlap = ~(np.ma.getmaskarray(east_in_west) | np.ma.getmaskarray(west_nir))
    assert overlap.sum() > 1000
    assert np.corrcoef(west_nir.data[overlap], east_in_west.data[overlap])[0, 1] > 0.8


def test_scenes_are_written_strip_by_strip_and_big_ones_may_use_a_coarser_landscape(tmp_path):
    scene = replace(SampleScene("strips", 32632, 11.97, 46.10), size_px=600, resolution=10.0)
    whole = write_scene(scene, tmp_path / "whole", strip_rows=600)
    strips = write_scene(scene, tmp_path / "strips", strip_rows=128)
    coarse = write_scene(scene, tmp_path / "coarse", step=8)
    with rasterio.open(whole) as a, rasterio.open(strips) as b, rasterio.open(coarse) as c:
        exact, by_strips, upsampled = a.read(), b.read(), c.read()
    assert np.array_equal(exact, by_strips)  # the strip height changes nothing
    valid = exact[3] > 0
    assert np.array_equal(valid, upsampled[3] > 0)  # the same swath
    # The same landscape, interpolated between lattice points every 8 pixels, plus per-pixel texture.
    assert np.corrcoef(exact[3][valid].astype(float), upsampled[3][valid].astype(float))[0, 1] > 0.8


def test_every_level_of_a_scene_is_tagged_alike_so_gdal_opens_it_without_warnings(tmp_path):
    # Red, green, blue and one extra sample (near-infrared) in the full resolution and in every overview: GDAL
    # warns "Wrong number of ExtraSamples" at every open of a file whose overviews say RGB with three extras. (A
    # scene of 600 px showed it; one of 200 px did not.)
    scene = replace(SampleScene("levels", 32632, 11.97, 46.10), size_px=600, resolution=10.0)
    path = write_scene(scene, tmp_path)
    with tifffile.TiffFile(path) as tif:
        levels = [(page.photometric, len(page.extrasamples)) for page in tif.pages]
    assert len(levels) > 1 and set(levels) == {(tifffile.PHOTOMETRIC.RGB, 1)}
    with rasterio.open(path) as src:
        assert src.colorinterp == (ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.undefined)
