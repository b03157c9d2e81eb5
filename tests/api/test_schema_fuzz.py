"""Schemathesis against the OpenAPI schema: generated requests to every endpoint, authenticated as a user with
projects, never get a 5xx answer."""

import os

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from api.app import create_app

# The app holds no state of its own but the download rate limits; the database is each test's, via settings.
schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", create_app())


@schema.parametrize()
@settings(max_examples=int(os.environ.get("GEOSHIP_FUZZ_EXAMPLES", "30")), deadline=None, suppress_health_check=list(HealthCheck))
def test_no_endpoint_answers_with_a_server_error(case, people, s3_server, dropbox, monkeypatch):
    # Generated credentials meet real services on loopback: AWS's default endpoint is moto here, and the
    # Dropbox SDK already talks to the fake. Their refusals must come back as 4xx, never 5xx.
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server.url)
    case.call_and_validate(headers={"Authorization": f"Bearer {people['ada'].token}"}, checks=[not_a_server_error])
