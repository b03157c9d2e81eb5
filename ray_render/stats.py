"""Statistics computed once per export (never per tile): percentile stretches from decimated reads."""

from __future__ import annotations

import numpy as np
import rasterio
from rasterio.enums import Resampling

from models.tooltree import SceneSource, Stretch

# Longest side of the decimated read; GDAL serves it from overviews when the file has them.
SAMPLE_SIZE = 1024


def _band_sample(scene: SceneSource, band: str) -> np.ndarray:
    spec = scene.band(band)
    if spec is None:
        return np.empty(0)
    with rasterio.open(spec.uri) as src:
        scale = max(src.width, src.height) / SAMPLE_SIZE
        shape = (max(1, int(src.height / max(scale, 1))), max(1, int(src.width / max(scale, 1))))
        data = src.read(spec.index, out_shape=shape, resampling=Resampling.nearest, masked=True)
        nodata = scene.nodata if scene.nodata is not None else src.nodata
    values = np.ma.compressed(data).astype(np.float64)
    if nodata is not None:
        values = values[values != nodata]
    return values


def percentile_stretch(scenes: list[SceneSource], bands: list[str], low: float = 2.0, high: float = 98.0) -> list[Stretch]:
    """A per-band stretch from the `low`..`high` percentiles of all scenes' valid pixels."""
    stretches = []
    for band in bands:
        values = np.concatenate([_band_sample(s, band) for s in scenes])
        if values.size == 0:
            raise ValueError(f"band {band} has no valid pixels to compute a stretch from")
        lo, hi = np.percentile(values, [low, high])
        if hi <= lo:
            hi = lo + 1
        stretches.append(Stretch(band=band, min=float(lo), max=float(hi)))
    return stretches
