"""/api/v1/exports: authentication, access control, validation, idempotency, estimate, cancel and retry."""

import math

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from models.tables import Export, IdempotencyKey, ProjectShare
from tests.conftest import SMALL_AOI

BOWTIE = {"type": "Polygon", "coordinates": [[[11.9, 45.9], [12.1, 46.1], [12.1, 45.9], [11.9, 46.1], [11.9, 45.9]]]}
FAR_AWAY = {"type": "Polygon", "coordinates": [[[100, 10], [101, 10], [101, 11], [100, 10]]]}


def circle(vertices: int) -> dict:
    ring = [[12.0 + 0.05 * math.cos(2 * math.pi * i / vertices), 46.0 + 0.05 * math.sin(2 * math.pi * i / vertices)]
            for i in range(vertices)]
    return {"type": "Polygon", "coordinates": [ring + [ring[0]]]}


def exports_in(session) -> int:
    session.expire_all()
    return len(session.exec(select(Export)).all())


def test_requests_without_a_valid_token_are_401(people, app):
    anonymous = TestClient(app)
    for method, path in [("GET", "/api/v1/exports"), ("POST", "/api/v1/exports"), ("GET", "/api/v1/credentials"),
                         ("GET", "/api/v1/projects"), ("GET", "/api/v1/scenes/1")]:
        response = anonymous.request(method, path, json={})
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == "Bearer"
    forged = TestClient(app, headers={"Authorization": "Bearer gs_not-a-token"}).get("/api/v1/exports")
    assert forged.status_code == 401 and forged.json()["detail"] == "the API token is not valid"


def test_an_export_is_created_followed_listed_and_hidden_from_others(people, session):
    ada, bob = people["ada"], people["bob"]
    created = ada.client.post("/api/v1/exports", json={"project": "alps", "aoi": SMALL_AOI, "srid": 32632, "resolution": 240})
    assert created.status_code == 201, created.text
    view = created.json()
    assert created.headers["location"] == f"/api/v1/exports/{view['id']}"
    assert (view["status"], view["output_srid"], view["resolution"], view["compression"]) == ("pending", 32632, 240, "deflate")
    assert [(t["kind"], t["status"]) for t in view["targets"]] == [("http", "pending")]
    assert ada.client.get(f"/api/v1/exports/{view['id']}").json() == view

    for _ in range(2):
        ada.client.post("/api/v1/exports", json={"project": "alps", "tool": "ndvi", "resolution": 480})
    page = ada.client.get("/api/v1/exports", params={"limit": 2}).json()
    assert (page["total"], len(page["items"]), page["items"][0]["id"] > page["items"][1]["id"]) == (3, 2, True)
    assert ada.client.get("/api/v1/exports", params={"offset": 2}).json()["items"][0]["id"] == view["id"]
    assert ada.client.get("/api/v1/exports", params={"status": "success"}).json()["total"] == 0

    assert bob.client.get(f"/api/v1/exports/{view['id']}").status_code == 404  # not 403: bob may not know it exists
    assert bob.client.get("/api/v1/exports").json()["total"] == 0
    assert bob.client.post(f"/api/v1/exports/{view['id']}/cancel").status_code == 404


def test_cancelling_ends_an_unfinished_export_once(people):
    ada = people["ada"]
    export_id = ada.client.post("/api/v1/exports", json={"project": "alps", "resolution": 480}).json()["id"]
    cancelled = ada.client.post(f"/api/v1/exports/{export_id}/cancel")
    assert cancelled.status_code == 200
    assert (cancelled.json()["status"], cancelled.json()["error"]) == ("error", "cancelled by its owner")
    again = ada.client.post(f"/api/v1/exports/{export_id}/cancel")
    assert again.status_code == 409 and "already finished" in again.json()["detail"]
    # Its own log says what happened, to its owner only.
    log = ada.client.get(f"/api/v1/exports/{export_id}/logs")
    assert log.status_code == 200
    assert [(line["level"], line["message"].split(":")[0]) for line in log.json()] == [
        ("info", "pending"), ("error", "error")]
    assert "ordered by ada" in log.json()[0]["message"] and log.json()[1]["message"] == "error: cancelled by its owner"
    assert people["bob"].client.get(f"/api/v1/exports/{export_id}/logs").status_code == 404


