"""The README documents exactly the registries the code reads: named indices, node types, operators, ramps."""

from pathlib import Path

from models.tooltree import FOCAL_STATS, INDICES, NAMED_RAMPS, NODE_TYPES, OPERATORS, TERRAIN_PRODUCTS

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_every_named_index_is_in_the_readme_table_with_its_bands_and_formula():
    for name, index in INDICES.items():
        assert f"| `{name}` | {index.title} | {', '.join(index.bands)} | {index.formula} |" in README, name


def test_every_node_type_operator_and_named_ramp_is_documented():
    for name in NODE_TYPES:
        assert f"`{name}`" in README, name
    listed = README[README.index("with one of the operators"):README.index("(`models/tooltree/expressions.py`")]
    assert [op.strip(" `\n") for op in listed.removeprefix("with one of the operators").split(",")] == list(OPERATORS)
    for ramp in NAMED_RAMPS:
        assert f"`{ramp}`" in README, ramp
    for name in (*FOCAL_STATS, *TERRAIN_PRODUCTS):
        assert f"`{name}`" in README, name
