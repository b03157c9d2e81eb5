"""A quicklook of a render: a small RGBA PNG made from the output's overviews, for the STAC item's `thumbnail`,
the Prefect run page and anyone deciding whether to download the whole file.

Three bands are shown as red, green and blue, one band as grey (other counts: the first band), each stretched
linearly between its 2nd and 98th percentiles (as image viewers do, so that a few bright outliers do not leave
the picture dark) unless it is already 8-bit; an RGBA output keeps its alpha. Pixels
without data are transparent, so an export with no data at all is a fully transparent picture, never an error.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from rasterio.errors import NotGeoreferencedWarning
from rasterio.io import MemoryFile

from ray_render.sampling import Sample, sample

# Longest side of the quicklook, in pixels.
QUICKLOOK_SIZE = 512


def quicklook_png(path: str | Path, size: int = QUICKLOOK_SIZE) -> bytes:
    """The PNG quicklook of the COG at `path`, at most `size` px on its longest side; GDAL serves the decimated
    read from the overviews. (A package's shards: `picture_of(sampling.mosaic_sample(...))`.)"""
    return picture_of(sample(str(path), size))


def picture_of(sampled: Sample) -> bytes:
    """The PNG quicklook of a decimated read."""
    pixels = sampled.pixels
    shape = pixels.shape[1:]
    if sampled.alpha:
        rgb, alpha = pixels[:3].filled(0).astype(np.uint8), pixels[3].filled(0).astype(np.uint8)
    else:
        shown = pixels[:3] if len(pixels) == 3 else pixels[:1]
        valid = ~np.ma.getmaskarray(shown).any(axis=0)
        rgb = np.stack([_to_bytes(band) for band in shown])
        rgb = np.repeat(rgb, 3, axis=0) if len(rgb) == 1 else rgb
        alpha = np.where(valid, 255, 0).astype(np.uint8)
    with warnings.catch_warnings(), MemoryFile() as memory:
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # a picture, not a map: no georeferencing
        with memory.open(driver="PNG", width=shape[1], height=shape[0], count=4, dtype="uint8") as png:
            png.write(np.concatenate([rgb, alpha[None]]))
        return memory.read()


def _to_bytes(band: np.ma.MaskedArray) -> np.ndarray:
    """One band as 0..255: 8-bit data as it is, anything else stretched between its valid 2nd and 98th
    percentiles."""
    if band.dtype == np.uint8:
        return band.filled(0)
    values = band.compressed().astype(np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return np.zeros(band.shape, np.uint8)
    low, high = np.percentile(values, [2, 98])
    span = high - low if high > low else 1.0
    scaled = (np.ma.filled(band.astype(np.float64), low) - low) / span * 255.0
    return np.clip(np.nan_to_num(scaled, nan=0.0), 0, 255).round().astype(np.uint8)
