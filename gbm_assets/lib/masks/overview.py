"""An overview picture of a cohort's predicted lesion masks: one axial slice per chosen patient,
prediction (and truth, where it exists) drawn as coloured contours on the image, with a legend
and readable captions. Pure numpy and matplotlib (no Dagster); PNG bytes via `figure_png`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from gbm_assets.lib.segment.metrics import dice_3d
from gbm_assets.lib.store.figures import figure_png

PRED_COLOUR = "#ff3b30"
TRUTH_COLOUR = "#34c759"


@dataclass
class Thumb:
    """One patient's panel: the axial slice through the largest predicted (else true) lesion area.

    Attributes:
        image: (X, Y) float image slice; pred / truth: (X, Y) bool (truth None: no ground truth).
        dice: 3D Dice of the whole predicted vs true mask (None without truth).
    """

    patient_id: str
    image: np.ndarray
    pred: np.ndarray
    truth: np.ndarray | None
    slice_index: int
    voxels: int
    dice: float | None = None


def thumb(patient_id: str, image: np.ndarray, pred: np.ndarray, truth: np.ndarray | None) -> Thumb:
    """A `Thumb` from (X, Y, Z) volumes: the slice with the most predicted voxels (the most true
    voxels when the prediction is empty; the middle slice when both are)."""
    pred = np.asarray(pred, bool)
    truth = None if truth is None else np.asarray(truth, bool)
    area = pred.sum(axis=(0, 1))
    if not area.any() and truth is not None:
        area = truth.sum(axis=(0, 1))
    z = int(area.argmax()) if area.any() else pred.shape[2] // 2
    return Thumb(str(patient_id), np.asarray(image[..., z], float), pred[..., z],
                 None if truth is None else truth[..., z], z, int(pred.sum()),
                 None if truth is None else dice_3d(pred, truth))


def choose(thumbs: list[Thumb], largest: int = 4, worst: int = 2) -> list[tuple[str, Thumb]]:
    """(reason, thumb) pairs: the `largest` predicted masks, then the `worst` by Dice among the
    patients with truth that are not already shown. Empty input gives []."""
    chosen = [("largest", t) for t in sorted(thumbs, key=lambda t: -t.voxels)[:largest]]
    shown = {t.patient_id for _, t in chosen}
    with_truth = sorted((t for t in thumbs if t.dice is not None and t.patient_id not in shown), key=lambda t: t.dice)
    return chosen + [("worst Dice", t) for t in with_truth[:worst]]


def overview_png(panels: list[tuple[str, Thumb]], title: str, path: str | Path | None = None, dpi: int = 80) -> bytes:
    """A grid (3 columns) of panels: the slice in grey, the predicted contour in red, the true one in
    green; captions give patient, reason, slice, volume in voxels and Dice. No panel: a "no masks" note."""
    n = max(len(panels), 1)
    cols = min(3, n)
    rows = -(-n // cols)
    fig = Figure(figsize=(3.2 * cols, 3.4 * rows + 0.6))
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax in axes:
        ax.set_axis_off()
    if not panels:
        axes[0].text(0.5, 0.5, "no segmented patient", ha="center", va="center", fontsize=12, transform=axes[0].transAxes)
    for ax, (reason, t) in zip(axes, panels):
        ax.imshow(t.image.T, cmap="gray", origin="lower", interpolation="nearest")
        if t.pred.any():
            ax.contour(t.pred.T.astype(float), levels=[0.5], colors=PRED_COLOUR, linewidths=1.4, origin="lower")
        if t.truth is not None and t.truth.any():
            ax.contour(t.truth.T.astype(float), levels=[0.5], colors=TRUTH_COLOUR, linewidths=1.4, origin="lower")
        dice = f", Dice {t.dice:.2f}" if t.dice is not None else ", no truth"
        ax.set_title(f"{t.patient_id} ({reason})\nslice {t.slice_index}, {t.voxels} voxels{dice}", fontsize=10)
    handles = [Line2D([], [], color=PRED_COLOUR, lw=2, label="predicted")]
    if any(t.truth is not None for _, t in panels):
        handles.append(Line2D([], [], color=TRUTH_COLOUR, lw=2, label="ground truth"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=10, frameon=False)
    fig.suptitle(title, fontsize=12)
    return figure_png(fig, path, dpi=dpi)
