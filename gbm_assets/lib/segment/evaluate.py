"""Evaluate a 2D U-Net on its slice arrays: the study's pixel metrics per split, plus 3D metrics.

Pixel metrics (accuracy, balanced accuracy, precision, sensitivity, specificity, F1, IoU) pool
the confusion counts of every training slice in a split, as the study reports them. 3D Dice and
HD95 are per patient, on the whole preprocessed volume (every axial slice predicted, then the
same post-processing `lesion_masks` applies), averaged over the split's patients. The
empty-mask policy of `metrics.volume_metrics` applies and one-sided empty cases are counted.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from gbm_assets.lib.preprocess.slices import SPLITS
from gbm_assets.lib.segment.metrics import confusion_counts, pixel_metrics, volume_metrics

METRIC_COLUMNS = ["sequence", "split", "metric", "value"]
PATIENT_COLUMNS = ["sequence", "split", "cohort", "patient_id", "dice_3d", "hd95_mm", "pred_empty", "truth_empty"]


def pixel_metric_rows(sequence: str, prob: np.ndarray, truth: np.ndarray, index: pd.DataFrame, threshold: float = 0.5) -> pd.DataFrame:
    """The study's pixel metrics per split, pooling every slice of the split.

    Args:
        sequence: the model's input name (written to every row).
        prob: (N, H, W) predicted probabilities, row-aligned with `index`.
        truth: (N, H, W) bool whole-tumour ground truth.
        index: slice index with a `split` column (row i <-> prob[i]).
        threshold: probability above which a pixel is lesion.

    Returns:
        long rows (sequence, split, metric, value); a split with no slices has none.
    """
    pred, splits = prob > threshold, index["split"].to_numpy()
    rows = []
    for split in SPLITS:
        sel = np.flatnonzero(splits == split)
        if sel.size:
            rows += [(sequence, split, k, v) for k, v in pixel_metrics(*confusion_counts(pred[sel], truth[sel])).items()]
    return pd.DataFrame(rows, columns=METRIC_COLUMNS)


def volume_metric_rows(per_patient: pd.DataFrame) -> pd.DataFrame:
    """Mean 3D Dice and HD95 per split from per-patient rows (PATIENT_COLUMNS)."""
    means = per_patient.groupby(["sequence", "split"], sort=False)[["dice_3d", "hd95_mm"]].mean()
    rows = [(seq, split, metric, float(means.loc[(seq, split), metric])) for seq, split in means.index for metric in ("dice_3d", "hd95_mm")]
    return pd.DataFrame(rows, columns=METRIC_COLUMNS)


def patient_volume_row(sequence: str, split: str, cohort: str, patient_id: str, pred: np.ndarray, truth: np.ndarray, spacing: Sequence[float]) -> tuple:
    """One PATIENT_COLUMNS row: 3D metrics of a whole predicted volume against its truth."""
    m = volume_metrics(pred, truth, spacing)
    return (sequence, split, cohort, patient_id, m["dice_3d"], m["hd95_mm"], m["pred_empty"], m["truth_empty"])


def comparison_markdown(metrics: pd.DataFrame, split: str = "test") -> str:
    """A sequence x metric table for one split, like the study's cross-sequence comparison."""
    part = metrics[metrics["split"] == split]
    if part.empty:
        return f"(no {split} metrics yet)"
    table = part.pivot_table(index="sequence", columns="metric", values="value", sort=False)
    cols = [c for c in ("accuracy", "balanced_accuracy", "precision", "sensitivity", "specificity", "f1", "iou", "dice_3d", "hd95_mm") if c in table]
    lines = ["| sequence | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    lines += [f"| {seq} | " + " | ".join(f"{table.loc[seq, c]:.3f}" for c in cols) + " |" for seq in table.index]
    return "\n".join(lines)
