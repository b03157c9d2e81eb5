"""Statistics computed once per export (never per tile): percentile stretches from decimated reads of the
inputs, and the output's band statistics from its overviews."""

from __future__ import annotations

import numpy as np
import rasterio
from rasterio.enums import Resampling

from models.tooltree import SceneSource, Stretch
from ray_render.sampling import Sample, sample

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


def band_statistics(path: str) -> list[dict[str, float]]:
    """Per band of a rendered COG: minimum, maximum, mean, population stddev and valid_percent of its valid
    pixels (nodata, or the mask of an RGBA or lossy COG, left out), as STAC's raster extension lists them.

    Read decimated to about SAMPLE_SIZE on the longest side, which GDAL serves from the smallest overview still
    that large, as GDAL's approximate statistics are (what QGIS shows), so the cost is the same for any output
    size; a file no larger than that is read whole and its statistics are exact. An all-nodata band has only its
    valid_percent (0). (A package's shards: `statistics_of(sampling.mosaic_sample(...))`.)
    """
    return statistics_of(sample(path, SAMPLE_SIZE))


def statistics_of(sampled: Sample) -> list[dict[str, float]]:
    """`band_statistics` of a decimated read."""
    found = []
    for band in sampled.pixels:
        values = np.ma.compressed(band).astype(np.float64)
        if values.size == 0:
            found.append({"valid_percent": 0.0})
            continue
        found.append({"minimum": float(values.min()), "maximum": float(values.max()), "mean": float(values.mean()),
                      "stddev": float(values.std()), "valid_percent": round(100.0 * values.size / band.size, 4)})
    return found
