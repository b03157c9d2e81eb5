"""`geoship credentials ...`, `geoship links ...` and `geoship keys rotate`: keys to users' storage, download
links, and the server key that seals them.

Secrets are read from a hidden prompt or an environment variable, never from a plain argument (which
would land in shell history and process listings), and are never printed back.
"""

from __future__ import annotations

import typer
from rich.table import Table

from cli.common import acting_user, console, print_json, reports_errors, session_scope
from models.errors import InvalidRequest

credentials_app = typer.Typer(help="Keys to your own storage (S3, Dropbox); secrets are stored encrypted.",
                              no_args_is_help=True)
links_app = typer.Typer(help="Download links of your exports.", no_args_is_help=True)
keys_app = typer.Typer(help="The server key that encrypts stored secrets.", no_args_is_help=True)


def _validated(model, **values):
    from pydantic import ValidationError

    try:
        return model(**values)
    except ValidationError as exc:
        first = exc.errors()[0]  # the message names the field, never echoes a secret value
        raise InvalidRequest(".".join(map(str, first["loc"])) or "credential", first["msg"]) from None


@credentials_app.command("add-s3")
@reports_errors
def add_s3(
    label: str = typer.Option(..., "--label", help="Your name for this credential."),
    bucket: str = typer.Option(..., "--bucket", help="A bucket to check the credential against."),
    prefix: str = typer.Option("", "--prefix", help="Where in the bucket to write the probe object."),
    access_key_id: str = typer.Option(..., "--access-key-id", envvar="GEOSHIP_S3_ACCESS_KEY_ID"),
    secret_access_key: str = typer.Option(..., "--secret-access-key", envvar="GEOSHIP_S3_SECRET_ACCESS_KEY",
                                          prompt=True, hide_input=True, help="Prompted for when not in the environment."),
    session_token: str = typer.Option(None, "--session-token", envvar="GEOSHIP_S3_SESSION_TOKEN"),
    region: str = typer.Option("us-east-1", "--region"),
    endpoint_url: str = typer.Option(None, "--endpoint-url", help="For S3-compatible stores."),
) -> None:
    """Add an S3 credential, after checking it can write to the bucket."""
    from delivery.s3_target import add_s3_credential  # boto3: imported by the commands that talk to S3
    from models.schemas import S3CredentialConfig, S3Secret

    secret = _validated(S3Secret, access_key_id=access_key_id, secret_access_key=secret_access_key,
                        session_token=session_token)
    config = _validated(S3CredentialConfig, region=region, endpoint_url=endpoint_url)
    with session_scope() as session:
        credential = add_s3_credential(session, owner=acting_user(session), label=label, secret=secret, config=config,
                                       bucket=bucket, prefix=prefix)
        console.print(f"added s3 credential {credential.label!r} (id {credential.id}, key {credential.hint})",
                      highlight=False)


@credentials_app.command("add-dropbox")
@reports_errors
def add_dropbox(
    label: str = typer.Option(..., "--label", help="Your name for this credential."),
    access_token: str = typer.Option(None, "--access-token", envvar="GEOSHIP_DROPBOX_ACCESS_TOKEN",
                                     help="Prompted for when neither it nor a refresh token is given."),
    refresh_token: str = typer.Option(None, "--refresh-token", envvar="GEOSHIP_DROPBOX_REFRESH_TOKEN"),
    app_key: str = typer.Option(None, "--app-key", help="The app key the refresh token belongs to."),
    app_secret: str = typer.Option(None, "--app-secret", envvar="GEOSHIP_DROPBOX_APP_SECRET"),
) -> None:
    """Add a Dropbox credential, after checking that Dropbox accepts it."""
    from delivery.dropbox_target import add_dropbox_credential  # the Dropbox SDK: only where it is used
    from models.schemas import DropboxSecret

    if access_token is None and refresh_token is None:
        access_token = typer.prompt("Dropbox access token", hide_input=True)
    secret = _validated(DropboxSecret, access_token=access_token, refresh_token=refresh_token, app_key=app_key,
                        app_secret=app_secret)
    with session_scope() as session:
        credential = add_dropbox_credential(session, owner=acting_user(session), label=label, secret=secret)
        console.print(f"added dropbox credential {credential.label!r} (id {credential.id}, {credential.hint})",
                      highlight=False)


