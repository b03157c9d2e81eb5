"""Realistic sample scenes for the demo: no real imagery needed.

One landscape is defined as a continuous function of longitude and latitude (fractal terrain with lakes
and rivers, field parcels in the lowlands, forest on the slopes, bare rock on the heights, towns), and each
scene samples it on its own UTM grid. Two scenes in different zones therefore show the same ground where
they overlap, as real acquisitions do, each with its own haze, a tilted swath edge and nodata outside.
Values are surface reflectance x 10000 in uint16, bands red, green, blue, nir.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from pyproj import Transformer
from rasterio.enums import ColorInterp, Resampling
from rasterio.windows import Window

from cli.sample_scenes import BANDS, DEMO_AOI, DEMO_SCENES, SampleScene  # noqa: F401  (re-exported)

# Reflectance x 10000 of each land cover class, in BANDS order.
SIGNATURES = {
    "water": (350, 550, 750, 200),
    "forest": (320, 560, 330, 3100),
    "green_crop": (420, 850, 420, 4200),
    "ripe_crop": (1500, 1350, 900, 2600),
    "bare_soil": (2100, 1700, 1250, 2500),
    "rock": (2600, 2450, 2250, 2900),
    "urban": (1750, 1650, 1550, 1950),
}



def _hash(ix: np.ndarray, iy: np.ndarray, seed: int) -> np.ndarray:
    """A deterministic pseudo-random value in [0, 1) per integer lattice point."""
    h = (ix.astype(np.int64) * 374761393 + iy.astype(np.int64) * 668265263 + seed * 2147483647) & 0xFFFFFFFF
    h = ((h ^ (h >> 13)) * 1274126177) & 0xFFFFFFFF
    return ((h ^ (h >> 16)) & 0xFFFFFF) / float(0x1000000)


def value_noise(x: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """Smooth noise in [0, 1) on a unit lattice."""
    ix, iy = np.floor(x), np.floor(y)
    fx, fy = x - ix, y - iy
    sx, sy = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy)
    v00, v10 = _hash(ix, iy, seed), _hash(ix + 1, iy, seed)
    v01, v11 = _hash(ix, iy + 1, seed), _hash(ix + 1, iy + 1, seed)
    return (v00 * (1 - sx) + v10 * sx) * (1 - sy) + (v01 * (1 - sx) + v11 * sx) * sy


def fractal(x: np.ndarray, y: np.ndarray, seed: int, octaves: int = 6, persistence: float = 0.5) -> np.ndarray:
    """Fractal (fBm) noise normalised to about [0, 1]."""
    total, amplitude, norm = np.zeros_like(x), 1.0, 0.0
    for octave in range(octaves):
        scale = 2.0**octave
        total += amplitude * value_noise(x * scale, y * scale, seed + octave)
        norm += amplitude
        amplitude *= persistence
    return total / norm


def landscape(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Reflectance x 10000, shape (4, *lon.shape), of the sample world at the given coordinates."""
    # Work in kilometres so features have real-world sizes.
    x = lon * 77.0
    y = lat * 111.0
    elevation = fractal(x / 18.0, y / 18.0, seed=11)
    moisture = fractal(x / 6.0, y / 6.0, seed=23, octaves=4)
    texture = fractal(x * 3.0, y * 3.0, seed=37, octaves=3)
    river = np.abs(fractal(x / 9.0, y / 9.0, seed=51, octaves=4) - 0.5) < 0.012
    town = fractal(x / 4.0, y / 4.0, seed=67, octaves=3) > 0.74

    # Field parcels on a slightly rotated grid of ~350 x 500 m plots.
    u = (x * 0.96 + y * 0.28) / 0.35
    v = (-x * 0.28 + y * 0.96) / 0.50
    parcel = _hash(np.floor(u), np.floor(v), seed=79)
    field_edge = (np.abs(u - np.round(u)) < 0.03) | (np.abs(v - np.round(v)) < 0.03)

    cover = np.full(lon.shape, "forest", dtype=object)
    lowland = elevation < 0.6
    cover[lowland & (parcel < 0.45)] = "green_crop"
    cover[lowland & (parcel >= 0.45) & (parcel < 0.75)] = "ripe_crop"
    cover[lowland & (parcel >= 0.75)] = "bare_soil"
    cover[lowland & field_edge] = "forest"  # hedgerows
    cover[lowland & town & (elevation > 0.4)] = "urban"
    cover[(elevation >= 0.6) & (elevation < 0.72) & (moisture < 0.25)] = "bare_soil"
    cover[elevation >= 0.72] = "rock"
    cover[(elevation < 0.36) | (river & (elevation < 0.6))] = "water"

    out = np.zeros((4, *lon.shape), dtype=np.float64)
    for name, signature in SIGNATURES.items():
        where = cover == name
        out[:, where] = np.asarray(signature, dtype=np.float64)[:, None]
    # Per-parcel and per-pixel variation, and shading by terrain: imagery is never flat colour.
    variation = 0.85 + 0.3 * parcel
    variation = np.where(lowland & (cover != "water"), variation, 1.0)
    shade = 0.8 + 0.4 * elevation
    # Canopy is rough at the pixel scale; fields and water are smoother.
    canopy = fractal(x * 12.0, y * 12.0, seed=91, octaves=2)
    roughness = np.where(cover == "forest", 0.65 + 0.7 * canopy, 0.9 + 0.2 * texture)
    out *= (variation * shade * roughness)[None]
    return out


