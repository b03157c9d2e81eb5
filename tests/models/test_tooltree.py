"""Parsing tool trees: valid trees round-trip, hostile or broken ones are refused with a named reason."""

from __future__ import annotations

import copy

import pytest

from models.errors import InvalidToolTree
from models.tooltree import MAX_DEPTH, NormalizedDifference, ToolTree, ndvi, ndwi, parse_tool_tree

SCENE = {
    "name": "s1", "crs": "EPSG:32618", "dtype": "uint16", "nodata": 0, "resolution": [10, 10],
    "bounds": [0, 0, 100, 100],
    "bands": [{"name": n, "uri": "/data/s1.tif", "index": i} for i, n in enumerate(["red", "green", "blue", "nir"], 1)],
}
SOURCE = {"type": "project", "scenes": [SCENE], "bands": ["red", "green", "blue", "nir"]}


def output(node: dict, **kwargs) -> dict:
    return {"type": "output", "input": node, **kwargs}


def test_a_colour_corrected_masked_tree_parses_and_round_trips():
    tree_json = output({
        "type": "mask", "crs": "EPSG:3857",
        "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]},
        "input": {"type": "color_correct", "gamma": 1.4,
                  "stretch": [{"band": b, "min": 0, "max": 3000} for b in ("nir", "red", "green")],
                  "input": {"type": "select", "bands": ["nir", "red", "green"], "input": SOURCE}},
    }, dtype="uint8", nodata=0, scale=255)
    tree = parse_tool_tree(tree_json)
    assert isinstance(tree, ToolTree)
    assert tree.root.output_bands() == ["nir", "red", "green"]
    assert parse_tool_tree(tree.to_json()) == tree
    assert [type(n).__name__ for n in tree.root.walk()] == ["Output", "Mask", "ColorCorrect", "SelectBands", "ProjectSource"]


def test_ndvi_and_ndwi_are_templates_over_band_names():
    tree = parse_tool_tree(output({"type": "identity", "input": SOURCE}))
    source = tree.sources()[0]
    assert ndvi(source) == NormalizedDifference(input=source, a="nir", b="red", name="ndvi")
    assert ndwi(source) == NormalizedDifference(input=source, a="green", b="nir", name="ndwi")


HOSTILE = [
    ("not an object", "x", "must be a JSON object"),
    ("a list", [SOURCE], "must be a JSON object"),
    ("root is not output", SOURCE, "root node must be 'output'"),
    ("unknown node type", output({"type": "exec", "input": SOURCE}), "does not match any of the expected tags"),
    ("python in a band name", output({"type": "select", "bands": ["__import__('os').system('id')"], "input": SOURCE}),
     "does not provide"),
    ("missing band in select", output({"type": "select", "bands": ["swir16"], "input": SOURCE}), "swir16"),
    ("missing band in difference", output({"type": "normalized_difference", "a": "nir", "b": "swir22", "input": SOURCE}),
     "swir22"),
    ("band the source lacks", output({"type": "identity", "input": dict(SOURCE, bands=["red", "thermal"])}), "thermal"),
    ("extra field", output({"type": "identity", "input": SOURCE, "code": "1+1"}), "Extra inputs are not permitted"),
    ("stretch misses a band", output({"type": "color_correct", "stretch": [{"band": "red", "min": 0, "max": 1}],
                                      "input": {"type": "select", "bands": ["red", "green"], "input": SOURCE}}),
     "no stretch for band(s) green"),
    ("stretch max below min", output({"type": "color_correct", "stretch": [{"band": "red", "min": 5, "max": 1}],
                                      "input": {"type": "select", "bands": ["red"], "input": SOURCE}}), "must exceed"),
    ("gamma zero", output({"type": "color_correct", "gamma": 0, "stretch": [{"band": "red", "min": 0, "max": 1}],
                           "input": {"type": "select", "bands": ["red"], "input": SOURCE}}), "gamma"),
    ("mask with a point", output({"type": "mask", "crs": "EPSG:4326", "geometry": {"type": "Point", "coordinates": [0, 0]},
                                  "input": SOURCE}), "Polygon or MultiPolygon"),
    ("unknown output dtype", output({"type": "identity", "input": SOURCE}, dtype="complex64"), "dtype"),
    ("nodata beyond the output type", output({"type": "identity", "input": SOURCE}, dtype="uint8", nodata=300),
     "nodata 300 is not a value of uint8"),
    ("fractional nodata of an integer type", output({"type": "identity", "input": SOURCE}, dtype="int16", nodata=0.5),
     "nodata 0.5 is not a value of int16"),
    ("no scenes", output(dict(SOURCE, scenes=[])), "scenes"),
]


@pytest.mark.parametrize("data,needle", [(d, n) for _, d, n in HOSTILE], ids=[name for name, _, _ in HOSTILE])
def test_hostile_or_broken_trees_are_refused_with_the_reason(data, needle):
    with pytest.raises(InvalidToolTree) as info:
        parse_tool_tree(data)
    assert needle in str(info.value)
    assert str(info.value).startswith("tool")


def test_an_over_deep_tree_is_refused_before_validation():
    node = copy.deepcopy(SOURCE)
    for _ in range(MAX_DEPTH + 5):
        node = {"type": "identity", "input": node}
    with pytest.raises(InvalidToolTree, match=f"deeper than {MAX_DEPTH}"):
        parse_tool_tree(output(node))


def test_a_refused_tree_names_the_failing_node():
    bad = output({"type": "identity", "input": {"type": "select", "bands": ["swir16"], "input": SOURCE}})
    with pytest.raises(InvalidToolTree) as info:
        parse_tool_tree(bad)
    assert info.value.field == "tool.input.identity.input.select"
