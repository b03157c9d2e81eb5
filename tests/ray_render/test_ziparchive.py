"""ZIP records written from sizes and CRCs alone, read by Python's zipfile (which checks every CRC), by unzip
and by GDAL's /vsizip/, with and without ZIP64 records."""

import io
import shutil
import subprocess
import zipfile
import zlib
from datetime import datetime

import numpy as np
import pytest
import rasterio

import ray_render.ziparchive as ziparchive
from ray_render.ziparchive import ArchiveLayout

WHEN = datetime(2026, 12, 5, 12, 34, 56)


def archive_of(members: dict[str, bytes]) -> bytes:
    layout = ArchiveLayout(WHEN)
    written = []
    for name, data in members.items():
        header, start = layout.add(name, len(data), zlib.crc32(data))
        written += [header, data]
        assert start == sum(map(len, written)) - len(data)  # where the member's bytes begin
    return b"".join(written) + layout.end()


@pytest.mark.parametrize("zip64", [False, True])
def test_an_archive_of_stored_members_reads_back_whole(make_raster, tmp_path, monkeypatch, zip64):
    if zip64:  # every size and offset over the limit: the ZIP64 records are written and read back
        monkeypatch.setattr(ziparchive, "ZIP64_LIMIT", 10)
    tif = make_raster("a.tif", np.arange(64 * 64, dtype=np.uint16).reshape(64, 64), nodata=0)
    members = {"export-1/export-1-r0-c0.tif": tif.read_bytes(), "export-1/empty.txt": b"",
               "export-1/collection.json": b'{"type": "Collection"}'}
    data = archive_of(members)
    with zipfile.ZipFile(io.BytesIO(data)) as zipped:
        assert zipped.testzip() is None  # every CRC checks out
        assert {info.filename: zipped.read(info) for info in zipped.infolist()} == members
        assert all(info.compress_type == zipfile.ZIP_STORED and info.date_time == (2026, 12, 5, 12, 34, 56)
                   for info in zipped.infolist())
    path = tmp_path / "export-1.zip"
    path.write_bytes(data)
    with rasterio.open(f"/vsizip/{path}/export-1/export-1-r0-c0.tif") as member:
        assert member.read(1)[10, 10] == 10 * 64 + 10
    if shutil.which("unzip"):
        assert subprocess.run(["unzip", "-tq", str(path)], capture_output=True).returncode == 0
