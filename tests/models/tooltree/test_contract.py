"""The JSON shapes of issues 11 and 12 are accepted exactly as written, and every node type round-trips through
JSON."""

from __future__ import annotations

import json

import pytest

from models.tooltree import NODE_TYPES, Classify, Colormap, MaskBy, parse_tool_tree
from tests.models.tooltree.conftest import leaf, output

CHANGE = {"type": "output", "dtype": "float32", "nodata": -9999, "input":
          {"type": "band_math", "name": "dndvi",
           "inputs": {"before": {"type": "normalized_difference", "a": "nir", "b": "red", "name": "ndvi",
                                 "input": leaf("naip-2014")},
                      "after": {"type": "normalized_difference", "a": "nir", "b": "red", "name": "ndvi",
                                "input": leaf("naip-2020")}},
           "expr": {"op": "-", "args": [{"band": "ndvi", "input": "after"}, {"band": "ndvi", "input": "before"}]}}}
CLASSIFY = {"type": "classify", "input": CHANGE["input"], "default": None,
            "rules": [{"max": -0.15, "value": 1}, {"min": -0.15, "max": 0.15, "value": 2}, {"min": 0.15, "value": 3}]}
COLOURED = {"type": "output", "dtype": "uint8", "nodata": None, "input":
            {"type": "colormap", "input": CLASSIFY, "classes": {"1": "#d7191c", "2": "#ffffbf", "3": "#1a9641"}}}
QA_MASK = output({"type": "mask_by", "input": leaf("l8", ["red", "nir"]),
                  "by": leaf("l8", ["qa"], resampling="nearest"), "remove_where": {"bits": [4, 1], "equals": 1}})


def test_the_change_tree_has_two_sources_and_one_band():
    tree = parse_tool_tree(CHANGE)
    assert [s.project for s in tree.sources()] == ["naip-2014", "naip-2020"]
    assert tree.root.output_bands() == ["dndvi"]


def test_a_classified_change_map_coloured_is_rgba_and_categorical():
    tree = parse_tool_tree(COLOURED)
    assert tree.root.output_bands() == ["red", "green", "blue", "alpha"]
    assert tree.is_rgba() and tree.is_categorical()
    (classify,) = tree.find(Classify)
    assert [(r.min, r.max, r.value) for r in classify.rules] == [(None, -0.15, 1), (-0.15, 0.15, 2), (0.15, None, 3)]


def test_a_qa_mask_reads_its_own_leaf_with_nearest():
    tree = parse_tool_tree(QA_MASK)
    (node,) = tree.find(MaskBy)
    assert node.by.resampling == "nearest" and node.remove_where.bits == (4, 1) and node.remove_where.equals == 1


EVERY_NODE = output({"type": "band_math", "inputs": {
    "a": {"type": "select", "bands": ["nir"], "input": {"type": "identity", "input": leaf()}},
    "b": {"type": "classify", "remap": {"1": 10, "2": 20}, "default": 0,
          "input": {"type": "normalized_difference", "a": "nir", "b": "red", "name": "ndvi", "input": leaf("q")}},
    "c": {"type": "mask", "keep": "outside", "crs": "EPSG:32618",
          "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [50, 0], [50, 50], [0, 0]]]},
          "input": {"type": "mask_by", "input": {"type": "color_correct", "gamma": 1.2,
                                                 "stretch": [{"band": "red", "min": 0, "max": 3000}],
                                                 "input": {"type": "scene", "scene": 1, "bands": ["red"],
                                                           "scenes": [leaf()["scenes"][0]]}},
                    "by": leaf("l8", ["qa"]), "keep_where": {"range": [0, 3]}, "dilate": 3}},
    "e": {"type": "terrain", "product": "hillshade", "azimuth": 315, "altitude": 45, "z_factor": 1,
          "input": {"type": "focal", "stat": "mean", "radius": 2, "shape": "square",
                    "input": {"type": "select", "bands": ["red"], "input": leaf()}}},
    "d": {"type": "select", "bands": ["alpha"], "input": {"type": "colormap", "ramp": "viridis", "range": [-1, 1],
                                                           "input": {"type": "select", "bands": ["red"], "input": leaf()}}},
}, "outputs": {
    "x": {"op": "where", "args": [{"op": "is_nodata", "args": [{"band": "nir"}]}, {"nodata": True},
                                  {"op": "bits", "args": [{"band": "class"}, {"const": 1}, {"const": 3}]}]},
    "y": {"op": "clamp", "args": [{"band": "red", "input": "c"}, {"const": 0}, {"band": "alpha"}]},
}})


def test_every_node_type_round_trips_through_json():
    tree = parse_tool_tree(EVERY_NODE)
    used = {node.type for node in tree.root.walk()}
    assert used == set(NODE_TYPES), f"not exercised: {set(NODE_TYPES) - used}"
    again = parse_tool_tree(json.loads(json.dumps(tree.to_json())))
    assert again == tree
    assert again.root.output_bands() == ["x", "y"]


@pytest.mark.parametrize("ramp", [[[-1, "#d7191c"], [0, "#FFFFBF"], [1, "#1a9641cc"]], "rdylgn"])
def test_colour_ramps_by_stops_or_by_name(ramp):
    extra = {"range": [-1, 1]} if isinstance(ramp, str) else {}
    tree = parse_tool_tree({"type": "output", "dtype": "uint8", "nodata": None,
                            "input": {"type": "colormap", "ramp": ramp, **extra, "input": leaf(bands=["red"])}})
    (node,) = tree.find(Colormap)
    assert parse_tool_tree(tree.to_json()) == tree
    if not isinstance(ramp, str):
        assert node.ramp[1] == (0.0, "#ffffbf")  # colours are normalised to lower case


def test_the_focal_and_terrain_shapes_of_issue_12():
    focal = {"type": "focal", "stat": "mean", "radius": 2, "shape": "square", "input": leaf(bands=["red", "nir"])}
    terrain = {"type": "terrain", "product": "hillshade", "azimuth": 315, "altitude": 45, "z_factor": 1,
               "input": leaf(bands=["red"])}
    assert parse_tool_tree(output(focal)).root.output_bands() == ["red", "nir"]
    tree = parse_tool_tree(output(terrain))
    assert tree.root.output_bands() == ["hillshade"] and tree.halo() == 1
    assert parse_tool_tree(output({**focal, "input": terrain})).halo() == 3
