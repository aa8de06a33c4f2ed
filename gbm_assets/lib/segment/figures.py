"""Pictures of segmentations: slice / truth / prediction grids, an animated GIF, training curves.

Every function returns PNG (through `lib/store/figures.figure_png`) or GIF bytes; no pyplot state.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import ndimage

from gbm_assets.lib.store.figures import figure_png

DPI = 80


def _png(fig: Figure) -> bytes:
    return figure_png(fig, dpi=DPI)


def overlay_grid_png(images: np.ndarray, truth: np.ndarray, pred: np.ndarray, titles: list[str]) -> bytes:
    """One panel per slice: the image with the ground truth (green) and prediction (red) drawn as
    contours, a legend and a readable caption. images/truth/pred: (K, H, W); K >= 1."""
    from matplotlib.lines import Line2D

    k = len(images)
    cols = min(k, 2)
    rows = int(np.ceil(k / cols))
    fig = Figure(figsize=(3.4 * cols, 3.4 * rows + 0.4))
    for i in range(k):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.imshow(images[i].T, cmap="gray", origin="lower")
        for mask, colour in ((truth[i], "#34c759"), (pred[i], "#ff3b30")):
            if mask.any():
                ax.contour(mask.T.astype(float), levels=[0.5], colors=colour, linewidths=1.2, origin="lower")
        ax.set_axis_off()
        ax.set_title(titles[i], fontsize=10)
    fig.legend(handles=[Line2D([], [], color="#34c759", label="ground truth"), Line2D([], [], color="#ff3b30", label="prediction")],
               loc="lower center", ncol=2, fontsize=10, frameon=False)  # fmt: skip
    return _png(fig)


def _rgb_frame(image: np.ndarray, truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(image, (1, 99)) if image.any() else (0.0, 1.0)
    gray = np.clip((image - lo) / max(hi - lo, 1e-6), 0, 1)
    rgb = np.repeat((gray.T[::-1] * 255).astype(np.uint8)[..., None], 3, axis=2)
    for mask, colour in ((truth, (0, 255, 0)), (pred, (255, 0, 0))):
        edge = (mask & ~ndimage.binary_erosion(mask)).T[::-1]
        rgb[edge] = colour
    return rgb


def _label_frame(rgb: np.ndarray, text: str) -> np.ndarray:
    """`rgb` (H, W, 3) with `text` and the outline legend written in its top-left corner."""
    from PIL import Image, ImageDraw

    img = Image.fromarray(rgb)
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, 150, 44), fill=(0, 0, 0))
    draw.text((4, 2), text, fill=(255, 255, 255))
    draw.text((4, 16), "truth", fill=(0, 255, 0))
    draw.text((4, 30), "prediction", fill=(255, 0, 0))
    return np.asarray(img)


def slices_gif(images: np.ndarray, truth: np.ndarray, pred: np.ndarray, fps: float = 6.0,
               slice_numbers: list[int] | None = None, min_size: int = 320) -> bytes:
    """Animated GIF across slices: ground-truth outline green, prediction outline red, each frame
    labelled with its slice number and a legend, upscaled (nearest) to at least `min_size` pixels.

    images/truth/pred: (K, H, W); `slice_numbers`: K numbers (default 0..K-1).
    """
    import imageio.v3 as iio

    numbers = list(range(len(images))) if slice_numbers is None else list(slice_numbers)
    scale = max(1, int(np.ceil(min_size / max(images.shape[1:]))))
    frames = []
    for i in range(len(images)):
        rgb = _rgb_frame(images[i], truth[i], pred[i])
        rgb = np.ascontiguousarray(rgb.repeat(scale, axis=0).repeat(scale, axis=1))
        frames.append(_label_frame(rgb, f"slice z={numbers[i]}  ({i + 1}/{len(images)})"))
    return iio.imwrite("<bytes>", np.stack(frames), extension=".gif", duration=1000 / fps, loop=0)


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


def picture_rows(index: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Positions in `index` that `split_pictures` draws: (grid rows, GIF rows).

    The grid shows the slice with the largest lesion of up to four patients; the GIF runs across
    every slice of the first of them. index: a split's slice index (RangeIndex), >= 1 row. Known
    from the index alone, so a streamed evaluation keeps only these rows' predictions."""
    order = index.sort_values("lesion_area_mm2", ascending=False).drop_duplicates("patient_id").head(4).index.to_numpy()
    first = index.patient_id.iloc[order[0]] if len(order) else index.patient_id.iloc[0]
    return order, index[index.patient_id == first].sort_values("slice").index.to_numpy()


def split_pictures(index: pd.DataFrame, take: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[bytes, bytes]:
    """(overlay grid PNG, slices GIF) of one split, drawing the rows `picture_rows(index)` names.

    take(positions) -> (images, truth, pred), each (K, H, W) for those rows of the split (image:
    the first channel; truth, pred: bool)."""
    grid_rows, gif_rows = picture_rows(index)
    grid = overlay_grid_png(*take(grid_rows), [f"{index.patient_id[i]} z{index.slice[i]}" for i in grid_rows])
    return grid, slices_gif(*take(gif_rows), slice_numbers=[int(z) for z in index.slice[gif_rows]])