@credentials_app.command("list")
@reports_errors
def credentials_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """List your credentials (never their secrets)."""
    from delivery.credentials import list_credentials

    with session_scope() as session:
        views = list_credentials(session, owner=acting_user(session))
    if as_json:
        print_json([v.model_dump(mode="json") for v in views])
        return
    table = Table("id", "kind", "label", "hint", "settings", "created")
    for view in views:
        settings = ", ".join(f"{k}={v}" for k, v in view.config.items())
        table.add_row(str(view.id), view.kind.value, view.label, view.hint, settings, f"{view.created_at:%Y-%m-%d %H:%M}")
    console.print(table)


@credentials_app.command("remove")
@reports_errors
def credentials_remove(credential_id: int) -> None:
    """Remove one of your credentials (refused while an unfinished export needs it)."""
    from delivery.credentials import remove_credential

    with session_scope() as session:
        remove_credential(session, owner=acting_user(session), credential_id=credential_id)
    console.print(f"removed credential {credential_id}")


@links_app.command("list")
@reports_errors
def links_list(export_id: int = typer.Option(None, "--export"), as_json: bool = typer.Option(False, "--json")) -> None:
    """List your download links with their limits and what they have served."""
    from delivery.http_link import list_links

    with session_scope() as session:
        links = list_links(session, owner=acting_user(session), export_id=export_id)
    if as_json:
        print_json(links)
        return
    table = Table("id", "export", "state", "expires", "downloads", "bytes sent", "rate limit", "url")
    for link in links:
        quota = f"{link['downloads_used']}/{link['download_quota']}" if link["download_quota"] else str(link["downloads_used"])
        rate = f"{link['byte_rate_limit']:,} B/s" if link["byte_rate_limit"] else "-"
        table.add_row(str(link["id"]), str(link["export_id"]), link["state"], f"{link['expires_at']:%Y-%m-%d %H:%M}",
                      quota, f"{link['bytes_sent']:,}", rate, link["url"])
    console.print(table)


@links_app.command("revoke")
@reports_errors
def links_revoke(link_id: int) -> None:
    """Revoke a download link: it answers 410 Gone from now on."""
    from delivery.http_link import revoke_link

    with session_scope() as session:
        revoke_link(session, owner=acting_user(session), link_id=link_id)
    console.print(f"revoked download link {link_id}")


@keys_app.command("rotate")
@reports_errors
def keys_rotate() -> None:
    """Re-encrypt every stored secret with a new key.

    With the key file (the default) this makes the new key, re-encrypts, and retires the old key. With
    GEOSHIP_SECRET_KEY, put the new key first (NEW,OLD), run this, then drop OLD from the variable.
    """
    from delivery.sealing import reseal_all
    from models.keys import get_secret_keys, keys_from_environment, new_key, push_key_file, retire_old_keys

    if keys_from_environment():
        if len(get_secret_keys()) < 2:
            raise InvalidRequest("GEOSHIP_SECRET_KEY", "set it to NEW,OLD (the new key first) to rotate; "
                                                       "the keys come from the environment, so geoship cannot write them")
        with session_scope() as session:
            count = reseal_all(session)
        console.print(f"re-encrypted {count} secret(s) with the first key; now remove the old key(s) from GEOSHIP_SECRET_KEY")
        return
    push_key_file(new_key())  # old keys stay in the ring until every secret is re-encrypted
    with session_scope() as session:
        count = reseal_all(session)
    retired = retire_old_keys()
    console.print(f"re-encrypted {count} secret(s) with a new key; retired {retired} old key(s)")
