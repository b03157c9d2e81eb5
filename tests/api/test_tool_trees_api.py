"""Tool trees through the HTTP API: leaves naming their projects (so `project` is optional), the estimate's
sources, and refusals naming the node (422), the project (404) or the scene (403), writing nothing."""

from __future__ import annotations

from sqlmodel import select

from models.tables import Export
from tests.conftest import SMALL_AOI


def ndvi(project=None) -> dict:
    source = {"type": "project", "bands": ["red", "nir"], **({"project": project} if project else {})}
    return {"type": "normalized_difference", "a": "nir", "b": "red", "name": "ndvi", "input": source}


def change(before, after) -> dict:
    return {"type": "output", "dtype": "float32", "nodata": -9999, "input": {
        "type": "band_math", "name": "dndvi", "inputs": {"before": ndvi(before), "after": ndvi(after)},
        "expr": {"op": "-", "args": [{"band": "ndvi", "input": "after"}, {"band": "ndvi", "input": "before"}]}}}


def exports_in(session) -> int:
    session.expire_all()
    return len(session.exec(select(Export)).all())


def test_a_tree_over_two_projects_needs_no_request_project(people, session):
    ada = people["ada"]
    body = {"tool_tree": change("alps", "open"), "resolution": 480}
    estimate = ada.client.post("/api/v1/exports/estimate", json=body)
    assert estimate.status_code == 200, estimate.text
    sources = estimate.json()["sources"]
    assert [(s["project"], s["scenes"], s["bands"]) for s in sources] == [
        ("alps", ["alpine-foreland-west", "alpine-foreland-east"], ["red", "nir"]), ("open", ["bob-east"], ["red", "nir"])]
    assert exports_in(session) == 0
    created = ada.client.post("/api/v1/exports", json={**body, "aoi": SMALL_AOI})
    assert created.status_code == 201, created.text
    assert created.json()["project_id"] == sources[0]["project_id"]


def test_refusals_name_the_leaf(people, session):
    ada = people["ada"]
    hidden = ada.client.post("/api/v1/exports", json={"tool_tree": change("alps", "bobs")})
    assert hidden.status_code == 404
    assert hidden.json()["detail"] == "tool.input.inputs.after.input: project 'bobs' not found"
    unnamed = ada.client.post("/api/v1/exports", json={"tool_tree": change(None, "alps")})
    assert unnamed.status_code == 422 and unnamed.json()["field"] == "tool.input.inputs.before.input.project"
    bad_op = change("alps", "alps")
    bad_op["input"]["expr"]["op"] = "import"
    refused = ada.client.post("/api/v1/exports", json={"tool_tree": bad_op})
    assert refused.status_code == 422 and refused.json()["field"] == "tool.input.band_math.expr.op.op"
    nothing = ada.client.post("/api/v1/exports", json={})
    assert nothing.status_code == 422 and "give a `project`" in nothing.json()["reason"]
    assert exports_in(session) == 0
