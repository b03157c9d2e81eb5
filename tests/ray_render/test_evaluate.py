"""The evaluator on plain arrays: each operation, nodata propagation and the output cast."""

import numpy as np
import pytest
from rasterio.windows import Window

from models.tooltree import ColorCorrect, Mask, NormalizedDifference, Output, ProjectSource, SelectBands, Stretch
from ray_render.evaluate import Stack, evaluate, to_output

SCENE = {"name": "s", "crs": "EPSG:3857", "dtype": "uint16", "resolution": [1, 1], "bounds": [0, 0, 2, 2],
         "bands": [{"name": n, "uri": "x", "index": i} for i, n in enumerate(["red", "green", "nir"], 1)]}
SOURCE = ProjectSource(scenes=[SCENE], bands=["red", "green", "nir"])
SQUARE = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}


def stack(red, green, nir, mask=None) -> Stack:
    data = np.array([red, green, nir], dtype=np.float64)
    return Stack(["red", "green", "nir"], np.ma.masked_array(data, mask=np.zeros_like(data, bool) if mask is None else mask))


def run(node, source_stack, inside=None):
    return evaluate(node, read_source=lambda *_: source_stack, aoi_mask=lambda *_: inside,
                    window=Window(0, 0, source_stack.shape[1], source_stack.shape[0]))


def test_select_reorders_bands_for_false_colour():
    s = stack([[1, 2]], [[3, 4]], [[5, 6]])
    out = run(SelectBands(input=SOURCE, bands=["nir", "red", "green"]), s)
    assert out.bands == ["nir", "red", "green"]
    assert out.data[:, 0, 1].tolist() == [6, 2, 4]


def test_color_correct_stretches_clips_and_applies_gamma():
    node = ColorCorrect(input=SelectBands(input=SOURCE, bands=["red"]), stretch=[Stretch(band="red", min=100, max=300)])
    out = run(node, stack([[50, 100, 200, 300, 400]], [[0] * 5], [[0] * 5]))
    assert out.data[0, 0].tolist() == pytest.approx([0, 0, 0.5, 1, 1])
    gamma = ColorCorrect(input=node.input, stretch=node.stretch, gamma=2.0)
    assert run(gamma, stack([[200]], [[0]], [[0]])).data[0, 0, 0] == pytest.approx(0.5 ** 0.5)


def test_normalized_difference_gives_nodata_not_inf_where_the_sum_is_zero():
    node = NormalizedDifference(input=SOURCE, a="nir", b="red", name="ndvi")
    out = run(node, stack([[10, 0, 30]], [[0, 0, 0]], [[30, 0, 10]]))
    assert out.bands == ["ndvi"]
    assert out.data.dtype == np.float32
    assert out.data[0, 0, 0] == pytest.approx(0.5)
    assert out.data[0, 0, 2] == pytest.approx(-0.5)
    assert bool(out.data.mask[0, 0, 1])
    assert np.isfinite(np.ma.getdata(out.data)).all()


def test_nodata_in_an_input_band_propagates():
    mask = np.zeros((3, 1, 2), bool)
    mask[2, 0, 0] = True  # nir missing at pixel 0
    out = run(NormalizedDifference(input=SOURCE, a="nir", b="red"), stack([[1, 1]], [[1, 1]], [[3, 3]], mask))
    assert out.data.mask[0, 0].tolist() == [True, False]


def test_mask_sets_pixels_outside_the_aoi_to_nodata():
    inside = np.array([[True, False]])
    out = run(Mask(input=SOURCE, geometry=SQUARE, crs="EPSG:3857"), stack([[1, 2]], [[3, 4]], [[5, 6]]), inside)
    assert out.data.mask[:, 0].tolist() == [[False, True]] * 3


def test_output_rounds_clips_fills_nodata_and_keeps_valid_zeros_valid():
    node = Output(input=SOURCE, dtype="uint8", nodata=0, scale=255)
    data = np.ma.masked_array(np.array([[[0.0, 0.5, 1.2, 0.3]]]), mask=[[[False, False, False, True]]])
    out = to_output(node, Stack(["red"], data))
    assert out.dtype == np.uint8
    # 0.0 is valid data, so it is nudged to 1 rather than vanishing as nodata; 1.2 clips to 255.
    assert out[0, 0].tolist() == [1, 128, 255, 0]


@pytest.mark.parametrize("source,target,nodata", [("uint8", "uint8", 0), ("uint8", "uint16", 0), ("uint16", "uint16", 65535),
                                                  ("int16", "int32", -9999), ("uint8", "uint8", None)])
