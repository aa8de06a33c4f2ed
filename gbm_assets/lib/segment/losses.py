"""Segmentation losses on logits: binary cross-entropy plus soft Dice.

Both terms take logits, not probabilities: `binary_cross_entropy_with_logits` uses the
log-sum-exp form and never takes log(0), and the Dice term applies the sigmoid itself.
Both are computed in float32 even under bf16 autocast.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

__all__ = ["bce_dice_loss", "soft_dice_loss"]


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """1 - soft Dice over the whole batch, pooled (one Dice per batch, not per slice).

    Dice = (2 * sum(p * t) + smooth) / (sum(p) + sum(t) + smooth), with p = sigmoid(logits)
    and the sums running over every pixel of every slice in the batch. Pooling over the batch
    keeps slices without lesion from dominating: an empty slice only adds its false-positive
    mass to the denominator.

    Empty-mask behaviour: when the target is empty across the batch, Dice tends to 1 (loss 0) as
    the predicted mass sum(p) goes to 0, and the loss is smooth / (sum(p) + smooth) away from it;
    `smooth` (pixels) also keeps the ratio finite.

    Args:
        logits: (N, 1, H, W) (any shape) raw network outputs.
        target: same shape, values in {0, 1} (bool, uint8 or float).
        smooth: additive smoothing, in pixels.

    Returns:
        Scalar tensor in [0, 1).
    """
    p = torch.sigmoid(logits.float())
    t = target.to(p.dtype)
    intersection = (p * t).sum()
    return 1.0 - (2.0 * intersection + smooth) / (p.sum() + t.sum() + smooth)


def bce_dice_loss(
    logits: torch.Tensor, target: torch.Tensor, bce_weight: float = 1.0, dice_weight: float = 1.0
) -> torch.Tensor:
    """bce_weight * mean pixel BCE + dice_weight * batch soft-Dice loss, both on logits.

    Args:
        logits: (N, 1, H, W) raw network outputs (`UNet.forward_logits`).
        target: same shape, values in {0, 1}.
        bce_weight: weight of the binary cross-entropy (mean over pixels, nats).
        dice_weight: weight of `soft_dice_loss`.

    Returns:
        Scalar tensor. An all-empty batch is still well defined: the BCE term pushes every
        pixel to background and the Dice term to 0 (see `soft_dice_loss`).
    """
    logits = logits.float()
    t = target.to(logits.dtype)
    bce = F.binary_cross_entropy_with_logits(logits, t)
    return bce_weight * bce + dice_weight * soft_dice_loss(logits, t)
