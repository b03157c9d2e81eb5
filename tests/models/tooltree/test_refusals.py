"""Bad trees are refused before anything runs, with the node path and the reason."""

from __future__ import annotations

import pytest

from models.errors import InvalidToolTree
from models.tooltree import MAX_NODES, parse_tool_tree
from tests.models.tooltree.conftest import leaf, output
from tests.models.tooltree.test_neighbourhood import focal


def math(expr, **fields):
    return output({"type": "band_math", "input": leaf(), "expr": expr, **fields})


def named(expr):
    return output({"type": "band_math", "inputs": {"before": leaf("a"), "after": leaf("b")}, "expr": expr})


RED = {"band": "red"}
REFUSED = [
    ("unknown operator", math({"op": "system", "args": [RED]}), "tool.input.band_math.expr.op.op", "Input should be"),
    ("wrong arity", math({"op": "where", "args": [RED, RED]}), "tool.input.band_math.expr.op",
     "'where' takes 3 argument(s), got 2"),
    ("too few for a sum", math({"op": "+", "args": [RED]}), "tool.input.band_math.expr.op", "at least 2"),
    ("not an expression", math({"python": "1+1"}), "tool.input.band_math.expr", "an expression is"),
    ("a string is never code", math("__import__('os')"), "tool.input.band_math.expr", "an expression is"),
    ("infinite constant", math({"const": float("inf")}), "tool.input.band_math.expr.const.const", "finite"),
    ("variable bit position", math({"op": "bits", "args": [RED, RED, {"const": 1}]}), "tool.input.band_math.expr.op",
     "constant `first` and `count`"),
    ("bits past 32", math({"op": "bits", "args": [RED, {"const": 30}, {"const": 4}]}), "tool.input.band_math.expr.op",
     "32-bit"),
    ("empty clamp", math({"op": "clamp", "args": [RED, {"const": 5}, {"const": 1}]}), "tool.input.band_math.expr.op",
     "lower bound (5) is above"),
    ("band its input lacks", math({"op": "+", "args": [RED, {"band": "swir16"}]}), "tool.input.band_math",
     "swir16 that its input does not provide"),
    ("undeclared input", named({"band": "red", "input": "during"}), "tool.input.band_math",
     "reads input 'during', which is not declared (inputs: before, after)"),
    ("ambiguous band", named(RED), "tool.input.band_math", "inputs before, after all make it"),
    ("input named on a single input", math({"band": "red", "input": "x"}), "tool.input.band_math",
     "has a single `input`"),
    ("both input and inputs", output({"type": "band_math", "input": leaf(), "inputs": {"a": leaf()}, "expr": RED}),
     "tool.input.band_math", "either `input`"),
    ("bad output name", math(None, outputs={"1x": RED}) | {}, "tool.input.band_math.outputs", "not a valid output name"),
    ("classify of two bands", output({"type": "classify", "input": leaf(), "rules": [{"value": 1}]}),
     "tool.input.classify", "one-band input, but it makes 2 bands"),
    ("empty rule", output({"type": "classify", "input": leaf(bands=["red"]), "rules": [{"min": 2, "max": 1, "value": 1}]}),
     "tool.input.classify.rules.0", "matches nothing"),
    ("remap by a name", output({"type": "classify", "input": leaf(bands=["red"]), "remap": {"water": 1}}),
     "tool.input.classify.remap", "not an integer"),
    ("malformed colour", {"type": "output", "dtype": "uint8", "nodata": None, "input": {
        "type": "colormap", "input": leaf(bands=["red"]), "classes": {"1": "red"}}},
     "tool.input.colormap.classes.1", "'red' is not a colour"),
    ("unknown ramp", {"type": "output", "dtype": "uint8", "nodata": None, "input": {
        "type": "colormap", "input": leaf(bands=["red"]), "ramp": "jet", "range": [0, 1]}}, "tool.input.colormap.ramp.name",
     "Input should be"),
    ("named ramp without a range", {"type": "output", "dtype": "uint8", "nodata": None, "input": {
        "type": "colormap", "input": leaf(bands=["red"]), "ramp": "viridis"}}, "tool.input.colormap", "needs a `range`"),
    ("ramp stops out of order", {"type": "output", "dtype": "uint8", "nodata": None, "input": {
        "type": "colormap", "input": leaf(bands=["red"]), "ramp": [[1, "#000000"], [0, "#ffffff"]]}},
     "tool.input.colormap", "strictly increasing"),
    ("colours as float32", output({"type": "colormap", "input": leaf(bands=["red"]), "classes": {"1": "#ffffff"}}),
     "tool", '"dtype": "uint8", "nodata": null'),
    ("mask band of two bands", output({"type": "mask_by", "input": leaf(), "by": leaf(bands=["qa", "red"]),
                                       "remove_where": {"values": [1]}}), "tool.input.mask_by", "one-band `by` node"),
    ("two conditions", output({"type": "mask_by", "input": leaf(), "by": leaf(bands=["qa"]),
                               "remove_where": {"values": [1]}, "keep_where": {"values": [2]}}),
     "tool.input.mask_by", "either `remove_where` or `keep_where`"),
    ("a condition of two kinds", output({"type": "mask_by", "input": leaf(), "by": leaf(bands=["qa"]),
                                         "remove_where": {"values": [1], "range": [0, 1]}}),
     "tool.input.mask_by.remove_where", "one of"),
    ("equals too big for its bits", output({"type": "mask_by", "input": leaf(), "by": leaf(bands=["qa"]),
                                            "remove_where": {"bits": [4, 1], "equals": 2}}),
     "tool.input.mask_by.remove_where", "does not fit in 1 bit"),
    ("mask keeps sideways", output({"type": "mask", "keep": "left", "input": leaf(),
                                    "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}}),
     "tool.input.mask.keep", "Input should be 'inside' or 'outside'"),
    ("leaf resampling", output(leaf(resampling="sharpest")), "tool.input.project.resampling", "Input should be"),
    ("unknown node", output({"type": "focal_magic", "input": leaf()}), "tool.input", "does not match any of the expected"),

    ("radius over the limit", output(focal(65)), "tool.input.focal.radius", "less than or equal to 64"),
    ("radius zero", output(focal(0)), "tool.input.focal.radius", "greater than or equal to 1"),
    ("unknown statistic", output(focal(2, stat="mean_of_squares")), "tool.input.focal.stat", "'median'"),
    ("unknown shape", output(focal(2, shape="hexagon")), "tool.input.focal.shape", "'circle'"),
    ("terrain over two bands", output({"type": "terrain", "product": "slope", "input": leaf()}), "tool.input.terrain",
     "terrain needs a one-band elevation input, but it makes 2 bands (red, nir)"),
    ("light below the horizon", output({"type": "terrain", "product": "hillshade", "altitude": -5,
                                        "input": leaf(bands=["red"])}), "tool.input.terrain.altitude", "greater than or equal"),
    ("dilation over the limit", output({"type": "mask_by", "input": leaf(), "by": leaf(bands=["qa"]), "dilate": 100,
                                        "remove_where": {"values": [1]}}), "tool.input.mask_by.dilate", "less than or equal"),
]


@pytest.mark.parametrize("data,where,reason", [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_refused_with_the_node_path_and_the_reason(data, where, reason):
    with pytest.raises(InvalidToolTree) as info:
        parse_tool_tree(data)
    assert info.value.field == where, str(info.value)
    assert reason in info.value.reason


def test_a_tree_over_the_node_limit_is_refused_before_validation():
    inputs = {f"i{n}": leaf() for n in range(MAX_NODES)}
    with pytest.raises(InvalidToolTree, match=f"more than {MAX_NODES} nodes"):
        parse_tool_tree(output({"type": "band_math", "inputs": inputs, "expr": {"const": 1}}))


def test_a_deeply_nested_expression_is_refused_without_recursing():
    expr = {"band": "red"}
    for _ in range(5000):
        expr = {"op": "neg", "args": [expr]}
    with pytest.raises(InvalidToolTree, match="nests objects more than"):
        parse_tool_tree(math(expr))
