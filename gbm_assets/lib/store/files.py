"""One atomic file writer: a reader (DuckDB, nibabel, another run) sees the old file or the new one,
never a half-written file.

The temp file sits beside the target (same filesystem, so `os.replace` is atomic), hidden, with a
unique name (`.<name>.<uuid>.tmp`), and is removed if writing fails.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Callable


def temp_path(path: Path) -> Path:
    """The hidden temp name beside `path` that `write_atomic` writes first."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")


def write_atomic(path: str | os.PathLike[str], write: Callable[[Path], object]) -> Path:
    """Call `write(tmp)` on a temp file beside `path` (parents created), then rename it onto `path`.

    Returns:
        `path` as a `Path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write `data` to `path` atomically."""
    return write_atomic(path, lambda tmp: tmp.write_bytes(data))
