"""Putting a finished file under its final name: written complete under another name, then renamed into place,
so that no half-written file is ever visible under the final name."""

from __future__ import annotations

import os
from pathlib import Path


def publish(partial: Path, final: Path) -> None:
    """Rename the complete file `partial` to `final`, removing a file already there first.

    Why remove first: on ext4 (mounted with its default `auto_da_alloc`), a rename that replaces an existing file
    writes the new file's data to disk before it returns, in case the machine crashes just after. For a 1.1 GB COG
    that took 0.35-0.7 s on this machine kind, against 0.2 s to remove the old file and nothing for the rename.
    In between, the name is briefly absent, never half-written.
    """
    final = Path(final)
    final.unlink(missing_ok=True)
    os.replace(partial, final)
