"""Saved tools in the database: names, slots, who may see a tool, and which of several a name means."""

from __future__ import annotations

import pytest

from models.catalogue import get_or_create_user
from models.errors import Conflict, InvalidRequest, InvalidToolTree, NotFound
from models.saved_tools import check_saved_tree, create_tool, find_tool, list_tools, remove_tool, share_tool, slots_of

LEAF = {"type": "project", "slot": "input", "bands": ["red", "nir"]}
NDVI = {"type": "normalized_difference", "a": "nir", "b": "red", "name": "ndvi", "input": LEAF}


@pytest.fixture
def users(session):
    return {name: get_or_create_user(session, name=name) for name in ("ann", "ben", "cat")}


def test_slots_are_listed_once_in_reading_order():
    tree = {"type": "band_math", "expr": {"band": "nir", "input": "b"}, "inputs": {
        "b": {**LEAF, "slot": "second"}, "a": {**LEAF, "slot": "first"}, "c": {**LEAF, "slot": "second"},
        "d": {"type": "project", "project": "fixed", "bands": ["nir"]}, "e": {"type": "scene", "scene": 3, "bands": ["nir"]}}}
    assert check_saved_tree(tree) == ["second", "first"] == slots_of(tree)


def test_a_bad_slot_name_is_refused_naming_the_leaf():
    with pytest.raises(InvalidToolTree) as info:
        check_saved_tree({**NDVI, "input": {**LEAF, "slot": "1 drop"}})
    assert info.value.field == "tool.input.normalized_difference.input.project.slot"


def test_a_name_means_your_own_tool_first_then_a_shared_one_and_two_shared_ones_need_their_owner(session, users):
    ann, ben, cat = users["ann"], users["ben"], users["cat"]
    for owner in (ben, cat):
        create_tool(session, owner=owner, name="smooth", tree=NDVI)
    with pytest.raises(NotFound):
        find_tool(session, user=ann, ref="smooth")  # neither is shared with ann
    share_tool(session, owner=ben, name="smooth", with_user=ann)
    assert find_tool(session, user=ann, ref="smooth").owner_id == ben.id
    share_tool(session, owner=cat, name="smooth", with_user=ann)
    with pytest.raises(InvalidRequest, match="by ben, cat: say whose, e.g. ben/smooth"):
        find_tool(session, user=ann, ref="smooth")
    assert find_tool(session, user=ann, ref="cat/smooth").owner_id == cat.id
    mine = create_tool(session, owner=ann, name="smooth", tree=NDVI)
    assert find_tool(session, user=ann, ref="smooth").id == mine.id
    assert [(t.owner_id, t.name) for t in list_tools(session, user=ann)] == [(ann.id, "smooth"), (ben.id, "smooth"),
                                                                            (cat.id, "smooth")]
    with pytest.raises(Conflict):
        create_tool(session, owner=ann, name="smooth", tree=NDVI)
    with pytest.raises(NotFound):
        remove_tool(session, owner=ann, name="nothing")
    remove_tool(session, owner=cat, name="smooth")
    assert find_tool(session, user=ann, ref="ben/smooth").owner_id == ben.id
    with pytest.raises(NotFound):
        find_tool(session, user=ann, ref="cat/smooth")
