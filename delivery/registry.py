"""Delivery implementations keyed by the same names the schemas use (`TargetKind`)."""

from __future__ import annotations

from delivery.base import Delivery
from delivery.http_link import HttpLinkDelivery
from models.status import TargetKind

DELIVERIES: dict[TargetKind, Delivery] = {TargetKind.http: HttpLinkDelivery()}
