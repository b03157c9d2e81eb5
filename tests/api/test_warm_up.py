"""Where requests start flow runs, the API imports and reaches Prefect as it starts, not on its first export."""

import logging
import socket
import threading

import pytest
from fastapi.testclient import TestClient
from prefect.settings import PREFECT_API_URL, temporary_settings

from api.app import WARM_UP_THREAD, create_app
from models.settings import get_settings


def _warm_up_ended() -> bool:
    for thread in threading.enumerate():
        if thread.name == WARM_UP_THREAD:
            thread.join(timeout=60)
    return not any(thread.name == WARM_UP_THREAD for thread in threading.enumerate())


@pytest.fixture
def start_on_request(monkeypatch):
    monkeypatch.setenv("GEOSHIP_START_ON_REQUEST", "true")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.usefixtures("prefect_server", "start_on_request")
def test_the_api_reaches_prefect_as_it_starts(caplog):
    with caplog.at_level(logging.INFO, logger="api.app"), TestClient(create_app()) as client:
        assert _warm_up_ended()
        assert client.get("/health").status_code == 200
    said = [r.getMessage() for r in caplog.records if r.name == "api.app"]
    assert said == ["ready to start exports' flow runs on Prefect"], said


@pytest.mark.usefixtures("start_on_request")
def test_an_unreachable_prefect_at_start_is_logged_and_the_api_serves(caplog):
    with socket.socket() as closed:  # a loopback port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with temporary_settings({PREFECT_API_URL: f"http://127.0.0.1:{port}/api"}), \
            caplog.at_level(logging.WARNING, logger="api.app"), TestClient(create_app()) as client:
        assert _warm_up_ended()
        assert client.get("/health").status_code == 200
    warnings = [r.getMessage() for r in caplog.records if r.name == "api.app"]
    assert len(warnings) == 1 and "could not reach Prefect at start-up" in warnings[0], warnings
