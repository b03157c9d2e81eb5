"""Publishing a finished file under its final name."""

from ray_render.publish import publish


def test_a_new_name_gets_the_file(tmp_path):
    partial, final = tmp_path / "out.tif.partial", tmp_path / "out.tif"
    partial.write_bytes(b"new bytes")

    publish(partial, final)

    assert final.read_bytes() == b"new bytes"
    assert not partial.exists()


def test_an_existing_file_is_replaced_and_its_open_readers_keep_it(tmp_path):
    partial, final = tmp_path / "out.tif.partial", tmp_path / "out.tif"
    final.write_bytes(b"old bytes")
    partial.write_bytes(b"new bytes, longer")

    with open(final, "rb") as reader:  # a download of the old file under way
        publish(partial, final)
        assert reader.read() == b"old bytes"

    assert final.read_bytes() == b"new bytes, longer"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.tif"]
