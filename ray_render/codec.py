"""Encoding one COG block where it was rendered: interleave, predict, compress, exactly as a TIFF reader expects.

imagecodecs provides the codecs (libdeflate, zstd, LZW) and the TIFF predictors: libdeflate is about three times
as fast as zlib at the same level and ratio on imagery, and both are the implementations GDAL itself links.
Blocks are pixel-interleaved (bands last), like GDAL's COGs, and edge blocks are padded to the full block size,
as TIFF requires.
"""

from __future__ import annotations

from dataclasses import dataclass

import imagecodecs
import numpy as np

# The TIFF Compression tag of each lossless codec this encoder writes.
COMPRESSION_TAGS = {"DEFLATE": 8, "ZSTD": 50000, "LZW": 5}
# GDAL's own default levels (ZLEVEL, ZSTD_LEVEL), so a file is the same size whichever writer made it.
DEFAULT_LEVELS = {"DEFLATE": 6, "ZSTD": 9, "LZW": None}
LEVEL_RANGES = {"DEFLATE": (1, 12), "ZSTD": (1, 22)}


def predictor_for(dtype: str) -> int:
    """The TIFF predictor GDAL uses with PREDICTOR=YES: horizontal differencing for integers, 3 for floats."""
    return 3 if np.issubdtype(np.dtype(dtype), np.floating) else 2


@dataclass(frozen=True)
class BlockCodec:
    """Turns a block's pixels (bands, rows, cols) into the bytes a TIFF tile holds."""

    compress: str
    dtype: str
    blocksize: int
    level: int | None = None

    def __post_init__(self):
        if self.compress not in COMPRESSION_TAGS:
            raise ValueError(f"no block encoder for {self.compress}; lossless codecs are {sorted(COMPRESSION_TAGS)}")

    @property
    def effective_level(self) -> int | None:
        return self.level if self.level is not None else DEFAULT_LEVELS[self.compress]

    @property
    def predictor(self) -> int:
        return predictor_for(self.dtype)

    def encode(self, pixels: np.ndarray) -> bytes:
        """The compressed tile for `pixels`, padded to the block size when it is an edge block."""
        bands, rows, cols = pixels.shape
        size = self.blocksize
        dtype = np.dtype(self.dtype)
        if self.predictor == 2 and rows == cols == size and pixels.dtype == dtype:
            # A whole block needs no padding: the predictor interleaves it as it differences (it reads the
            # band-last view and writes a new contiguous block), a third of the time of copying it first.
            tile = imagecodecs.delta_encode(pixels.transpose(1, 2, 0), axis=1)
        else:
            tile = np.zeros((size, size, bands), dtype=dtype)
            tile[:rows, :cols] = pixels.transpose(1, 2, 0)
            # The floating-point predictor reorders bytes: it needs the block contiguous.
            tile = (imagecodecs.delta_encode if self.predictor == 2 else imagecodecs.floatpred_encode)(tile, axis=1)
        level = self.effective_level
        if self.compress == "DEFLATE":
            return bytes(imagecodecs.deflate_encode(tile, level=level))
        if self.compress == "ZSTD":
            return bytes(imagecodecs.zstd_encode(tile, level=level))
        return bytes(imagecodecs.lzw_encode(tile))
