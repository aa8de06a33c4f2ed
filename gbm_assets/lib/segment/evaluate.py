"""Evaluate a 2D U-Net on its slice arrays: the study's pixel metrics per split, plus 3D metrics.

Pixel metrics (accuracy, balanced accuracy, precision, sensitivity, specificity, F1, IoU) pool
the confusion counts of every training slice in a split, as the study reports them. 3D Dice and
HD95 are per patient, on the whole preprocessed volume (every axial slice predicted, then the
same post-processing `lesion_masks` applies), averaged over the split's patients. The
empty-mask policy of `metrics.volume_metrics` applies and one-sided empty cases are counted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from gbm_assets.lib.masks.postprocess import (
    POSTPROCESS,
    PostprocessSettings,
    postprocess_mask,
)
from gbm_assets.lib.preprocess.splits import SPLITS
from gbm_assets.lib.preprocess.volumes import PreprocessedPatient
from gbm_assets.lib.segment.dataset import SliceData
from gbm_assets.lib.segment.figures import split_pictures
from gbm_assets.lib.segment.inference import predict_volume
from gbm_assets.lib.segment.metrics import (
    confusion_counts,
    pixel_metrics,
    volume_metrics,
)
from gbm_assets.lib.segment.unet import UNet

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


def slice_probabilities(index: pd.DataFrame, volumes: dict[tuple[str, str], np.ndarray]) -> np.ndarray:
    """(N, H, W) probabilities of the indexed slices, read from predicted (H, W, Z) volumes.

    index: rows with cohort, patient_id and slice (the volume's z); volumes: (cohort, patient_id) ->
    (H, W, Z) probabilities. An empty index gives (0, 0, 0).
    """
    if index.empty:
        return np.zeros((0, 0, 0), np.float32)
    return np.stack([volumes[(c, p)][..., z] for c, p, z in index[["cohort", "patient_id", "slice"]].itertuples(index=False)])


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


@dataclass
class Evaluation:
    """What `evaluate_model` returns.

    Attributes:
        metrics: METRIC_COLUMNS rows: pixel metrics and mean 3D Dice / HD95 per split.
        per_patient: PATIENT_COLUMNS rows, post-processed with the chosen keep-largest setting.
        pictures: file name -> bytes: `<split>_overlay.png` and `<split>_slices.gif` per split.
        postprocess: keep_largest (bool, decided on validation patients; False without any) and
            the mean validation 3D Dice with all components / the largest only (NaN without any).
    """

    metrics: pd.DataFrame
    per_patient: pd.DataFrame
    pictures: dict[str, bytes]
    postprocess: dict


def evaluate_model(
    model: UNet, input_name: str, data: SliceData, load_patient: Callable[[str, str], PreprocessedPatient],
    settings: PostprocessSettings = POSTPROCESS, batch_size: int = 64,
) -> Evaluation:
    """Metrics of `model` on every split present in `data`, plus pictures per split.

    Each split patient's whole preprocessed volume (`load_patient(cohort, patient_id)`) is
    predicted once, `batch_size` slices per pass. Pixel metrics read those predictions at the
    split's training slices (the training arrays are the same preprocessed slices); 3D metrics
    post-process the volumes with `settings`, as `lesion_masks` does. Whether to keep only the
    largest component is decided on the validation patients (never on test).
    """
    pixel, predicted, pictures = [], {}, {}
    for split in data.x:
        index = data.index[split]
        patients = index[["cohort", "patient_id"]].drop_duplicates().itertuples(index=False)
        predicted[split] = [(c, p, patient, predict_volume(model, patient, input_name, batch_size)) for c, p in patients for patient in [load_patient(c, p)]]
        prob = slice_probabilities(index, {(c, p): vol for c, p, _, vol in predicted[split]})
        pixel.append(pixel_metric_rows(input_name, prob, data.y[split], index, settings.threshold))
        grid, gif = split_pictures(index, data.x[split], data.y[split], prob > settings.threshold)
        pictures[f"{split}_overlay.png"], pictures[f"{split}_slices.gif"] = grid, gif

    def rows(split: str, keep_largest: bool) -> list[tuple]:
        return [patient_volume_row(input_name, split, cohort, pid,
                                   postprocess_mask(prob, patient.spacing, settings.threshold, settings.min_component_mm3, keep_largest),
                                   patient.labels > 0, patient.spacing)
                for cohort, pid, patient, prob in predicted[split]]  # fmt: skip

    choice = {"keep_largest": False, "val_dice_all_components": float("nan"), "val_dice_largest_component": float("nan")}
    if predicted.get("validation"):
        dice = {k: float(np.mean([r[4] for r in rows("validation", k)])) for k in (False, True)}
        choice = {"keep_largest": bool(dice[True] > dice[False]), "val_dice_all_components": dice[False], "val_dice_largest_component": dice[True]}
    per_patient = pd.DataFrame([r for split in predicted for r in rows(split, choice["keep_largest"])], columns=PATIENT_COLUMNS)
    metrics = pd.concat([*pixel, volume_metric_rows(per_patient)], ignore_index=True)
    return Evaluation(metrics.sort_values(["split", "metric"], ignore_index=True), per_patient, pictures, choice)
