"""Pictures of segmentations: slice / truth / prediction grids, an animated GIF, training curves.

Every function returns PNG or GIF bytes (matplotlib's Agg canvas, no pyplot state).
"""

from __future__ import annotations

import base64
import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy import ndimage


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    return buf.getvalue()


def overlay_grid_png(images: np.ndarray, truth: np.ndarray, pred: np.ndarray, titles: list[str]) -> bytes:
    """Rows of (slice, ground truth, prediction). images/truth/pred: (K, H, W); K >= 1."""
    k = len(images)
    fig = Figure(figsize=(6, 2.1 * k))
    for i in range(k):
        for j, (panel, name) in enumerate(((images[i], "slice"), (truth[i], "ground truth"), (pred[i], "prediction"))):
            ax = fig.add_subplot(k, 3, 3 * i + j + 1)
            ax.imshow(panel.T, cmap="gray", origin="lower")
            ax.set_axis_off()
            ax.set_title(f"{titles[i]} {name}" if j == 0 else name, fontsize=7)
    return _png(fig)


def _rgb_frame(image: np.ndarray, truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(image, (1, 99)) if image.any() else (0.0, 1.0)
    gray = np.clip((image - lo) / max(hi - lo, 1e-6), 0, 1)
    rgb = np.repeat((gray.T[::-1] * 255).astype(np.uint8)[..., None], 3, axis=2)
    for mask, colour in ((truth, (0, 255, 0)), (pred, (255, 0, 0))):
        edge = (mask & ~ndimage.binary_erosion(mask)).T[::-1]
        rgb[edge] = colour
    return rgb


def slices_gif(images: np.ndarray, truth: np.ndarray, pred: np.ndarray, fps: float = 6.0) -> bytes:
    """Animated GIF across slices: ground-truth outline green, prediction outline red. (K, H, W)."""
    import imageio.v3 as iio

    frames = np.stack([_rgb_frame(images[i], truth[i], pred[i]) for i in range(len(images))])
    return iio.imwrite("<bytes>", frames, extension=".gif", duration=1000 / fps, loop=0)


def training_curves_png(history: list[dict]) -> bytes:
    """Train/validation loss and validation Dice per epoch."""
    fig = Figure(figsize=(7, 2.6))
    epochs = [h["epoch"] for h in history]
    ax = fig.add_subplot(1, 2, 1)
    ax.plot(epochs, [h["train_loss"] for h in history], label="train")
    ax.plot(epochs, [h["val_loss"] for h in history], label="validation")
    ax.set_xlabel("epoch"), ax.set_title("loss"), ax.legend(fontsize=7)
    ax = fig.add_subplot(1, 2, 2)
    ax.plot(epochs, [h["val_dice"] for h in history], color="tab:green")
    ax.set_xlabel("epoch"), ax.set_title("validation Dice"), ax.set_ylim(0, 1)
    return _png(fig)


def markdown_image(data: bytes, alt: str, mime: str = "image/png") -> str:
    """Inline an image in markdown (for Dagster metadata)."""
    return f"![{alt}](data:{mime};base64,{base64.b64encode(data).decode()})"
