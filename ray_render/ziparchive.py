"""The records of a stored (uncompressed) ZIP archive, for members whose bytes are known only by their size and
CRC-32: the archive is written as a stream of local headers and member bytes that never pass through the
process making the headers, then its central directory.

Stored members keep their bytes as they are, so GDAL reads a member COG by ranges straight from the archive
(`/vsizip/`). ZIP64 records are used where a size or offset needs them (from 2 GiB, as Python's zipfile does),
so archives may be larger than 4 GiB.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import datetime

ZIP64_LIMIT = (1 << 31) - 1  # above this, a size or offset goes into a ZIP64 extra field (as zipfile decides)
_MAX_COUNT = 0xFFFF
_FULL = 0xFFFFFFFF
_UNIX_FILE = 0o100644 << 16  # external attributes: a regular file, rw-r--r--
_MADE_BY_UNIX = 3
_VERSION = 20  # 2.0: stored members
_VERSION_ZIP64 = 45
_UTF8 = 0x800


@dataclass(frozen=True)
class Member:
    """One member of the archive: its name, size and CRC-32, and where its local header starts."""

    name: str
    size: int
    crc32: int
    offset: int


def _dos_time(when: datetime) -> tuple[int, int]:
    """MS-DOS time and date (2 s resolution, years from 1980)."""
    year = max(1980, when.year)
    return (when.hour << 11) | (when.minute << 5) | (when.second // 2), ((year - 1980) << 9) | (when.month << 5) | when.day


def _name(member_name: str) -> tuple[bytes, int]:
    try:
        return member_name.encode("ascii"), 0
    except UnicodeEncodeError:
        return member_name.encode("utf-8"), _UTF8


def local_header(name: str, size: int, crc32: int, when: datetime) -> bytes:
    """The local file header that precedes a stored member's `size` bytes."""
    encoded, flags = _name(name)
    dos_time, dos_date = _dos_time(when)
    extra, stated, version = b"", size, _VERSION
    if size > ZIP64_LIMIT:
        extra, stated, version = struct.pack("<HHQQ", 1, 16, size, size), _FULL, _VERSION_ZIP64
    return struct.pack("<4s2B4HL2L2H", b"PK\x03\x04", version, 0, flags, 0, dos_time, dos_date, crc32, stated, stated,
                       len(encoded), len(extra)) + encoded + extra


def central_directory(members: list[Member], start: int, when: datetime) -> bytes:
    """The central directory of `members`, starting at byte `start` of the archive, and the end records after it:
    the archive's last bytes."""
    dos_time, dos_date = _dos_time(when)
    records = []
    for member in members:
        encoded, flags = _name(member.name)
        big = [value for value in (member.size, member.size) if value > ZIP64_LIMIT]
        far = member.offset > ZIP64_LIMIT
        fields = big + ([member.offset] if far else [])
        extra = struct.pack(f"<HH{len(fields)}Q", 1, 8 * len(fields), *fields) if fields else b""
        size = _FULL if big else member.size
        version = _VERSION_ZIP64 if fields else _VERSION
        records.append(struct.pack("<4s4B4HL2L5H2L", b"PK\x01\x02", version, _MADE_BY_UNIX, version, 0, flags, 0,
                                   dos_time, dos_date, member.crc32, size, size, len(encoded), len(extra), 0, 0, 0,
                                   _UNIX_FILE, _FULL if far else member.offset) + encoded + extra)
    directory = b"".join(records)
    count, length = len(members), len(directory)
    end = b""
    if count > _MAX_COUNT or length > ZIP64_LIMIT or start > ZIP64_LIMIT:
        zip64_end = start + length
        end = (struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, _VERSION_ZIP64, _VERSION_ZIP64, 0, 0, count, count,
                           length, start)
               + struct.pack("<4sLQL", b"PK\x06\x07", 0, zip64_end, 1))
        count, length, start = min(count, _MAX_COUNT), min(length, _FULL), min(start, _FULL)
    return directory + end + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, length, start, 0)


class ArchiveLayout:
    """An archive being laid out member by member: each member's local header, then its bytes."""

    def __init__(self, when: datetime):
        self.when, self.members, self.size = when, [], 0

    def add(self, name: str, size: int, crc32: int) -> tuple[bytes, int]:
        """Record a member; returns its local header, and the offset of its bytes in the archive."""
        header = local_header(name, size, crc32, self.when)
        self.members.append(Member(name, size, crc32, self.size))
        self.size += len(header) + size
        return header, self.size - size

    def end(self) -> bytes:
        """The central directory and end records, to follow the last member."""
        return central_directory(self.members, self.size, self.when)
