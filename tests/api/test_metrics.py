"""GET /metrics: requests by route template and status, and the database's exports by status, queue depth and
bytes served, against counts taken from the rows themselves."""

from collections import Counter

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlmodel import select

from api.app import create_app
from delivery.http_link import issue_link, link_url
from models.status import ExportStatus
from models.tables import Download, Export, User


def scrape(client: TestClient) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics by (name, sorted labels)."""
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def test_exports_by_status_queue_depth_and_bytes_served_come_from_the_rows(session, export_with_file):
    export, path = export_with_file
    owner = session.get(User, export.owner_id)
    export.status = ExportStatus.success  # the one whose file the link serves
    statuses = [ExportStatus.pending] * 3 + [ExportStatus.rendering, ExportStatus.error]
    session.add_all(Export(owner_id=owner.id, tool={}, output_srid=3857, resolution=10, grid={}, status=s)
                    for s in statuses)
    link = issue_link(session, export_id=export.id, target_id=None, ttl_hours=1)
    session.commit()
    client = TestClient(create_app())
    token_path = link_url(link).split("://", 1)[1].split("/", 1)[1]
    assert client.get(f"/{token_path}").status_code == 200
    assert client.get(f"/{token_path}", headers={"Range": "bytes=0-99"}).status_code == 206

    samples = scrape(client)
    rows = Counter(e.status for e in session.exec(select(Export)).all())
    for status in ExportStatus:
        assert samples[("geoship_exports", (("status", status.value),))] == rows[status]
    assert samples[("geoship_queue_depth", ())] == rows[ExportStatus.pending] == 3
    session.expire_all()
    served = sum(d.bytes_sent for d in session.exec(select(Download)).all())
    assert samples[("geoship_download_bytes_total", ())] == served == path.stat().st_size + 100
    assert samples[("geoship_downloads_total", ())] == 2
    assert samples[("geoship_database_up", ())] == 1


def test_requests_are_counted_by_route_template_never_by_raw_path(session, export_with_file):
    export, _ = export_with_file
    link = issue_link(session, export_id=export.id, target_id=None, ttl_hours=1)
    session.commit()
    client = TestClient(create_app())
    token_path = "/" + link_url(link).split("://", 1)[1].split("/", 1)[1]
    token = token_path.rsplit("/", 1)[1]
    for _ in range(3):
        client.get(token_path, headers={"Range": "bytes=0-9"})
    client.get("/api/v1/exports/12345")  # no token: 401
    client.get("/nowhere/at/all")

    samples = scrape(client)
    assert samples[("geoship_http_requests_total",
                    (("method", "GET"), ("route", "/downloads/{token}"), ("status", "206")))] == 3
    assert samples[("geoship_http_requests_total",
                    (("method", "GET"), ("route", "/api/v1/exports/{export_id}"), ("status", "401")))] == 1
    assert samples[("geoship_http_requests_total", (("method", "GET"), ("route", "unmatched"), ("status", "404")))] == 1
    assert samples[("geoship_http_request_seconds_count", (("method", "GET"), ("route", "/downloads/{token}")))] == 3
    assert not any(token in value for (_, labels), _v in samples.items() for _, value in labels)


def test_webhook_attempts_and_failures_come_from_the_attempts_recorded(session, export_with_file):
    from models.tables import ExportLog, WebhookAttempt

    export, _ = export_with_file
    line = ExportLog(export_id=export.id, message="success", status=ExportStatus.success)
    session.add(line)
    session.flush()
    outcomes = [(True, True), (False, False), (False, False), (False, True), (False, True)]  # (ok, final)
    session.add_all(WebhookAttempt(export_id=export.id, log_id=line.id, event="geoship.export.success", attempt=n,
                                   host="hooks.example.com", ok=ok, final=final) for n, (ok, final) in enumerate(outcomes, 1))
    session.commit()
    samples = scrape(TestClient(create_app()))
    assert samples[("geoship_webhook_attempts_total", (("outcome", "delivered"),))] == 1
    assert samples[("geoship_webhook_attempts_total", (("outcome", "failed"),))] == 4
    assert samples[("geoship_webhook_failures_total", ())] == 2  # the failed final attempts: given up
