"""Evaluate a 2D U-Net on its slice arrays: the study's pixel metrics per split, plus 3D metrics.

Pixel metrics (accuracy, balanced accuracy, precision, sensitivity, specificity, F1, IoU) pool
the confusion counts of every training slice in a split, as the study reports them. 3D Dice and
HD95 are per patient, on the whole preprocessed volume (every axial slice predicted, then the
same post-processing `lesion_masks` applies), averaged over the split's patients, and so are the
BraTS evaluation's lesion-wise Dice, HD95 and detection F1 (`lesions.lesion_wise`). The
empty-mask policy of `metrics.volume_metrics` applies and one-sided empty cases are counted.
Evaluation streams patients (issue 10): memory does not grow with the number of patients.

Every row names its `region`: a binary model is scored on `whole_tumor` only; a region model on
each of its nested regions (`regions.REGION_CHANNELS`), the pixel metrics from pooled per-region
confusion counts (`regions.region_confusion`) and the 3D metrics from `regions.region_volume_metrics`
on canonical labels (`masks.postprocess.postprocess_labels`); keep-largest is decided on whole tumour.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from gbm_assets.lib.masks.postprocess import (
    POSTPROCESS,
    PostprocessSettings,
    postprocess_labels,
    postprocess_mask,
)
from gbm_assets.lib.preprocess.volumes import PreprocessedPatient
from gbm_assets.lib.segment.dataset import SliceData, label_regions
from gbm_assets.lib.segment.figures import picture_rows, split_pictures
from gbm_assets.lib.segment.inference import predict_volume
from gbm_assets.lib.segment.lesions import LESION_COLUMNS, volume_and_lesion_metrics
from gbm_assets.lib.segment.metrics import confusion_counts, pixel_metrics
from gbm_assets.lib.segment.regions import (
    REGION_CHANNELS,
    region_confusion,
    region_volume_metrics,
    regions_to_labels,
    scored_regions,
)
from gbm_assets.lib.segment.unet import UNet

WHOLE_TUMOR = "whole_tumor"
"""The region of every binary model's row (and of rows written before regions existed)."""
METRIC_COLUMNS = ["sequence", "split", "region", "metric", "value"]
PATIENT_COLUMNS = ["sequence", "split", "cohort", "patient_id", "dice_3d", "hd95_mm", "pred_empty", "truth_empty", "region",
                   *LESION_COLUMNS]  # fmt: skip
VOLUME_MEANS = ("dice_3d", "hd95_mm", "lesion_f1", "lesionwise_dice", "lesionwise_hd95_mm")
"""The per-patient figures averaged into a split's metric rows (the lesion-wise ones as the BraTS evaluation)."""


def volume_metric_rows(per_patient: pd.DataFrame) -> pd.DataFrame:
    """Mean 3D Dice and HD95, and the lesion-wise figures where present, per split and region from per-patient rows
    (PATIENT_COLUMNS)."""
    keys, names = ["sequence", "split", "region"], [c for c in VOLUME_MEANS if c in per_patient]
    means = per_patient.groupby(keys, sort=False)[names].mean()
    rows = [(*key, metric, float(means.loc[key, metric])) for key in means.index for metric in names]
    return pd.DataFrame(rows, columns=METRIC_COLUMNS)


def patient_volume_row(sequence: str, split: str, cohort: str, patient_id: str, pred: np.ndarray, truth: np.ndarray,
                       spacing: Sequence[float], region: str = WHOLE_TUMOR, m: dict | None = None) -> tuple:
    """One PATIENT_COLUMNS row: 3D and lesion-wise metrics of a whole predicted volume against its truth (or the
    already computed `volume_metrics` and `lesion_wise` figures m of that region)."""
    m = volume_and_lesion_metrics(pred, truth, spacing) if m is None else m
    return (sequence, split, cohort, patient_id, m["dice_3d"], m["hd95_mm"], m["pred_empty"], m["truth_empty"], region,
            *(m[c] for c in LESION_COLUMNS))  # fmt: skip


def with_region(metrics: pd.DataFrame) -> pd.DataFrame:
    """segmentation_metrics rows with a `region` column: rows written before regions existed are whole tumour."""
    if "region" not in metrics:
        metrics = metrics.assign(region=WHOLE_TUMOR)
    return metrics.assign(region=metrics["region"].fillna(WHOLE_TUMOR))