def test_integers_that_fit_the_output_pass_as_they_are_with_nodata_rules_kept(source, target, nodata):
    rng = np.random.default_rng(5)
    info = np.iinfo(source)
    values = rng.integers(info.min, info.max, (2, 40, 40), endpoint=True).astype(source)
    values[0, 0, :3] = [0, info.max, -9999 if info.min < 0 else 0]  # valid pixels on the nodata value
    mask = rng.random(values.shape) < 0.2
    node = Output(input=SOURCE, dtype=target, nodata=nodata)
    out = to_output(node, Stack(["red", "green"], np.ma.masked_array(values, mask=mask)))
    # The reference: the same rules by hand, in Python integers.
    fill = 0 if nodata is None else nodata
    top = np.iinfo(target).max
    expected = [fill if m else (v if nodata is None or v != nodata else (v + 1 if v < top else v - 1))
                for v, m in zip(values.ravel().tolist(), mask.ravel().tolist(), strict=True)]
    assert out.dtype == np.dtype(target)
    assert out.ravel().tolist() == expected


def test_float_output_uses_its_nodata_value():
    node = Output(input=SOURCE, dtype="float32", nodata=-9999)
    data = np.ma.masked_array(np.array([[[0.25, 0.0]]]), mask=[[[False, True]]])
    assert to_output(node, Stack(["ndvi"], data))[0, 0].tolist() == [0.25, -9999.0]


BLUE_SCENE = {**SCENE, "bands": [*SCENE["bands"], {"name": "blue", "uri": "x", "index": 4}]}
BLUE_SOURCE = ProjectSource(scenes=[BLUE_SCENE], bands=["red", "green", "nir", "blue"])


def reflectance(red, nir, blue, mask=None) -> Stack:
    data = np.array([red, [[0] * len(red[0])], nir, blue], dtype=np.float32)
    return Stack(["red", "green", "nir", "blue"],
                 np.ma.masked_array(data, mask=np.zeros_like(data, bool) if mask is None else mask))


def test_evi_uses_the_standard_coefficients():
    from models.tooltree import evi

    out = run(evi(BLUE_SOURCE), reflectance([[0.05, 0.1]], [[0.4, 0.3]], [[0.03, 0.05]]))
    assert out.bands == ["evi"] and out.data.dtype == np.float32
    expected = [2.5 * (n - r) / (n + 6 * r - 7.5 * b + 1) for n, r, b in [(0.4, 0.05, 0.03), (0.3, 0.1, 0.05)]]
    assert out.data[0, 0].tolist() == pytest.approx(expected, rel=1e-6)


def test_band_math_gives_nodata_for_division_by_zero_overflow_and_nodata_inputs():
    from models.tooltree import BandMath, BandRef, Constant, Operation

    ratio = BandMath(input=BLUE_SOURCE, name="ratio", expr=Operation(op="/", args=[
        BandRef(band="nir"), Operation(op="-", args=[BandRef(band="red"), Constant(const=1.0)])]))
    mask = np.zeros((4, 1, 4), bool)
    mask[2, 0, 3] = True  # nir is nodata at the last pixel
    out = run(ratio, reflectance([[1.0, 3.0, 2.0, 2.0]], [[5.0, 4.0, 3e38, 1.0]], [[0, 0, 0, 0]], mask=mask))
    assert out.data.mask[0, 0].tolist() == [True, False, False, True]  # 5/0 and a nodata nir
    assert out.data[0, 0, 1] == pytest.approx(2.0)
    huge = BandMath(input=BLUE_SOURCE, name="huge", expr=Operation(op="*", args=[BandRef(band="nir"), Constant(const=1e10)]))
    assert run(huge, reflectance([[0.0]], [[3e38]], [[0.0]])).data.mask[0, 0, 0]  # inf is nodata too


def test_band_math_trees_are_checked_when_parsed():
    from models.errors import InvalidToolTree
    from models.tooltree import parse_tool_tree

    def tree(expr):
        return {"type": "output", "dtype": "float32", "nodata": -1,
                "input": {"type": "band_math", "name": "x", "expr": expr, "input": SOURCE.model_dump(mode="json")}}

    parse_tool_tree(tree({"op": "+", "args": [{"band": "red"}, {"const": 1}]}))
    with pytest.raises(InvalidToolTree, match="band_math uses band\\(s\\) swir16"):
        parse_tool_tree(tree({"op": "+", "args": [{"band": "swir16"}, {"const": 1}]}))
    with pytest.raises(InvalidToolTree):
        parse_tool_tree(tree({"op": "**", "args": [{"band": "red"}, {"const": 2}]}))
    with pytest.raises(InvalidToolTree):
        parse_tool_tree(tree({"op": "+", "args": [{"band": "red"}]}))
    with pytest.raises(InvalidToolTree):
        parse_tool_tree(tree("__import__('os').system('true')"))  # strings are never code


def test_the_evaluator_has_an_operation_for_every_node_type_but_the_leaves():
    from models.tooltree import NODE_TYPES, Leaf
    from ray_render.evaluate import OPERATIONS

    leaves = {name for name, cls in NODE_TYPES.items() if issubclass(cls, Leaf)}
    assert leaves == {"project", "scene"} and set(OPERATIONS) == set(NODE_TYPES) - leaves
