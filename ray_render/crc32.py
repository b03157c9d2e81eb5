"""CRC-32 (the ZIP checksum) of bytes known only in pieces: the CRCs of consecutive runs combined without
reading the runs again, as zlib's `crc32_combine` does (Python's zlib does not expose it).

A CRC is a remainder of polynomial division over GF(2), so the CRC of A followed by B is the CRC of A
"shifted" past len(B) zero bytes, xor the CRC of B: the shift is a multiplication by x^(8 len(B)) modulo the
CRC polynomial, done in O(log len(B)) small multiplications.
"""

from __future__ import annotations

from functools import reduce

_POLY = 0xEDB88320  # CRC-32's polynomial, bit-reversed as zlib uses it
_ONE = 1 << 31  # x^0 in the reversed representation


def _multiply(a: int, b: int) -> int:
    """a times b modulo the CRC polynomial (both in the reversed representation)."""
    product, bit = 0, _ONE
    while a:
        if a & bit:
            product ^= b
            a ^= bit
        bit >>= 1
        b = (b >> 1) ^ _POLY if b & 1 else b >> 1
    return product


def _powers() -> list[int]:
    """x^(2^k) modulo the polynomial for k = 0..63: x, x^2, x^4, ..."""
    found, power = [], _ONE >> 1  # x^1
    for _ in range(64):
        found.append(power)
        power = _multiply(power, power)
    return found


_X_2K = _powers()


def _shift(length: int) -> int:
    """x^(8 length) modulo the polynomial: what appending `length` zero bytes multiplies a CRC by."""
    factor, k, n = _ONE, 3, length  # 8 length = length * 2^3
    while n:
        if n & 1:
            factor = _multiply(_X_2K[k % 64], factor)
        n >>= 1
        k += 1
    return factor


def combine(first: int, second: int, second_length: int) -> int:
    """The CRC-32 of A + B from the CRC-32 of A (`first`), of B (`second`) and B's length."""
    return _multiply(_shift(second_length), first) ^ second


def combine_all(runs: list[tuple[int, int]]) -> int:
    """The CRC-32 of runs laid end to end, from each run's (CRC-32, length)."""
    return reduce(lambda crc, run: combine(crc, run[0], run[1]), runs, 0)
