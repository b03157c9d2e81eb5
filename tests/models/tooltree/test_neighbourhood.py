"""Focal, terrain and dilation nodes: their limits, and the halo a tree needs."""

from __future__ import annotations

import pytest

from models.errors import InvalidToolTree
from models.tooltree import MAX_HALO, parse_tool_tree
from tests.models.tooltree.conftest import leaf, output


def focal(radius, node=None, **fields):
    return {"type": "focal", "stat": "mean", "radius": radius, "input": node or leaf(), **fields}


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
