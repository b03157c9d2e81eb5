"""A user's webhook settings: the signing secret (sealed at rest, shown once when made) and the default URL."""

from __future__ import annotations

import secrets

from sqlmodel import Session, select

from delivery.credentials import hint_of
from delivery.sealing import seal, unseal
from delivery.webhook_addresses import check_webhook_url
from models.schemas import WebhookView
from models.tables import User, Webhook
from models.timestamps import utcnow

SECRET_PREFIX = "whsec_"


def account_webhook(session: Session, owner_id: int) -> Webhook | None:
    """The user's webhook settings, if they have any."""
    return session.exec(select(Webhook).where(Webhook.owner_id == owner_id)).first()


def _new_secret(webhook: Webhook) -> str:
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    webhook.secret_sealed, webhook.secret_hint, webhook.updated_at = seal(secret), hint_of(secret), utcnow()
    return secret


def ensure_webhook_secret(session: Session, owner: User) -> tuple[Webhook, str | None]:
    """The user's settings, made with a fresh secret when they have none; the secret is returned only then."""
    webhook = account_webhook(session, owner.id)
    if webhook is not None:
        return webhook, None
    webhook = Webhook(owner_id=owner.id, secret_sealed="", secret_hint="")
    secret = _new_secret(webhook)
    session.add(webhook)
    session.flush()
    return webhook, secret


def set_account_webhook(session: Session, owner: User, url: str | None) -> WebhookView:
    """Set (or clear, with None) the URL of exports that name none; makes the secret on first use."""
    if url is not None:
        check_webhook_url(url, field="url")
    webhook, secret = ensure_webhook_secret(session, owner)
    webhook.url, webhook.updated_at = url, utcnow()
    session.add(webhook)
    session.flush()
    return webhook_view(webhook, secret)


def rotate_webhook_secret(session: Session, owner: User) -> WebhookView:
    """A new signing secret, replacing the old one at once; shown in this answer only."""
    webhook, secret = ensure_webhook_secret(session, owner)
    if secret is None:
        secret = _new_secret(webhook)
        session.add(webhook)
        session.flush()
    return webhook_view(webhook, secret)


def signing_secret(webhook: Webhook) -> str:
    """The plaintext secret, to sign with (only ever passed to `delivery.webhook.post_event`)."""
    return unseal(webhook.secret_sealed)


def webhook_view(webhook: Webhook, secret: str | None = None) -> WebhookView:
    """What the owner sees; `secret` only when it was just made."""
    return WebhookView(url=webhook.url, secret_hint=webhook.secret_hint, secret=secret, created_at=webhook.created_at,
                       updated_at=webhook.updated_at)
