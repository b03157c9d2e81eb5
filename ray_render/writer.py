"""Stream tiles into a GeoTIFF as they arrive, then finish it as a Cloud Optimized GeoTIFF.

Tiles go into a tiled, lightly compressed working file (blocks are written once, in any order), so memory
is bounded by a tile whatever the output size. Closing builds the COG with GDAL's COG driver (which adds
overviews and reorders the file), writes to a temporary name and renames: no half-written file is
ever visible under the final name.

Lossy codecs (JPEG, WEBP) would smear a nodata value into its neighbours, so such outputs carry an internal
mask instead: the working file gets a per-dataset mask (valid where any band holds data) and the COG
driver copies it into the COG.

Colour maps are red, green, blue and alpha bands: the file says so (PHOTOMETRIC=RGB with an unassociated
alpha sample), so GDAL, QGIS and browsers show transparency where the map has no value.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.windows import Window

from ray_render.grid import OutputGrid
from ray_render.publish import publish


@dataclass(frozen=True)
class CogOptions:
    """How the final COG is encoded."""

    compress: str = "DEFLATE"
    # DEFLATE (1-12) or ZSTD (1-22) level; None is GDAL's default (6 and 9).
    level: int | None = None
    # JPEG and WEBP quality (1-100); ignored by the lossless codecs.
    quality: int = 90
    blocksize: int = 512
    overview_resampling: str = "AVERAGE"
    num_threads: str = "ALL_CPUS"
    # Who writes lossless COGs: "actors" (each tile actor encodes its blocks: ray_render.cog_render) or "gdal"
    # (GDAL's COG driver finishes a working file, as JPEG and WEBP always are): the reference benchmarks compare.
    writer: str = "actors"


LOSSY = ("JPEG", "WEBP")


def sha256_of(path: Path, chunk: int = 4 * 1024 * 1024) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def working_files(path: Path) -> list[Path]:
    """The temporary files a `CogWriter` for `path` may leave if its process is killed."""
    path = Path(path)
    return [path.with_name(path.name + ".work.tif"), path.with_name(path.name + ".partial")]


class CogWriter:
    """Context manager: `write(window, array)` tiles, then on clean exit the COG appears at `path`."""

    def __init__(self, path: Path, grid: OutputGrid, count: int, dtype: str, nodata: float | None,
                 band_names: list[str], options: CogOptions = CogOptions(), alpha: bool = False):
        self.path = Path(path)
        self.grid = grid
        self.options = options
        self._work, self._partial = working_files(self.path)
        self._profile = dict(
            driver="GTiff", width=grid.width, height=grid.height, count=count, dtype=dtype, nodata=nodata,
            crs=grid.crs, transform=grid.transform, tiled=True, blockxsize=options.blocksize,
            blockysize=options.blocksize, compress="DEFLATE", zlevel=1, bigtiff="IF_SAFER",
            # Blocks never written (tiles outside the AOI) read back as nodata instead of taking space.
            sparse_ok=True,
        )
        if alpha:
            self._profile.update(photometric="RGB", alpha="YES")
        self._band_names = band_names
        self._lossy = options.compress in LOSSY
        self._nodata = nodata
        if self._lossy:
            self._profile["nodata"] = None  # validity goes into the internal mask instead
        self._dataset = None

    def open(self) -> CogWriter:
        """Create the working file; returns self."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        env = rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True) if self._lossy else rasterio.Env()
        with env:
            self._dataset = rasterio.open(self._work, "w", **self._profile)
        for i, name in enumerate(self._band_names, start=1):
            self._dataset.set_band_description(i, name)
        return self

    def write(self, window: Window, array: np.ndarray) -> None:
        self._dataset.write(array, window=window)
        if self._lossy:
            nodata = self._nodata if self._nodata is not None else 0
            self._dataset.write_mask((array != nodata).any(axis=0).astype(np.uint8) * 255, window=window)

    def close(self, complete: bool = True) -> None:
        """Build the COG at `path` when `complete`, else abandon; the working file goes either way."""
        self._dataset.close()
        try:
            if complete:
                self._finish()
        finally:
            self._work.unlink(missing_ok=True)

    def __enter__(self) -> CogWriter:
        return self.open()

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(complete=exc_type is None)

    def _finish(self) -> None:
        partial = self._partial
        integer = np.issubdtype(np.dtype(self._profile["dtype"]), np.integer)
        if self._lossy:
            codec = dict(quality=self.options.quality)
        else:
            codec = dict(predictor="YES" if integer else "FLOATING_POINT")
            if self.options.level is not None:
                codec["level"] = self.options.level
        try:
            rasterio.shutil.copy(
                self._work, partial, driver="COG", compress=self.options.compress, **codec,
                blocksize=self.options.blocksize, overviews="AUTO", overview_resampling=self.options.overview_resampling,
                num_threads=self.options.num_threads, bigtiff="IF_SAFER",
            )
            publish(partial, self.path)
        finally:
            partial.unlink(missing_ok=True)
