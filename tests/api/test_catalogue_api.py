"""/api/v1/projects and /api/v1/scenes: own, shared and public, and 404 for the rest."""


def test_users_see_their_own_and_public_projects_only(people):
    ada, bob = people["ada"], people["bob"]
    assert [(p["name"], p["owner"], p["scene_count"]) for p in ada.client.get("/api/v1/projects").json()] == [
        ("alps", "ada", 2), ("open", "bob", 1)]
    assert [p["name"] for p in bob.client.get("/api/v1/projects").json()] == ["bobs", "open"]
    alps_id = ada.client.get("/api/v1/projects").json()[0]["id"]
    alps = ada.client.get(f"/api/v1/projects/{alps_id}").json()
    assert [s["name"] for s in alps["scenes"]] == ["alpine-foreland-west", "alpine-foreland-east"]
    assert alps["scenes"][0]["bands"] == ["red", "green", "blue", "nir"] and "uri" not in str(alps)
    assert bob.client.get(f"/api/v1/projects/{alps_id}").status_code == 404


def test_users_see_their_own_shared_and_public_scenes_only(people, session):
    from models.catalogue import find_project, share_project

    ada, bob = people["ada"], people["bob"]
    assert [s["name"] for s in ada.client.get("/api/v1/scenes").json()] == [
        "alpine-foreland-west", "alpine-foreland-east", "bob-east"]
    bob_west = next(s for s in bob.client.get("/api/v1/scenes").json() if s["name"] == "bob-west")
    assert ada.client.get(f"/api/v1/scenes/{bob_west['id']}").status_code == 404
    share_project(session, owner=bob.user, project=find_project(session, user=bob.user, ref="bobs"), with_user=ada.user)
    session.commit()
    assert ada.client.get(f"/api/v1/scenes/{bob_west['id']}").json()["owner"] == "bob"
    assert "bobs" in [p["name"] for p in ada.client.get("/api/v1/projects").json()]