@pytest.mark.parametrize("changes, field, needle", [
    ({"srid": 999999}, "srid", "unknown CRS or EPSG code 999999"),
    ({"aoi": BOWTIE}, "aoi", "Self-intersection"),
    ({"aoi": {"type": "Polygon", "coordinates": []}}, "aoi", "empty"),
    ({"aoi": circle(20_000)}, "aoi", "20,001 vertices, more than the 10,000 allowed"),
    ({"aoi": FAR_AWAY}, "aoi", "does not overlap the project's scenes"),
    ({"aoi": SMALL_AOI, "aoi_crs": "EPSG:123456789"}, "aoi_crs", "unknown CRS"),
    ({"bands": ["red", "swir16", "blue"]}, "bands", "no band(s) swir16"),
    ({"resolution": 0.01}, "aoi", "over the limit of"),
    # Finite but absurd: no grid of infinite pixels, no overflow in the planner.
    ({"resolution": 1e308}, "resolution", "larger than the whole area"),
    ({"resolution": 1e-12}, "resolution", "5.79e+16 px across; a GeoTIFF holds at most 4,294,967,295 px a side"),
    ({"resolution": 5e-324}, "resolution", "a GeoTIFF holds at most"),
    ({"aoi": {"type": "Polygon", "coordinates": [[[0, 0], [1e300, 0], [1e300, 1e300], [0, 0]]]}, "aoi_crs": "EPSG:3857"},
     "aoi", "a coordinate of 1e+300 is beyond any CRS's range"),
    ({"tool_tree": {"type": "sepia", "input": {"type": "project", "bands": ["red"]}}}, "tool.input", "sepia"),
    ({"tool_tree": {"type": "normalized_difference", "a": "nir", "b": "swir16", "input": {"type": "project",
                                                                                           "bands": ["nir", "red"]}}},
     "tool.input.normalized_difference", "band(s) swir16"),
    ({"tool_tree": {"type": "identity", "input": {"type": "project", "bands": ["red"],
                                                  "scenes": [{"name": "x", "crs": "EPSG:4326", "dtype": "uint8",
                                                              "resolution": [1, 1], "bounds": [0, 0, 1, 1],
                                                              "bands": [{"name": "red", "uri": "/etc/passwd"}]}]}}},
     "tool.input.scenes", "never their files"),
    ({"targets": [{"kind": "s3", "config": {"bucket": "a-bucket"}, "credential_id": 12345}]}, "targets.0.credential_id",
     "you have no credential 12345"),
    ({"targets": []}, "targets", "at least 1 item"),
    ({"resampling": "sharpest"}, "resampling", "Input should be"),
    ({"surprise": True}, "surprise", "Extra inputs are not permitted"),
])
def test_refusals_are_422_naming_the_field_and_write_nothing(people, session, changes, field, needle):
    response = people["ada"].client.post("/api/v1/exports", json={"project": "alps", "resolution": 240, **changes})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["field"] == field and needle in body["reason"], body
    assert exports_in(session) == 0


def test_a_too_deep_tool_tree_is_refused(people, session):
    tree = {"type": "project", "bands": ["red"]}
    for _ in range(40):
        tree = {"type": "identity", "input": tree}
    response = people["ada"].client.post("/api/v1/exports", json={"project": "alps", "tool_tree": tree})
    assert response.status_code == 422 and "deeper than 32" in response.json()["reason"]
    assert exports_in(session) == 0


def test_a_custom_tool_tree_reads_the_projects_scenes(people, session):
    tree = {"type": "output", "dtype": "float32", "nodata": -1,
            "input": {"type": "normalized_difference", "a": "nir", "b": "green", "name": "ndwi_nir",
                      "input": {"type": "project", "bands": ["nir", "green"]}}}
    response = people["ada"].client.post("/api/v1/exports", json={"project": "alps", "tool_tree": tree, "aoi": SMALL_AOI})
    assert response.status_code == 201, response.text
    export = session.get(Export, response.json()["id"])
    assert export.tool["nodata"] == -1 and export.tool["input"]["type"] == "mask"
    source = export.tool["input"]["input"]["input"]
    assert [s["name"] for s in source["scenes"]] == ["alpine-foreland-west", "alpine-foreland-east"]


def test_projects_you_cannot_read_are_404_and_unreadable_scenes_are_403(people, session):
    ada, bob = people["ada"], people["bob"]
    hidden = ada.client.post("/api/v1/exports", json={"project": "bobs"})
    assert hidden.status_code == 404 and hidden.json()["detail"] == "project 'bobs' not found"
    assert ada.client.post("/api/v1/exports", json={"project": "open", "resolution": 480}).status_code == 201  # public

    bobs = session.exec(select(ProjectShare)).all()
    assert bobs == []
    project_id = bob.client.get("/api/v1/projects").json()[0]["id"]
    session.add(ProjectShare(project_id=project_id, user_id=ada.user.id))  # the project, not its scene
    session.commit()
    refused = ada.client.post("/api/v1/exports", json={"project": "bobs", "resolution": 480})
    assert refused.status_code == 403
    assert "you may not read scene(s) bob-west (id 3) of project 'bobs'" in refused.json()["detail"]
    assert exports_in(session) == 1


