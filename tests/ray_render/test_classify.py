"""Classes and colour on arrays, against values worked out by hand."""

from __future__ import annotations

import numpy as np

from models.tooltree import Classify, Colormap, ProjectSource
from ray_render.classify import classify, colormap

SCENE = {"name": "s", "crs": "EPSG:3857", "dtype": "float32", "resolution": [1, 1], "bounds": [0, 0, 1, 1],
         "bands": [{"name": "d", "uri": "x"}]}
SOURCE = ProjectSource(scenes=[SCENE], bands=["d"])
X = np.array([[-0.5, -0.15, 0.0, 0.15, 0.9, 7.0]])
NONE = np.zeros(X.shape, dtype=bool)


def test_rules_take_the_first_match_min_inclusive_max_exclusive():
    node = Classify(input=SOURCE, rules=[{"max": -0.15, "value": 1}, {"min": -0.15, "max": 0.15, "value": 2},
                                         {"min": 0.15, "max": 1, "value": 3}, {"min": 0.0, "value": 9}])
    values, invalid = classify(node, X, NONE)
    assert values[0, :5].tolist() == [1, 2, 2, 3, 3]
    assert values[0, 5] == 9 and not invalid.any()  # 7 misses the first three rules; the catch-all takes it


def test_unmatched_values_get_the_default_or_no_value():
    rules = [{"min": 0, "max": 1, "value": 1}]
    _, invalid = classify(Classify(input=SOURCE, rules=rules), X, NONE)
    assert invalid[0].tolist() == [True, True, False, False, False, True]
    values, invalid = classify(Classify(input=SOURCE, rules=rules, default=0), X, NONE)
    assert values[0].tolist() == [0, 0, 1, 1, 1, 0] and not invalid.any()
    nodata = np.array([[True, False, False, False, False, False]])
    assert classify(Classify(input=SOURCE, rules=rules, default=0), X, nodata)[1][0, 0]  # nodata stays nodata


def test_remap_matches_exact_integers():
    codes = np.array([[10.0, 20.0, 20.5, 30.0]])
    values, invalid = classify(Classify(input=SOURCE, remap={"10": 1, "20": 2}), codes, np.zeros(codes.shape, bool))
    assert values[0, :2].tolist() == [1, 2] and invalid[0].tolist() == [False, False, True, True]


def test_a_ramp_interpolates_linearly_between_stops_and_clamps_beyond_them():
    node = Colormap(input=SOURCE, ramp=[[0, "#000000"], [1, "#ff8000"], [2, "#ffffff80"]])
    x = np.array([[-1.0, 0.0, 0.5, 1.0, 1.5, 2.0, 9.0]])
    out = colormap(node, x, np.zeros(x.shape, bool))
    assert out[:, 0, 2].tolist() == [128, 64, 0, 255]  # half way from black to orange: 127.5 rounds to even
    assert out[:, 0, 4].tolist() == [255, 192, 128, round((255 + 128) / 2)]
    assert out[:, 0, 0].tolist() == [0, 0, 0, 255] and out[:, 0, 6].tolist() == [255, 255, 255, 128]


def test_a_named_ramp_spans_its_range():
    node = Colormap(input=SOURCE, ramp="viridis", range=(-1, 1))
    out = colormap(node, np.array([[-1.0, 1.0]]), np.zeros((1, 2), bool))
    assert out[:, 0, 0].tolist() == [0x44, 0x01, 0x54, 255] and out[:, 0, 1].tolist() == [0xfd, 0xe7, 0x25, 255]


def test_classes_colour_exact_values_and_nodata_is_transparent():
    node = Colormap(input=SOURCE, classes={"1": "#d7191c", "3": "#1a9641"})
    x = np.array([[1.0, 2.0, 3.0, 3.0]])
    out = colormap(node, x, np.array([[False, False, False, True]]))
    assert out[:, 0, 0].tolist() == [0xd7, 0x19, 0x1c, 255] and out[:, 0, 2].tolist() == [0x1a, 0x96, 0x41, 255]
    assert out[:, 0, 1].tolist() == [0, 0, 0, 0] and out[:, 0, 3].tolist() == [0, 0, 0, 0]
    with_default = colormap(Colormap(input=SOURCE, classes={"1": "#d7191c"}, default="#808080"), x, np.zeros(x.shape, bool))
    assert with_default[:, 0, 1].tolist() == [128, 128, 128, 255]
