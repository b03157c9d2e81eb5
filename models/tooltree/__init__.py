"""The tool tree: a typed description of what to compute per output pixel.

A tree is JSON on the export row and a pydantic model in code. Any node may combine several inputs (band_math's
named `inputs`, mask_by's `by`); leaves read projects or scenes; the root is always `Output`. Nodes refer to
bands by name, and parsing checks that every name a node uses is one its children make, so a tree that parses
can be evaluated. Nothing here evaluates user strings as code.

Node types (the `type` field, registry `NODE_TYPES`): project, scene, identity, select, color_correct,
normalized_difference, band_math, classify, colormap, focal, terrain, mask, mask_by, output.
"""

from models.tooltree.base import MAX_DEPTH, MAX_NODES, MAX_TERMS, OUTPUT_DTYPES, BaseNode, SceneBand, SceneSource
from models.tooltree.classes import COLORMAP_BANDS, Classify, Colormap, Rule
from models.tooltree.colors import NAMED_RAMPS, RAMP_NAMES, named_ramp_stops, rgba
from models.tooltree.expressions import (
    OPERATORS,
    BandRef,
    Constant,
    Expression,
    NodataValue,
    Operation,
    band_refs,
    op,
    terms,
    uses_operator,
)
from models.tooltree.indices import INDICES, Index
from models.tooltree.neighbourhood import (
    FOCAL_SHAPES,
    FOCAL_STATS,
    MAX_HALO,
    MAX_RADIUS,
    TERRAIN_PRODUCTS,
    Focal,
    Terrain,
    halo,
    margins,
)
from models.tooltree.nodes import (
    BandMath,
    ColorCorrect,
    Condition,
    Identity,
    Mask,
    MaskBy,
    NormalizedDifference,
    Output,
    SelectBands,
    Stretch,
)
from models.tooltree.parse import check_shape, child_nodes, parse_tool_tree, split_output, walk_json
from models.tooltree.sources import (
    BOUND_FIELDS,
    LEAF_TYPES,
    RESAMPLING_METHODS,
    Leaf,
    ProjectSource,
    SceneLeaf,
    refuse_bound_fields,
)
from models.tooltree.tree import NODE_TYPES, PASS_THROUGH_TYPES, AnyNode, ToolTree, producer

Node = AnyNode


def ndvi(source: Node, nir: str = "nir", red: str = "red") -> Node:
    """NDVI: the normalised difference of the NIR and red bands."""
    return INDICES["ndvi"].node(source, (nir, red))


def ndwi(source: Node, green: str = "green", nir: str = "nir") -> Node:
    """NDWI (McFeeters): the normalised difference of the green and NIR bands."""
    return INDICES["ndwi"].node(source, (green, nir))


def evi(source: Node, nir: str = "nir", red: str = "red", blue: str = "blue") -> Node:
    """EVI with MODIS's standard coefficients, on reflectance: 2.5 (NIR - Red) / (NIR + 6 Red - 7.5 Blue + 1)."""
    return INDICES["evi"].node(source, (nir, red, blue))


__all__ = [name for name in dir() if not name.startswith("_")]
