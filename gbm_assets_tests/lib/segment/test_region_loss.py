"""The region loss on toy tensors: near 0 when perfect, the binary loss as R = 1, finite gradients,
empty regions handled, and torch targets identical to the numpy region channels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gbm_assets.lib.segment.losses import bce_dice_loss
from gbm_assets.lib.segment.region_loss import region_loss, region_targets
from gbm_assets.lib.segment.regions import labels_to_regions


def _labels(n: int = 2, size: int = 16) -> torch.Tensor:
    labels = torch.zeros(n, size, size, dtype=torch.uint8)
    labels[0, 3:12, 3:12] = 2
    labels[0, 5:10, 5:10] = 3
    labels[0, 6:9, 6:9] = 1
    labels[1, 2:6, 2:6] = 2  # edema only: empty core and enhancing in this slice
    return labels


def test_targets_match_numpy_region_channels():
    labels = _labels()
    assert np.array_equal(region_targets(labels).numpy().astype(bool), labels_to_regions(labels.numpy(), axis=1))


def test_perfect_prediction_is_near_zero_and_wrong_is_large():
    target = region_targets(_labels())
    perfect = (target * 2 - 1) * 20.0
    assert region_loss(perfect, target).item() < 1e-3
    assert region_loss(-perfect, target).item() > 5.0
    empty = torch.zeros_like(target)  # nothing anywhere, predicted nothing: still ~0, no division by zero
    assert region_loss(torch.full_like(target, -20.0), empty).item() < 1e-3


def test_one_channel_is_the_binary_loss_and_channels_average():
    torch.manual_seed(0)
    target = region_targets(_labels())
    logits = torch.randn_like(target)
    wt = slice(0, 1)
    assert torch.equal(region_loss(logits[:, wt], target[:, wt]), bce_dice_loss(logits[:, wt], target[:, wt]))
    per = [bce_dice_loss(logits[:, r : r + 1], target[:, r : r + 1]) for r in range(3)]
    assert region_loss(logits, target).item() == pytest.approx(float(sum(per)) / 3, rel=1e-6)
    weighted = region_loss(logits, target, weights=[2, 1, 1])
    assert weighted.item() == pytest.approx((2 * per[0].item() + per[1].item() + per[2].item()) / 4, rel=1e-6)


def test_gradients_finite_with_extreme_logits_and_empty_regions():
    target = region_targets(_labels()[1:])  # core and enhancing empty in the whole batch
    assert target[:, 1:].sum() == 0
    for scale in (1.0, 1e4):
        logits = (torch.randn_like(target) * scale).requires_grad_()
        loss = region_loss(logits, target)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    # empty region: less predicted mass, less loss (false positives are pushed down)
    base = torch.zeros_like(target)
    losses = [region_loss(base.clone().fill_(v), target).item() for v in (2.0, 0.0, -2.0, -8.0)]
    assert losses == sorted(losses, reverse=True)


def test_a_few_steps_fit_the_regions():
    torch.manual_seed(0)
    target = region_targets(_labels())
    logits = torch.zeros_like(target, requires_grad=True)
    opt = torch.optim.Adam([logits], lr=0.5)
    first = region_loss(logits, target).item()
    for _ in range(50):
        opt.zero_grad()
        loss = region_loss(logits, target)
        loss.backward()
        opt.step()
    assert loss.item() < 0.1 * first


def test_bad_shapes_and_weights_raise():
    target = region_targets(_labels())
    with pytest.raises(ValueError, match="must both be"):
        region_loss(torch.zeros(2, 3, 16), torch.zeros(2, 3, 16))
    with pytest.raises(ValueError, match="must both be"):
        region_loss(torch.zeros_like(target[:, :1]), target)
    with pytest.raises(ValueError, match="weights"):
        region_loss(torch.zeros_like(target), target, weights=[1, 1])