def comparison_markdown(metrics: pd.DataFrame, split: str = "test") -> str:
    """A sequence x metric table for one split, like the study's cross-sequence comparison."""
    part = metrics[metrics["split"] == split]
    part = part[with_region(part)["region"] == WHOLE_TUMOR]
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
    """Metrics of `model` on every split present in `data`, plus pictures per split, one patient at a time.

    Each split patient's whole preprocessed volume (`load_patient(cohort, patient_id)`) is
    predicted once, `batch_size` slices per pass, and dropped after its numbers are taken: pixel
    confusion counts at the patient's training slices (the training arrays are the same
    preprocessed slices; counts add up exactly to the split's pooled counts) and its 3D metrics,
    post-processed with `settings` as `lesion_masks` does. Validation patients go first: they
    decide whether to keep only the largest component (never test), so the other splits are
    post-processed once. Memory holds one patient's volumes plus the few slices the pictures
    draw, whatever the number of patients; rows come out in the splits' order in `data`.
    """
    splits = list(data.index)
    regions = REGION_CHANNELS if getattr(model, "out_channels", 1) > 1 else (WHOLE_TUMOR,)
    pixel: dict[str, pd.DataFrame] = {}
    volume_rows: dict[str, list[tuple]] = {}
    pictures: dict[str, bytes] = {}
    choice = {"keep_largest": False, "val_dice_all_components": float("nan"), "val_dice_largest_component": float("nan")}
    for split in sorted(splits, key=lambda s: s != "validation"):
        index = data.index[split]
        shown = set(np.concatenate(picture_rows(index)).tolist())
        kept_pred: dict[int, np.ndarray] = {}
        counts = {r: np.zeros(4, dtype=object) for r in regions}  # Python ints: no overflow over a cohort
        both: list[dict[bool, tuple]] = []  # per patient: keep_largest -> its row (both settings on validation)
        positions = index.groupby(["cohort", "patient_id"], sort=False).indices
        carried = label_regions(index)  # a region is scored only where the patient's truth carries it
        for cohort, pid in index[["cohort", "patient_id"]].drop_duplicates().itertuples(index=False):
            patient = load_patient(cohort, pid)
            prob = predict_volume(model, patient, input_name, batch_size)
            at = np.sort(positions[(cohort, pid)])
            z, variants = index["slice"].to_numpy()[at], (False, True) if split == "validation" else (choice["keep_largest"],)
            if len(regions) == 1:
                pred = np.moveaxis(prob[..., z], -1, 0) > settings.threshold
                counts[WHOLE_TUMOR] += np.array(confusion_counts(pred, data.y[split][at] > 0), dtype=object)
                truth = patient.labels > 0
                rows = {k: [patient_volume_row(input_name, split, cohort, pid,
                                               postprocess_mask(prob, patient.spacing, settings.threshold, settings.min_component_mm3, k),
                                               truth, patient.spacing)] for k in variants}  # fmt: skip
            else:
                scored = scored_regions(carried[(cohort, pid)], regions)
                pred_labels = np.moveaxis(regions_to_labels(prob[..., z], axis=0, threshold=settings.threshold), -1, 0)
                for region, c in region_confusion(pred_labels, data.y[split][at], scored).items():
                    counts[region] += np.array(c, dtype=object)
                pred = pred_labels > 0
                rows = {k: [patient_volume_row(input_name, split, cohort, pid, None, None, patient.spacing, r, m)
                            for r, m in region_volume_metrics(postprocess_labels(prob, patient.spacing, settings.threshold,
                                                                                 settings.min_component_mm3, k),
                                                              patient.labels, patient.spacing, scored).items()]
                        for k in variants}  # fmt: skip
            kept_pred.update((int(a), p) for a, p in zip(at, pred) if a in shown)
            both.append(rows)
            del patient, prob
        if split == "validation" and both:
            dice = {k: float(np.mean([r[k][0][4] for r in both])) for k in (False, True)}  # the first region: whole tumour
            choice = {"keep_largest": bool(dice[True] > dice[False]), "val_dice_all_components": dice[False], "val_dice_largest_component": dice[True]}
        volume_rows[split] = [row for r in both for row in r[choice["keep_largest"]]]
        answered = [r for r in regions if any(scored_regions(carried[key], (r,)) for key in positions)]  # some truth carries it
        pixel[split] = pd.DataFrame([(input_name, split, region, k, v) for region in answered
                                     for k, v in pixel_metrics(*(int(c) for c in counts[region])).items()], columns=METRIC_COLUMNS)  # fmt: skip

        def take(at: np.ndarray, split: str = split, kept: dict = kept_pred) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            return data.x[split][at][:, 0], data.y[split][at] > 0, np.stack([kept[int(a)] for a in at])

        pictures[f"{split}_overlay.png"], pictures[f"{split}_slices.gif"] = split_pictures(index, take)
    per_patient = pd.DataFrame([r for split in splits for r in volume_rows[split]], columns=PATIENT_COLUMNS)
    metrics = pd.concat([*(pixel[s] for s in splits), volume_metric_rows(per_patient)], ignore_index=True)
    pictures = {f"{s}_{name}": pictures[f"{s}_{name}"] for s in splits for name in ("overlay.png", "slices.gif")}
    order = {r: i for i, r in enumerate(regions)}
    metrics = metrics.sort_values(["split", "region", "metric"], key=lambda s: s.map(order) if s.name == "region" else s, ignore_index=True)
    return Evaluation(metrics, per_patient, pictures, choice)
