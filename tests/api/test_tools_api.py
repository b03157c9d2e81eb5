"""/api/v1/tools: saving, listing, sharing and removing tools, exporting them by name with `bind`, and the
JSON Schema of a tool tree. Refusals name the node or the slot and write nothing."""

from __future__ import annotations

import jsonschema
from sqlmodel import select

from models.tables import Export, SavedTool
from tests.api.test_tool_trees_api import exports_in
from tests.conftest import SMALL_AOI


def ndvi_of(source: dict) -> dict:
    return {"type": "normalized_difference", "a": "nir", "b": "red", "name": "ndvi", "input": source}


def slot(name: str) -> dict:
    return {"type": "project", "slot": name, "bands": ["red", "nir"]}


# The example: the change in NDVI between two dates, each a slot bound at export time.
NDVI_CHANGE = {"type": "output", "dtype": "float32", "nodata": -9999, "input": {
    "type": "band_math", "name": "dndvi",
    "inputs": {"before": ndvi_of(slot("before")), "after": ndvi_of(slot("after"))},
    "expr": {"op": "-", "args": [{"band": "ndvi", "input": "after"}, {"band": "ndvi", "input": "before"}]}}}


def save(client, name="ndvi-change", tree=NDVI_CHANGE, **extra):
    return client.post("/api/v1/tools", json={"name": name, "tree": tree, **extra})


def test_a_saved_tool_is_exported_for_any_project_by_binding_its_slots(people, session):
    ada = people["ada"]
    saved = save(ada.client, description="NDVI after minus NDVI before")
    assert saved.status_code == 201, saved.text
    assert saved.json()["slots"] == ["before", "after"] and saved.json()["shared_with"] == []
    body = {"tool": "ndvi-change", "bind": {"before": "alps", "after": "open"}, "aoi": SMALL_AOI, "resolution": 480}
    estimate = ada.client.post("/api/v1/exports/estimate", json=body)
    assert estimate.status_code == 200, estimate.text
    assert [(s["slot"], s["project"], s["bands"]) for s in estimate.json()["sources"]] == [
        ("before", "alps", ["red", "nir"]), ("after", "open", ["red", "nir"])]
    created = ada.client.post("/api/v1/exports", json=body)
    assert created.status_code == 201, created.text
    export = session.get(Export, created.json()["id"])
    leaves = [export.tool["input"]["input"]["inputs"][k]["input"] for k in ("before", "after")]
    assert [(leaf["slot"], leaf["project"], len(leaf["scenes"])) for leaf in leaves] == [("before", "alps", 2),
                                                                                        ("after", "open", 1)]


def test_slot_refusals_name_the_slot_and_write_nothing(people, session):
    ada = people["ada"]
    assert save(ada.client).status_code == 201
    cases = [
        ({"before": "alps"}, 422, "bind.after", "slot 'after' is not bound"),
        ({"before": "alps", "after": "alps", "during": "alps"}, 422, "bind.during", "no slot 'during'"),
        ({"before": "alps", "after": "bobs"}, 404, None, "bind.after: project 'bobs' not found"),
        ({"before": "alps", "after": True}, 422, None, "bind"),
    ]
    for bind, status, field, needle in cases:
        response = ada.client.post("/api/v1/exports", json={"tool": "ndvi-change", "bind": bind})
        assert response.status_code == status, (bind, response.text)
        if field:
            assert response.json()["field"] == field
        assert needle in response.text
    plain = ada.client.post("/api/v1/exports", json={"project": "alps", "tool": "ndvi", "bind": {"before": "alps"}})
    assert plain.status_code == 422 and "`bind` fills the slots of a saved tool" in plain.text
    assert exports_in(session) == 0


def test_a_slot_bound_to_a_project_with_scenes_the_user_may_not_read_is_403_naming_the_slot(people, session):
    from models.catalogue import add_scene, find_project
    from models.tables import Scene

    ada, bob = people["ada"], people["bob"]
    # Bob's public project gets a private scene of his: ada may see the project but not read all of it.
    public = find_project(session, user=bob.user, ref="open")
    private = session.exec(select(Scene).where(Scene.name == "bob-west")).first()
    add_scene(session, owner=bob.user, project=public, name="bob-private",
              info={k: getattr(private, k) for k in ("crs_wkt", "epsg", "bounds", "footprint", "width", "height",
                                                     "res_x", "res_y", "dtype", "nodata", "bands")})
    session.commit()
    assert save(ada.client).status_code == 201
    response = ada.client.post("/api/v1/exports", json={"tool": "ndvi-change", "bind": {"before": "alps",
                                                                                         "after": "open"}})
    assert response.status_code == 403 and response.json()["detail"].startswith("bind.after: you may not read")
    assert exports_in(session) == 0


