"""One way from a matplotlib figure to PNG bytes (and optionally a file).

Every picture the platform makes (overlays, curves, ROC, Kaplan-Meier) goes through `figure_png`;
the Dagster layer turns the bytes into metadata with `gbm_assets.defs.metadata.image_metadata`.
"""

from __future__ import annotations

import io
from pathlib import Path

from matplotlib.figure import Figure

from gbm_assets.lib.store.files import write_bytes_atomic


def figure_png(fig: Figure, path: str | Path | None = None, dpi: int = 110) -> bytes:
    """Render `fig` to PNG bytes; also write them atomically to `path` (parents created) when given."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    data = buf.getvalue()
    if path is not None:
        write_bytes_atomic(path, data)
    return data
