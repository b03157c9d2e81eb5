"""CRC-32 combined from pieces equals zlib's CRC-32 of the bytes laid end to end."""

import random
import zlib

from ray_render.blocks import BlockSpill, Layout
from ray_render.crc32 import combine, combine_all


def test_combining_two_crcs_gives_the_crc_of_both_runs():
    rng = random.Random(3)
    for _ in range(100):
        first, second = rng.randbytes(rng.randint(0, 3000)), rng.randbytes(rng.randint(0, 70000))
        assert combine(zlib.crc32(first), zlib.crc32(second), len(second)) == zlib.crc32(first + second)


def test_many_runs_combine_in_order():
    rng = random.Random(4)
    runs = [rng.randbytes(rng.randint(1, 50000)) for _ in range(40)] + [b""]
    assert combine_all([(zlib.crc32(run), len(run)) for run in runs]) == zlib.crc32(b"".join(runs))
    assert combine_all([]) == zlib.crc32(b"")


def test_a_layouts_crc_comes_from_its_spilled_blocks_crcs(tmp_path):
    spill = BlockSpill(tmp_path / "a.bin")
    blocks = [spill.put(bytes([n]) * (1000 + 37 * n)) for n in range(6)]
    spill.close()
    order = [blocks[4], blocks[0], blocks[5], blocks[2]]  # COG order differs from spill order
    layout = Layout(b"II*\x00header", order)
    raw = (tmp_path / "a.bin").read_bytes()
    expected = layout.header + b"".join(raw[b.offset:b.offset + b.length] for b in order)
    assert layout.crc32() == zlib.crc32(expected)