def test_the_same_idempotency_key_returns_the_same_export(people, session):
    ada = people["ada"]
    body = {"project": "alps", "resolution": 480}
    first = ada.client.post("/api/v1/exports", json=body, headers={"Idempotency-Key": "order-17"})
    again = ada.client.post("/api/v1/exports", json=body, headers={"Idempotency-Key": "order-17"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    other = ada.client.post("/api/v1/exports", json={**body, "resolution": 960}, headers={"Idempotency-Key": "order-17"})
    assert other.status_code == 409 and "different request" in other.json()["detail"]
    # Keys are per user: bob's order-17 is his own.
    assert people["bob"].client.post("/api/v1/exports", json={"project": "open", "resolution": 480},
                                      headers={"Idempotency-Key": "order-17"}).status_code == 201
    assert exports_in(session) == 2 and len(session.exec(select(IdempotencyKey)).all()) == 2


def test_the_estimate_is_the_preflight_and_creates_nothing(people, session):
    ada = people["ada"]
    estimate = ada.client.post("/api/v1/exports/estimate", json={"project": "alps", "aoi": SMALL_AOI, "srid": 32632,
                                                                 "resolution": 100})
    assert estimate.status_code == 200, estimate.text
    numbers = estimate.json()
    assert numbers["pixels"] == numbers["width"] * numbers["height"] > 0
    assert numbers["bytes"] == numbers["pixels"] * 3 * 2 and numbers["bands"] == ["red", "green", "blue"]
    assert numbers["within_limit"] is True
    huge = ada.client.post("/api/v1/exports/estimate", json={"project": "alps", "resolution": 0.01}).json()
    assert huge["within_limit"] is False and huge["bytes"] > huge["limit_bytes"]
    refused = ada.client.post("/api/v1/exports/estimate", json={"project": "alps", "srid": 999999})
    assert refused.status_code == 422 and refused.json()["field"] == "srid"
    assert exports_in(session) == 0


@pytest.mark.usefixtures("ray_cluster", "prefect_server")
def test_retry_delivery_delivers_again_without_rendering(people, session):
    from flows.export_flow import export_flow
    from flows.services.status import claim_export

    ada = people["ada"]
    export_id = ada.client.post("/api/v1/exports", json={"project": "alps", "aoi": SMALL_AOI, "resolution": 240}).json()["id"]
    assert claim_export(export_id)
    export_flow(export_id)
    before = ada.client.get(f"/api/v1/exports/{export_id}").json()
    assert before["status"] == "success"
    retried = ada.client.post(f"/api/v1/exports/{export_id}/retry-delivery", params={"target": 0})
    assert retried.status_code == 202 and retried.json()["status"] == "delivering"
    after = ada.client.get(f"/api/v1/exports/{export_id}").json()  # the background task has run by now
    assert after["status"] == "success" and after["artifact"] == before["artifact"]
    assert after["targets"][0]["result"]["url"] != before["targets"][0]["result"]["url"]  # a fresh link
    assert people["bob"].client.post(f"/api/v1/exports/{export_id}/retry-delivery").status_code == 404


def test_nul_characters_are_refused_naming_where_they_are(people, session):
    """PostgreSQL cannot hold NUL in a string: refused up front instead of failing in the query (the fuzz's find)."""
    client = people["ada"].client
    shared = client.post("/api/v1/tools/x/shares", json={"user": "\u0000"})
    assert shared.status_code == 422 and shared.json()["field"] == "user", shared.text
    nested = client.post("/api/v1/exports", json={"project": "alps", "targets": [{"kind": "s3", "config": {
        "bucket": "b\u0000"}}]})
    assert nested.status_code == 422 and nested.json()["field"] == "targets.0.config.bucket", nested.text
    assert client.get("/api/v1/projects/al%00ps").status_code == 422
    assert client.get("/api/v1/exports", params={"status": "pending\x00"}).status_code == 422
    assert exports_in(session) == 0
    assert client.post("/api/v1/exports", json={"project": "alps", "resolution": 480}).status_code == 201
