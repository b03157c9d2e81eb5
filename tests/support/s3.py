"""A real S3 API on loopback: moto's server mode, with signature checks and IAM permissions switched on.

INITIAL_NO_AUTH_ACTION_COUNT=0 (set by tests/conftest.py before moto is imported) makes moto verify every
request's signature against the IAM users created here, so unknown keys, wrong secrets and denied writes
answer as AWS does (InvalidAccessKeyId, SignatureDoesNotMatch, AccessDenied).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

import boto3


@dataclass(frozen=True)
class Keys:
    access_key_id: str
    secret_access_key: str


class MotoS3:
    """moto's ThreadedMotoServer on 127.0.0.1 (port 0) with a writer, a reader and a service user."""

    def __init__(self):
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)

    def start(self) -> MotoS3:
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        self.writer = self._user("writer", ["s3:*"])
        self.reader = self._user("reader", ["s3:GetObject", "s3:ListBucket", "s3:GetBucketLocation"])
        self.service = self._user("service", ["s3:*"])
        return self

    def stop(self) -> None:
        self._server.stop()

    def _user(self, name: str, actions: list[str]) -> Keys:
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.iam.models import iam_backends

        iam = iam_backends[DEFAULT_ACCOUNT_ID]["global"]
        iam.create_user(region_name="us-east-1", user_name=name, path="/")
        document = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}
        policy = iam.create_policy(description="", path="/", policy_document=json.dumps(document),
                                   policy_name=f"{name}-policy", tags=[])
        iam.attach_user_policy(policy.arn, name)
        key = iam.create_access_key(name)
        return Keys(key.access_key_id, key.secret_access_key)

    def client(self, keys: Keys | None = None):
        keys = keys or self.writer
        return boto3.client("s3", endpoint_url=self.url, region_name="us-east-1", aws_access_key_id=keys.access_key_id,
                            aws_secret_access_key=keys.secret_access_key)

    def new_bucket(self) -> str:
        """A fresh, empty bucket owned by the writer."""
        name = f"bucket-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name
