"""Band math on arrays: every operator against plain Python maths, and the nodata rules, one by one."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.tooltree import OPERATORS, Condition, Operation, parse_tool_tree
from ray_render.algebra import FUNCTIONS, evaluate_expression, matches

X = np.array([-2.5, -1.0, -0.5, 0.0, 0.5, 1.0, 2.5, 4.0])
Y = np.array([2.0, 0.0, 3.0, 0.0, -1.0, 2.0, 0.5, -3.0])
NO_X = np.array([False, False, False, False, False, False, True, False])  # x has no value at index 6


def run(expr: dict):
    """(values, invalid) of an expression over the bands x and y."""
    node = Operation.model_validate(expr) if "op" in expr else None
    bands = {"x": (X, NO_X), "y": (Y, np.zeros_like(NO_X))}
    values, invalid = evaluate_expression(node, lambda ref: bands[ref.band])
    return np.broadcast_to(values, X.shape), np.broadcast_to(invalid, X.shape)


def op(name, *args):
    return {"op": name, "args": [a if isinstance(a, dict) else {"band": a} if isinstance(a, str) else {"const": a}
                                 for a in args]}


def test_the_algebra_implements_exactly_the_operators_the_schema_accepts():
    assert set(FUNCTIONS) == set(OPERATORS)


REFERENCE = {  # each operator, per element, in plain Python; None where the result has no value
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
    "/": lambda a, b: a / b if b != 0 else None,
    "pow": lambda a, b: (lambda r: r if isinstance(r, float) and math.isfinite(r) else None)(
        a ** b if not (a == 0 and b < 0) else float("inf")),
    "min": min, "max": max, "atan2": math.atan2,
    "lt": lambda a, b: float(a < b), "le": lambda a, b: float(a <= b), "gt": lambda a, b: float(a > b),
    "ge": lambda a, b: float(a >= b), "eq": lambda a, b: float(a == b), "ne": lambda a, b: float(a != b),
    "and": lambda a, b: float(a != 0 and b != 0), "or": lambda a, b: float(a != 0 or b != 0),
}
UNARY = {
    "abs": abs, "neg": lambda a: -a, "floor": math.floor, "ceil": math.ceil,
    "round": lambda a: math.copysign(math.floor(abs(a) + 0.5), a),
    "sqrt": lambda a: math.sqrt(a) if a >= 0 else None, "log": lambda a: math.log(a) if a > 0 else None,
    "log10": lambda a: math.log10(a) if a > 0 else None, "exp": math.exp, "sin": math.sin, "cos": math.cos,
    "tan": math.tan, "not": lambda a: float(a == 0),
}


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_binary_operators_match_python_and_propagate_nodata(name):
    values, invalid = run(op(name, "x", "y"))
    for i, (a, b) in enumerate(zip(X, Y, strict=True)):
        expected = None if NO_X[i] else REFERENCE[name](float(a), float(b))
        if isinstance(expected, complex):
            expected = None
        assert bool(invalid[i]) == (expected is None), (name, a, b)
        if expected is not None:
            assert values[i] == pytest.approx(expected), (name, a, b)


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_operators_match_python_and_propagate_nodata(name):
    values, invalid = run(op(name, "x"))
    for i, a in enumerate(X):
        expected = None if NO_X[i] else UNARY[name](float(a))
        assert bool(invalid[i]) == (expected is None), (name, a)
        if expected is not None:
            assert values[i] == pytest.approx(expected), (name, a)


def test_sums_products_and_extremes_take_any_number_of_arguments():
    values, _ = run(op("+", "x", "y", 10.0))
    assert values[0] == -2.5 + 2.0 + 10.0
    values, _ = run(op("max", "x", "y", 3.0))
    assert values.tolist()[:3] == [3.0, 3.0, 3.0] and values[7] == 4.0


def test_where_uses_only_the_branch_it_picks():
    # where(y > 0, x, 1): index 6 (x has no value) picks x, so it has none; index 3 picks 1, so x does not matter.
    values, invalid = run(op("where", op("gt", "y", 0.0), "x", 1.0))
    assert values.tolist() == [-2.5, 1.0, -0.5, 1.0, 1.0, 1.0, values[6], 1.0]
    assert invalid.tolist() == [False] * 6 + [True, False]
    _, invalid = run(op("where", op("gt", "x", 0.0), 1.0, 0.0))  # the condition has no value: neither has the result
    assert invalid[6]


def test_comparisons_with_nodata_have_no_value_and_is_nodata_tells_it():
    _, invalid = run(op("eq", "x", {"nodata": True}))
    assert invalid.all()  # nodata equals nothing, not even nodata
    values, invalid = run(op("is_nodata", "x"))
    assert values.tolist() == NO_X.astype(float).tolist() and not invalid.any()


def test_clamp_limits_to_its_bounds():
    values, _ = run(op("clamp", "x", -1.0, 1.0))
    assert values.tolist() == [-1.0, -1.0, -0.5, 0.0, 0.5, 1.0, 1.0, 1.0]


def test_bits_read_a_qa_field_and_refuse_negative_or_fractional_values():
    qa = np.array([0b0001_0000, 0b0011_0000, 0b1000_0001, 2720.0, -16.0, 16.5])
    expr = Operation.model_validate(op("bits", "qa", 4, 2))
    values, invalid = evaluate_expression(expr, lambda ref: (qa, np.zeros(qa.shape, bool)))
    assert values[:4].tolist() == [1, 3, 0, (2720 >> 4) & 3]
    assert invalid.tolist() == [False] * 4 + [True, True]


def test_conditions_of_mask_by():
    qa = np.array([2720.0, 2800.0, 2976.0, 1.0, 3.5])
    hit, told = matches(Condition(bits=(4, 1), equals=1), qa)  # Landsat 8 C1 BQA bit 4: cloud
    assert hit[:4].tolist() == [bool((int(v) >> 4) & 1) for v in qa[:4]] and told.tolist() == [True] * 4 + [False]
    hit, _ = matches(Condition(bits=(5, 2)), qa)  # no `equals`: any bit set
    assert hit[:4].tolist() == [((int(v) >> 5) & 3) != 0 for v in qa[:4]]
    assert matches(Condition(values=[1, 2800]), qa)[0].tolist() == [False, True, False, True, False]
    assert matches(Condition(range=(2720, 2800)), qa)[0].tolist() == [True, True, False, False, False]


def test_a_constant_expression_fills_the_tile():
    from rasterio.windows import Window

    from ray_render.evaluate import Stack, evaluate

    scene = {"name": "s", "crs": "EPSG:3857", "dtype": "uint8", "resolution": [1, 1], "bounds": [0, 0, 2, 1],
             "bands": [{"name": "red", "uri": "x"}]}
    tree = parse_tool_tree({"type": "output", "dtype": "float32", "nodata": -1, "input": {
        "type": "band_math", "input": {"type": "project", "scenes": [scene], "bands": ["red"]},
        "outputs": {"two": {"const": 2}, "none": {"nodata": True}}}})
    source = Stack(["red"], np.ma.masked_array(np.zeros((1, 1, 2))))
    out = evaluate(tree.root, read_source=lambda *_: source, aoi_mask=lambda *_: None, window=Window(0, 0, 2, 1))
    assert out.bands == ["two", "none"] and out.data.shape == (2, 1, 2)
    assert out.data[0].tolist() == [[2.0, 2.0]] and out.data.mask[1].all()