def test_a_tool_is_checked_whole_when_saved(people, session):
    ada = people["ada"]
    wrong_band = {**NDVI_CHANGE, "input": {**NDVI_CHANGE["input"], "expr": {"band": "evi", "input": "after"}}}
    cases = [
        (save(ada.client, tree=wrong_band), 422, "tool.input.band_math", "evi"),
        (save(ada.client, tree={"type": "focal", "stat": "mean", "radius": 99, "input": slot("x")}), 422,
         "tool.input.focal.radius", "less than or equal to 64"),
        (save(ada.client, tree={"type": "terrain", "product": "slope", "input": slot("dem")}), 422, "tool.input.terrain",
         "one-band elevation input"),
        (save(ada.client, tree=ndvi_of({**slot("x"), "project": "alps"})), 422, "tool.input.slot", "not both"),
        (save(ada.client, tree=ndvi_of({**slot("x"), "scenes": []})), 422, "tool.input.scenes", "never their files"),
        (save(ada.client, name="ndvi"), 422, "name", "built-in tool"),
        (save(ada.client, name="../etc"), 422, "name", "not a tool name"),
        (save(ada.client, tree=[1]), 422, None, "tree"),
    ]
    for response, status, field, needle in cases:
        assert response.status_code == status, response.text
        if field:
            assert response.json()["field"] == field, response.text
        assert needle in response.text
    assert ada.client.post("/api/v1/tools", json={"name": "ndvi-change", "tool_tree": NDVI_CHANGE}).status_code == 201
    assert save(ada.client).status_code == 409
    assert len(session.exec(select(SavedTool)).all()) == 1


def test_another_users_tool_is_theirs_until_shared(people, session):
    ada, bob = people["ada"], people["bob"]
    assert save(bob.client, tree=ndvi_of(slot("input"))).status_code == 201
    body = {"tool": "ndvi-change", "bind": {"input": "open"}, "resolution": 480}
    assert ada.client.post("/api/v1/exports", json=body).status_code == 404
    assert ada.client.get("/api/v1/tools/ndvi-change").status_code == 404
    assert ada.client.get("/api/v1/tools").json() == []

    shared = bob.client.post("/api/v1/tools/ndvi-change/shares", json={"user": "ada"})
    assert shared.status_code == 200 and shared.json()["shared_with"] == ["ada"]
    seen = ada.client.get("/api/v1/tools/bob/ndvi-change").json()
    assert seen["ref"] == "bob/ndvi-change" and seen["shared_with"] is None and seen["slots"] == ["input"]
    assert ada.client.post("/api/v1/exports", json=body).status_code == 201
    # Ada may use bob's tool but not change it; her own tool of that name then comes first.
    assert ada.client.delete("/api/v1/tools/ndvi-change").status_code == 404
    assert save(ada.client).status_code == 201
    assert [t["ref"] for t in ada.client.get("/api/v1/tools").json()] == ["ndvi-change", "bob/ndvi-change"]
    assert ada.client.get("/api/v1/tools/ndvi-change").json()["owner"] == "ada"

    assert bob.client.delete("/api/v1/tools/ndvi-change").status_code == 204
    assert ada.client.get("/api/v1/tools/bob/ndvi-change").status_code == 404
    assert bob.client.post("/api/v1/tools/ndvi-change/shares", json={"user": "ada"}).status_code == 404


def test_the_schema_describes_the_trees_users_write(people):
    schema = people["ada"].client.get("/api/v1/tools/schema")
    assert schema.status_code == 200
    validator = jsonschema.Draft202012Validator(schema.json())
    validator.check_schema(schema.json())
    focal = {"type": "focal", "stat": "mean", "radius": 2, "shape": "square", "input": slot("x")}
    hillshade = {"type": "terrain", "product": "hillshade", "azimuth": 315, "altitude": 45, "z_factor": 1,
                 "input": {"type": "project", "slot": "dem", "bands": ["elevation"]}}
    for tree in (NDVI_CHANGE, focal, hillshade):
        assert list(validator.iter_errors(tree)) == []
    assert list(validator.iter_errors({**focal, "radius": 65}))
    assert list(validator.iter_errors(ndvi_of({**slot("x"), "scenes": [{"uri": "/etc/passwd"}]})))
    assert "SceneSource" not in schema.text
