"""Delivery implementations keyed by the same names the schemas use (`TargetKind`)."""

from __future__ import annotations

from delivery.base import Delivery
from delivery.dropbox_target import DropboxDelivery
from delivery.http_link import HttpLinkDelivery
from delivery.s3_target import S3Delivery
from models.status import TargetKind

DELIVERIES: dict[TargetKind, Delivery] = {
    TargetKind.http: HttpLinkDelivery(),
    TargetKind.s3: S3Delivery(),
    TargetKind.dropbox: DropboxDelivery(),
}
