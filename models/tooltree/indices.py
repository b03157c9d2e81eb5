"""Named indices: one registry of templates, read by the request schema, the CLI's `--tool`, the API and the docs.

Each index names the bands it reads, in order, by their common names (STAC eo: red, nir, swir16, ...); an
export may pass other band names in the same order. Indices are computed on physical values (each band's
scale and offset applied).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from models.tooltree.base import BaseNode
from models.tooltree.expressions import Operation
from models.tooltree.expressions import op as _op
from models.tooltree.nodes import BandMath, NormalizedDifference


@dataclass(frozen=True)
class Index:
    """A named index: the bands it reads, its formula as people write it, and how to build its node."""

    name: str
    title: str
    bands: tuple[str, ...]
    formula: str
    # (a, b) of a normalised difference, or an expression template over the bands (by position).
    difference: bool = False
    template: Callable[..., Operation] | None = None

    def node(self, source: BaseNode, bands: list[str] | tuple[str, ...] | None = None) -> BaseNode:
        """This index over `source`, reading `bands` (default: its standard names) in its order."""
        names = list(bands or self.bands)
        if len(names) != len(self.bands):
            raise ValueError(f"{self.name} reads {len(self.bands)} bands ({', '.join(self.bands)}), got {len(names)}")
        if self.difference:
            return NormalizedDifference(input=source, a=names[0], b=names[1], name=self.name)
        return BandMath(input=source, expr=self.template(*names), name=self.name)


def _nd(name: str, title: str, a: str, b: str) -> Index:
    return Index(name, title, (a, b), f"({a} - {b}) / ({a} + {b})", difference=True)


def _evi(nir, red, blue):
    numerator = _op("*", 2.5, _op("-", nir, red))
    denominator = _op("+", _op("-", _op("+", nir, _op("*", 6.0, red)), _op("*", 7.5, blue)), 1.0)
    return _op("/", numerator, denominator)


def _savi(nir, red):
    return _op("/", _op("*", 1.5, _op("-", nir, red)), _op("+", _op("+", nir, red), 0.5))


def _msavi(nir, red):
    twice = _op("+", _op("*", 2.0, nir), 1.0)
    root = _op("sqrt", _op("-", _op("*", twice, twice), _op("*", 8.0, _op("-", nir, red))))
    return _op("/", _op("-", twice, root), 2.0)


INDICES: dict[str, Index] = {index.name: index for index in (
    _nd("ndvi", "Normalised difference vegetation index", "nir", "red"),
    _nd("ndwi", "Normalised difference water index (McFeeters)", "green", "nir"),
    Index("evi", "Enhanced vegetation index (MODIS coefficients)", ("nir", "red", "blue"),
          "2.5 (nir - red) / (nir + 6 red - 7.5 blue + 1)", template=_evi),
    Index("savi", "Soil-adjusted vegetation index (L = 0.5)", ("nir", "red"),
          "1.5 (nir - red) / (nir + red + 0.5)", template=_savi),
    Index("msavi", "Modified soil-adjusted vegetation index (MSAVI2)", ("nir", "red"),
          "(2 nir + 1 - sqrt((2 nir + 1)^2 - 8 (nir - red))) / 2", template=_msavi),
    _nd("nbr", "Normalised burn ratio", "nir", "swir22"),
    _nd("ndbi", "Normalised difference built-up index", "swir16", "nir"),
    _nd("ndsi", "Normalised difference snow index", "green", "swir16"),
    _nd("ndmi", "Normalised difference moisture index", "nir", "swir16"),
)}
