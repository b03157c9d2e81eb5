"""/api/v1/webhook: your account's webhook, the default URL of your exports' status changes and the secret that
signs them (shown once, when made or rotated)."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import SessionDep, UserDep
from delivery.webhook_settings import account_webhook, rotate_webhook_secret, set_account_webhook, webhook_view
from models.errors import NotFound
from models.schemas import WebhookRequest, WebhookView

router = APIRouter(prefix="/webhook", tags=["webhooks"])


@router.get("", response_model=WebhookView, summary="Your webhook settings")
def read_webhook(session: SessionDep, user: UserDep) -> WebhookView:
    """The default URL and the secret's hint (404 before you have set up webhooks)."""
    webhook = account_webhook(session, user.id)
    if webhook is None:
        raise NotFound("you have no webhook settings yet: PUT /api/v1/webhook sets them up")
    return webhook_view(webhook)


@router.put("", response_model=WebhookView, summary="Set your default webhook URL")
def put_webhook(body: WebhookRequest, session: SessionDep, user: UserDep) -> WebhookView:
    """Set (or clear, with `"url": null`) the URL that exports naming none of their own notify. The first call
    makes your signing secret and shows it in its answer, once."""
    return set_account_webhook(session, user, body.url)


@router.post("/secret", response_model=WebhookView, summary="Rotate your webhook signing secret")
def rotate_secret(session: SessionDep, user: UserDep) -> WebhookView:
    """A new signing secret, used from the next POST on and shown in this answer only."""
    return rotate_webhook_secret(session, user)
