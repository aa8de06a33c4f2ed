"""The region loss of a region U-Net: BCE-with-logits + soft Dice per region channel, averaged.

This is how nnU-Net trains BraTS' nested regions (whole tumour, tumour core, enhancing): one
sigmoid per region, each with its own binary loss, the losses averaged. Each channel's term is
`losses.bce_dice_loss` (pixel-mean BCE on logits plus the batch-pooled soft Dice), so a
one-channel model trained with `region_loss` gets exactly the binary loss it gets today.

Empty regions: a batch without enhancing tumour (common: lesion-free and edema-only slices) has an
empty enhancing target. Its Dice term is then smooth / (sum(p) + smooth), which is 0 only when the
channel predicts nothing, so it pushes false positives down without dividing by zero; the BCE term
is the same as for any other channel. Every term is finite for any finite logits.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from gbm_assets.lib.contract import REGIONS
from gbm_assets.lib.segment.losses import bce_dice_loss
from gbm_assets.lib.segment.regions import REGION_CHANNELS

__all__ = ["batch_targets", "region_loss", "region_targets", "slice_dice"]


def region_targets(labels: torch.Tensor, regions: Sequence[str] = REGION_CHANNELS) -> torch.Tensor:
    """(N, H, W) canonical labels -> (N, R, H, W) float {0, 1} region targets (torch twin of
    `regions.labels_to_regions(labels, axis=1)`, for building targets on the training device)."""
    labels = labels.long()
    out = [torch.isin(labels, torch.tensor(sorted(REGIONS[r]), device=labels.device)) for r in regions]
    return torch.stack(out, dim=1).float()


def region_loss(logits: torch.Tensor, target: torch.Tensor, weights: Sequence[float] | None = None,
                bce_weight: float = 1.0, dice_weight: float = 1.0) -> torch.Tensor:
    """Mean over region channels of `bce_dice_loss` on that channel.

    Args:
        logits: (N, R, H, W) raw network outputs, one channel per region (`UNet.forward_logits`
            with out_channels=R); R = 1 is the binary whole-tumour model.
        target: (N, R, H, W) {0, 1} region masks (`region_targets` or `labels_to_regions(..., axis=1)`).
        weights: optional per-channel weights (length R, normalised to sum 1); default equal.
        bce_weight, dice_weight: as `bce_dice_loss`.

    Returns:
        scalar tensor (float32). With R = 1 it equals `bce_dice_loss(logits, target)`.

    Raises:
        ValueError: shapes differ, fewer than 4 dimensions, or weights of the wrong length.
    """
    if logits.shape != target.shape or logits.ndim < 4:
        raise ValueError(f"logits and target must both be (N, R, H, W); got {tuple(logits.shape)} and {tuple(target.shape)}")
    n_regions = logits.shape[1]
    w = torch.full((n_regions,), 1.0 / n_regions) if weights is None else torch.as_tensor(weights, dtype=torch.float32)
    if w.shape != (n_regions,) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights must be {n_regions} non-negative numbers, not all zero; got {weights}")
    w = w / w.sum()
    terms = [bce_dice_loss(logits[:, r : r + 1], target[:, r : r + 1], bce_weight, dice_weight) for r in range(n_regions)]
    return sum(float(wr) * t for wr, t in zip(w, terms))


def batch_targets(y: torch.Tensor, target: str) -> torch.Tensor:
    """The training target of a (N, 1, H, W) label batch: whole tumour (label > 0, (N, 1, H, W)) for a
    "binary" model, the nested `REGION_CHANNELS` ((N, 3, H, W)) for a "regions" model.

    A 0/1 mask gives back the same values for "binary", so binary batches are unchanged whether the
    slices were read as masks or as canonical labels."""
    if target == "regions":
        return region_targets(y[:, 0])
    return (y > 0).to(y.dtype)


def slice_dice(logits: torch.Tensor, target: torch.Tensor, cut: float) -> torch.Tensor:
    """(N,) hard Dice per slice (logit > `cut`), averaged over the channels (regions); a channel with
    empty prediction and empty truth scores 1, one with exactly one side empty 0."""
    pred, truth = logits.float() > cut, target > 0.5
    inter = (pred & truth).sum((2, 3))
    denom = pred.sum((2, 3)) + truth.sum((2, 3))
    return torch.where(denom == 0, 1.0, 2.0 * inter / denom.clamp(min=1)).mean(1)
