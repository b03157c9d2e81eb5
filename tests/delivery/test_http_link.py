"""HTTP-link delivery: issuing a link for an artifact, its expiry and its stable URL."""

from datetime import timedelta

from delivery.base import Artifact
from delivery.http_link import HttpLinkDelivery, link_url, resolve_link
from models.status import TargetKind
from models.tables import DownloadLink, Export, ExportTarget, User
from models.timestamps import utcnow


def test_delivering_issues_an_expiring_link_whose_url_resolves(session, tmp_path):
    user = User(name="x")
    session.add(user)
    session.flush()
    export = Export(owner_id=user.id, tool={}, output_srid=3857, resolution=1, grid={})
    session.add(export)
    session.flush()
    target = ExportTarget(export_id=export.id, kind=TargetKind.http, config={"ttl_hours": 2, "download_quota": 3})
    session.add(target)
    session.flush()
    artifact = Artifact(export_id=export.id, uri=str(tmp_path / "f.tif"), bytes=10, sha256="ab" * 32)

    result = HttpLinkDelivery().deliver(session, artifact, target)
    session.commit()

    link = session.get(DownloadLink, result["link_id"])
    assert (link.target_id, link.download_quota) == (target.id, 3)
    assert timedelta(hours=1, minutes=59) < link.expires_at - utcnow() <= timedelta(hours=2)
    assert result["bytes"] == 10 and result["sha256"] == "ab" * 32
    url = link_url(link)
    assert url.startswith("http://127.0.0.1:8000/downloads/") and link_url(link) == url  # shown again, unchanged
    assert resolve_link(session, url.rsplit("/", 1)[1])[0].id == link.id
