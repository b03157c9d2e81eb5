"""Focal, terrain and dilation nodes: their limits, and the halo a tree needs."""

from __future__ import annotations

import pytest

from models.errors import InvalidToolTree
from models.tooltree import MAX_HALO, parse_tool_tree
from tests.models.tooltree.conftest import leaf, output


def focal(radius, node=None, **fields):
    return {"type": "focal", "stat": "mean", "radius": radius, "input": node or leaf(), **fields}


REFUSED = [
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


def test_the_halo_adds_nested_radii_and_takes_the_widest_branch():
    inner = focal(3, focal(4))
    tree = parse_tool_tree(output({"type": "band_math", "inputs": {"a": inner, "b": focal(10)},
                                   "expr": {"op": "+", "args": [{"band": "red", "input": "a"},
                                                                {"band": "red", "input": "b"}]}}))
    assert tree.halo() == 10
    assert parse_tool_tree(output(focal(2, inner))).halo() == 9


def test_only_the_mask_band_of_a_dilating_mask_by_needs_a_halo():
    tree = parse_tool_tree(output({"type": "mask_by", "input": focal(2), "by": leaf(bands=["qa"]), "dilate": 7,
                                   "remove_where": {"bits": [3, 1]}}))
    assert tree.halo() == 7


def test_a_tree_whose_radii_add_up_past_the_halo_limit_is_refused():
    node = leaf()
    for _ in range(MAX_HALO // 64 + 1):
        node = focal(64, node)
    with pytest.raises(InvalidToolTree, match=f"more than the {MAX_HALO} allowed"):
        parse_tool_tree(output(node))


def test_a_focal_mode_of_classes_is_categorical():
    classes = {"type": "classify", "input": leaf(bands=["red"]), "remap": {"1": 1, "2": 2}, "default": 0}
    assert parse_tool_tree(output(focal(2, classes, stat="mode"))).is_categorical()
    assert not parse_tool_tree(output(focal(2, classes, stat="mean"))).is_categorical()
