"""Schemathesis against the OpenAPI schema: generated requests to every endpoint, authenticated as a user with
projects, never get a 5xx answer."""

import os

import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from api.app import create_app

# The app holds no state of its own but the download rate limits; the database is each test's, via settings.
schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", create_app())

# Finite numbers that pass a schema's `> 0` yet break arithmetic downstream (grids of inf pixels, GEOS
# tolerances, integer overflow): the generator draws them too, wherever a body holds a number.
ABSURD_NUMBERS = (1e308, -1e308, 1e-12, 5e-324, -0.0, 2**63, -(2**63) - 1)
# A valid request for the `people` fixture's project: generated bodies almost never pass validation, so their
# absurd numbers would never reach the grid planner; this one's do.
VALID_EXPORT = {"project": "alps", "resolution": 240, "srid": 3857}


def _number_paths(value, path=()):
    """The paths of every number (not bool) in a JSON value."""
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _number_paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _number_paths(item, (*path, index))


def _replaced(value, path, new):
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _replaced(value[head], rest, new)}
    return [_replaced(item, rest, new) if index == head else item for index, item in enumerate(value)]


@schema.hook
def flatmap_body(context, body):
    """Bodies as generated, or with one number swapped for an absurd one; for the export endpoints, also a
    valid request with one of its numbers swapped."""
    bodies = [body]
    if context.operation.method.upper() == "POST" and context.operation.path.endswith(("/exports", "/estimate")):
        bodies.append(VALID_EXPORT)
    return st.one_of(*(_with_absurd_number(b) for b in bodies))


def _with_absurd_number(body):
    paths = list(_number_paths(body))
    if not paths:
        return st.just(body)
    swapped = st.tuples(st.sampled_from(paths), st.sampled_from(ABSURD_NUMBERS))
    return st.one_of(st.just(body), swapped.map(lambda choice: _replaced(body, *choice)))


@schema.parametrize()
@settings(max_examples=int(os.environ.get("GEOSHIP_FUZZ_EXAMPLES", "30")), deadline=None, suppress_health_check=list(HealthCheck))
def test_no_endpoint_answers_with_a_server_error(case, people, s3_server, dropbox, monkeypatch):
    # Generated credentials meet real services on loopback: AWS's default endpoint is moto here, and the
    # Dropbox SDK already talks to the fake. Their refusals must come back as 4xx, never 5xx.
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server.url)
    case.call_and_validate(headers={"Authorization": f"Bearer {people['ada'].token}"}, checks=[not_a_server_error])
