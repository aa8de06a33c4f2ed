"""Nested BraTS regions for region-based U-Nets: labels <-> region channels, and metrics per region.

A region model (nnU-Net's BraTS setup) predicts one sigmoid channel per nested region, in the
order of `REGION_CHANNELS`:

    channel 0  whole_tumor  = labels {1, 2, 3}
    channel 1  tumor_core   = labels {1, 3}
    channel 2  enhancing    = labels {3}

(canonical labels of `lib.contract`: 1 necrotic / non-enhancing core, 2 edema, 3 enhancing; the
region sets are `contract.REGIONS`). Nested channels make the loss of each region independent of
the others' confusion, which is what BraTS scores.

Back to labels (`regions_to_labels`) follows nnU-Net's `regions_class_order` (2, 1, 3): paint
edema where WT > t, then core where TC > t, then enhancing where ET > t, each overwriting the last.
So ET > t means enhancing even where WT <= t (a label-3 voxel lies in all three regions by
definition: ET implies TC implies WT in the label map, whatever the channels said).

Metrics reuse `lib.segment.metrics` (confusion counts, the seven pixel metrics, Dice and HD95 with
its empty policy). This module only adds the loop over regions and one region convention: a region
that the truth's label scheme (or the model) cannot represent is *not scored* (no row), rather
than scored as "empty truth" (a binary whole-tumour mask says nothing about enhancing tumour).
Empty masks inside a representable region follow `metrics`: both empty -> Dice 1, HD95 0; one
empty -> Dice 0, HD95 = the volume's diagonal (373.13 mm on BraTS' 240 x 240 x 155 1-mm grid,
BraTS' own penalty value).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from gbm_assets.lib.contract import (
    EDEMA,
    ENHANCING,
    NECROTIC_CORE,
    REGIONS,
    region_mask,
)
from gbm_assets.lib.segment.lesions import volume_and_lesion_metrics
from gbm_assets.lib.segment.metrics import (
    confusion_counts,
    pixel_metrics,
    volume_metrics,
)

__all__ = [
    "CONFUSION_COLUMNS",
    "REGION_CHANNELS",
    "labels_to_regions",
    "region_confusion",
    "region_metrics",
    "region_volume_metrics",
    "regions_to_labels",
    "scored_regions",
]

REGION_CHANNELS: tuple[str, ...] = ("whole_tumor", "tumor_core", "enhancing")
"""The nested regions a region model predicts, in output-channel order."""
_PAINT_ORDER: tuple[int, ...] = (EDEMA, NECROTIC_CORE, ENHANCING)
"""Label painted where each channel of `REGION_CHANNELS` is above threshold (nnU-Net's regions_class_order)."""
CONFUSION_COLUMNS: tuple[str, ...] = ("tp", "fp", "fn", "tn")


def _check_channels(regions: Sequence[str]) -> tuple[str, ...]:
    unknown = [r for r in regions if r not in REGIONS]
    if unknown:
        raise KeyError(f"unknown regions {unknown}; known: {', '.join(REGIONS)}")
    return tuple(regions)


def labels_to_regions(labels: np.ndarray, axis: int = 0, regions: Sequence[str] = REGION_CHANNELS) -> np.ndarray:
    """Binary region channels of a canonical label array.

    Args:
        labels: canonical labels (0..3), any shape: a volume (X, Y, Z) or a slice batch (N, H, W).
        axis: where the new channel axis goes: 0 for a volume -> (3, X, Y, Z); 1 for a slice batch
            -> (N, 3, H, W), the layout of the U-Net's target.
        regions: which regions, in channel order (default the nested `REGION_CHANNELS`).

    Returns:
        bool array with one more axis than `labels`, len(regions) long at `axis`.

    Raises:
        KeyError: an unknown region name.
    """
    labels = np.asarray(labels)
    return np.stack([region_mask(labels, r) for r in _check_channels(regions)], axis=axis)


def regions_to_labels(probs: np.ndarray, axis: int = 0, threshold: float = 0.5) -> np.ndarray:
    """Canonical labels (uint8) from the three nested region probabilities (or logits-free masks).

    Args:
        probs: probabilities with the `REGION_CHANNELS` (WT, TC, ET) along `axis`; bool masks work too.
        axis: the channel axis (0 for (3, X, Y, Z), 1 for (N, 3, H, W)).
        threshold: a channel is "on" strictly above it (nnU-Net's 0.5).

    Returns:
        uint8 array without the channel axis: 0 background, 2 where only WT is on, 1 where TC is on
        (and ET not), 3 where ET is on (see the module docstring: ET wins regardless of WT/TC).

    Raises:
        ValueError: `probs` does not have exactly 3 channels at `axis`.
    """
    probs = np.asarray(probs)
    if probs.shape[axis] != len(REGION_CHANNELS):
        raise ValueError(f"expected {len(REGION_CHANNELS)} region channels ({', '.join(REGION_CHANNELS)}) "
                         f"on axis {axis}, got shape {probs.shape}")  # fmt: skip
    channels = np.moveaxis(probs, axis, 0)
    out = np.zeros(channels.shape[1:], np.uint8)
    for channel, label in zip(channels, _PAINT_ORDER):
        out[channel > threshold] = label
    return out


def scored_regions(truth_regions: Iterable[str], pred_regions: Iterable[str] = REGION_CHANNELS) -> tuple[str, ...]:
    """The regions both sides can answer for, in `REGIONS` order.

    truth_regions: `LabelScheme.regions` of the truth's scheme; pred_regions: what the model
    predicts (`REGION_CHANNELS` for a region model, ("whole_tumor",) for a binary one).
    """
    both = set(truth_regions) & set(pred_regions)
    return tuple(r for r in REGIONS if r in both)


def region_confusion(pred_labels: np.ndarray, truth_labels: np.ndarray,
                     regions: Sequence[str] = REGION_CHANNELS) -> dict[str, tuple[int, int, int, int]]:
    """(tp, fp, fn, tn) per region of two canonical label arrays of equal shape.

    Sum these over slices, volumes or a split before `pixel_metrics`, as the study pools them.
    """
    return {r: confusion_counts(region_mask(pred_labels, r), region_mask(truth_labels, r)) for r in _check_channels(regions)}


def region_metrics(pred_labels: np.ndarray, truth_labels: np.ndarray, regions: Sequence[str] = REGION_CHANNELS,
                   spacing: Sequence[float] | None = None) -> list[dict]:
    """The study's seven pixel metrics, plus 3D Dice and HD95 when `spacing` is given, per region.

    Args:
        pred_labels, truth_labels: canonical labels, equal shape (a volume for the 3D metrics).
        regions: the regions to score (`scored_regions` drops those a side cannot represent).
        spacing: voxel size in mm per axis; None skips dice_3d / hd95_mm (e.g. for a slice batch).

    Returns:
        one dict per region: region, tp, fp, fn, tn, the `PIXEL_METRIC_NAMES`, and with spacing
        dice_3d, hd95_mm, pred_empty, truth_empty (empty policy of `metrics`).
    """
    rows = []
    for region, counts in region_confusion(pred_labels, truth_labels, regions).items():
        row = {"region": region, **dict(zip(CONFUSION_COLUMNS, counts)), **pixel_metrics(*counts)}
        if spacing is not None:
            row |= volume_metrics(region_mask(pred_labels, region), region_mask(truth_labels, region), spacing)
        rows.append(row)
    return rows


def region_volume_metrics(pred_labels: np.ndarray, truth_labels: np.ndarray, spacing: Sequence[float],
                          regions: Sequence[str] = REGION_CHANNELS) -> dict[str, dict]:
    """region -> `metrics.volume_metrics` (dice_3d, hd95_mm, pred_empty, truth_empty) and `lesions.lesion_wise` (the
    BraTS evaluation's lesion-wise figures) for one volume."""
    return {r: volume_and_lesion_metrics(region_mask(pred_labels, r), region_mask(truth_labels, r), spacing)
            for r in _check_channels(regions)}  # fmt: skip
