"""Atomic file writes: a file exists under its final name only once it is complete."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def write_atomic(path: Path, write: Callable[[Any], None], mode: str = "wb") -> None:
    """Write through ``write(handle)`` into a temporary file beside ``path`` (same disk, so the final rename is
    atomic), flush it to disk, then rename it into place; an interruption leaves no partial file behind."""
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, mode) as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    finally:
        Path(temp).unlink(missing_ok=True)