def scene_transform(scene: SampleScene) -> Affine:
    """The scene's pixel grid: north-up on its UTM zone, centred on its centre, edges on whole pixels."""
    to_utm = Transformer.from_crs("EPSG:4326", f"EPSG:{scene.epsg}", always_xy=True)
    cx, cy = to_utm.transform(scene.center_lon, scene.center_lat)
    half = scene.size_px * scene.resolution / 2
    left = np.floor((cx - half) / scene.resolution) * scene.resolution
    top = np.ceil((cy + half) / scene.resolution) * scene.resolution
    return Affine(scene.resolution, 0, left, 0, -scene.resolution, top)


def _landscape_at(scene: SampleScene, transform: Affine, cols: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Reflectance x 10000 at the given (fractional) pixel positions of the scene, haze added."""
    xs, ys = transform @ (cols, rows)
    lon, lat = Transformer.from_crs(f"EPSG:{scene.epsg}", "EPSG:4326", always_xy=True).transform(xs, ys)
    return landscape(lon, lat) + np.asarray(scene.haze, dtype=np.float64)[:, None, None]


def _upsampled_landscape(scene: SampleScene, transform: Affine, row_off: int, rows: int, step: int) -> np.ndarray:
    """The landscape computed every `step` pixels and interpolated bilinearly, with per-pixel texture.

    Big benchmark scenes use this: the landscape costs about 1.5 us per point, the interpolation a tenth.
    """
    n = scene.size_px
    first, last = row_off // step, (row_off + rows - 1) // step + 1
    lattice_cols = np.arange(0, n // step + 2) * step + 0.5
    lattice_rows = np.arange(first, last + 1) * step + 0.5
    coarse = _landscape_at(scene, transform, *np.meshgrid(lattice_cols, lattice_rows))
    fy = (np.arange(row_off, row_off + rows) / step) - first
    fx = np.arange(n) / step
    iy, ix = fy.astype(int), fx.astype(int)
    wy, wx = (fy - iy)[:, None], (fx - ix)[None, :]
    top = coarse[:, iy][:, :, ix] * (1 - wx) + coarse[:, iy][:, :, ix + 1] * wx
    bottom = coarse[:, iy + 1][:, :, ix] * (1 - wx) + coarse[:, iy + 1][:, :, ix + 1] * wx
    cols, rows_ = np.meshgrid(np.arange(n), np.arange(row_off, row_off + rows))
    texture = 0.9 + 0.2 * _hash(cols, rows_, seed=97)
    return (top * (1 - wy) + bottom * wy) * texture[None]


def render_rows(scene: SampleScene, row_off: int, rows: int, step: int = 1) -> np.ndarray:
    """Rows [row_off, row_off + rows) of the scene: (4, rows, n) uint16, 0 (nodata) outside its swath.

    `step` > 1 computes the landscape on a coarser lattice (see `_upsampled_landscape`).
    """
    n = scene.size_px
    transform = scene_transform(scene)
    cols, rows_ = np.meshgrid(np.arange(n) + 0.5, np.arange(row_off, row_off + rows) + 0.5)
    if step > 1:
        reflectance = _upsampled_landscape(scene, transform, row_off, rows, step)
    else:
        reflectance = _landscape_at(scene, transform, cols, rows_)

    # A tilted swath: valid inside a rotated rectangle a little smaller than the raster.
    theta = np.radians(scene.swath_tilt_deg)
    du, dv = cols - n / 2, rows_ - n / 2
    along = du * np.cos(theta) + dv * np.sin(theta)
    across = -du * np.sin(theta) + dv * np.cos(theta)
    inside = (np.abs(along) < n * 0.42) & (np.abs(across) < n * 0.47)
    pixels = np.clip(np.rint(reflectance), 1, 10000).astype(np.uint16)
    pixels[:, ~inside] = 0
    return pixels


def write_scene(scene: SampleScene, directory: Path, step: int = 1, strip_rows: int = 512) -> Path:
    """Write the scene as a tiled, compressed 4-band GeoTIFF with overviews; returns its path.

    The scene is computed and written `strip_rows` rows at a time, so scenes of any size fit in memory.
    """
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{scene.name}.tif"
    n = scene.size_px
    profile = dict(driver="GTiff", width=n, height=n, count=4, dtype="uint16", nodata=0,
                   crs=f"EPSG:{scene.epsg}", transform=scene_transform(scene), tiled=True, blockxsize=256,
                   blockysize=256, compress="deflate", predictor=2, bigtiff="IF_SAFER", num_threads="ALL_CPUS",
                   # Red, green and blue, and an extra sample: declared when the file is made, so that the
                   # overviews GDAL adds later are tagged alike (setting the colours afterwards left their IFDs
                   # RGB with three extra samples, and GDAL warned "Wrong number of ExtraSamples" at every open).
                   photometric="RGB")
    partial = path.with_suffix(".partial.tif")
    with rasterio.open(partial, "w", **profile) as dst:
        for row_off in range(0, n, strip_rows):
            rows = min(strip_rows, n - row_off)
            dst.write(render_rows(scene, row_off, rows, step), window=Window(0, row_off, n, rows))
        for index, name in enumerate(BANDS, start=1):
            dst.set_band_description(index, name)
        dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.undefined]
        dst.update_tags(TIFFTAG_DATETIME=scene.acquired.replace("-", ":").replace("T", " ").rstrip("Z"),
                        ACQUISITION_TIME=scene.acquired)
        dst.build_overviews([f for f in (2, 4, 8, 16, 32) if n // f >= 256] or [2], Resampling.average)
    partial.replace(path)
    return path
