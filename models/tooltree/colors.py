"""Colours and named colour ramps for `colormap` nodes.

Colours are written `#rrggbb` (opaque) or `#rrggbbaa`. A named ramp is a list of colours spread evenly over
the range a `colormap` node gives it (ColorBrewer's and matplotlib's published stops).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

_HEX = re.compile(r"^#[0-9a-fA-F]{6}([0-9a-fA-F]{2})?$")


def _colour(value: str) -> str:
    if not _HEX.match(value):
        raise ValueError(f"{value!r} is not a colour: write #rrggbb or #rrggbbaa")
    return value.lower()


Color = Annotated[str, AfterValidator(_colour)]


def rgba(colour: str) -> tuple[int, int, int, int]:
    """(red, green, blue, alpha) of a validated colour, each 0-255."""
    digits = colour[1:]
    alpha = int(digits[6:8], 16) if len(digits) == 8 else 255
    return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16), alpha


NAMED_RAMPS: dict[str, tuple[str, ...]] = {
    "viridis": ("#440154", "#472d7b", "#3b528b", "#2c728e", "#21918c", "#28ae80", "#5ec962", "#addc30", "#fde725"),
    "magma": ("#000004", "#1c1044", "#4f127b", "#812581", "#b5367a", "#e55064", "#fb8761", "#fec287", "#fcfdbf"),
    "greys": ("#ffffff", "#f0f0f0", "#d9d9d9", "#bdbdbd", "#969696", "#737373", "#525252", "#252525", "#000000"),
    "blues": ("#f7fbff", "#deebf7", "#c6dbef", "#9ecae1", "#6baed6", "#4292c6", "#2171b5", "#08519c", "#08306b"),
    "greens": ("#f7fcf5", "#e5f5e0", "#c7e9c0", "#a1d99b", "#74c476", "#41ab5d", "#238b45", "#006d2c", "#00441b"),
    "rdylgn": ("#a50026", "#d73027", "#f46d43", "#fdae61", "#fee08b", "#ffffbf", "#d9ef8b", "#a6d96a", "#66bd63",
               "#1a9850", "#006837"),
    "rdbu": ("#67001f", "#b2182b", "#d6604d", "#f4a582", "#fddbc7", "#f7f7f7", "#d1e5f0", "#92c5de", "#4393c3",
             "#2166ac", "#053061"),
    "spectral": ("#9e0142", "#d53e4f", "#f46d43", "#fdae61", "#fee08b", "#ffffbf", "#e6f598", "#abdda4", "#66c2a5",
                 "#3288bd", "#5e4fa2"),
}
RAMP_NAMES = tuple(NAMED_RAMPS)


def named_ramp_stops(name: str, low: float, high: float) -> list[tuple[float, str]]:
    """The stops of a named ramp spread evenly from `low` to `high`."""
    colours = NAMED_RAMPS[name]
    step = (high - low) / (len(colours) - 1)
    return [(low + i * step, c) for i, c in enumerate(colours)]
