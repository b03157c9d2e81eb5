"""A render's record for tests that put a file in the artifact store by hand."""

import hashlib
from pathlib import Path

from models.rendered import Rendered


def rendered_record(path: Path) -> dict:
    """The `Export.rendered` value of a single-COG render whose file is at `path`."""
    data = Path(path).read_bytes()
    return Rendered(kind="cog", uri=str(path), bytes=len(data), sha256=hashlib.sha256(data).hexdigest(), width=1,
                    height=1, bands=["red"], dtype="uint8", tiles=1, seconds=0.0).model_dump(mode="json")
