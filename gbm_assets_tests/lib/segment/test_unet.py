"""The study's U-Net: parameter count, shapes, value range, logits/probabilities, and the loss."""

from __future__ import annotations

import pytest
import torch

from gbm_assets.lib.segment.losses import bce_dice_loss, soft_dice_loss
from gbm_assets.lib.segment.unet import UNet, count_parameters

STUDY_PARAMS_BASE64 = 32_083_393  # in_channels=1; measured, and recomputed by hand below


def _by_hand(c_in: int, b: int) -> int:
    """Parameters of the study's U-Net, counted from its definition."""

    def conv_block(i: int, o: int) -> int:  # two bias-free 3x3 convs + two BatchNorms (weight, bias)
        return 9 * i * o + 9 * o * o + 4 * o

    widths = [b, 2 * b, 4 * b, 8 * b, 16 * b]
    total = conv_block(c_in, b) + sum(conv_block(w, 2 * w) for w in widths[:4])  # encoder
    total += sum(9 * w * w + 2 * w for w in widths[:4])  # DownSample: 3x3 conv + BatchNorm
    total += sum((w * (w // 2) + w // 2) + conv_block(w, w // 2) for w in widths[1:])  # UpSample + decoder
    return total + 9 * b + 1  # head: 3x3 conv to one channel, with bias


def test_parameter_count_matches_the_study_at_base_64():
    n = count_parameters(UNet(in_channels=1, base=64))
    assert n == STUDY_PARAMS_BASE64 == _by_hand(1, 64)
    assert 30e6 < n < 35e6
    assert count_parameters(UNet(in_channels=3, base=64)) == _by_hand(3, 64)


def test_base_64_forward_at_256_gives_probabilities():
    torch.manual_seed(0)
    model = UNet(in_channels=1, base=64).eval()
    with torch.inference_mode():
        y = model(torch.randn(1, 1, 256, 256))
    assert y.shape == (1, 1, 256, 256)
    assert y.dtype == torch.float32
    assert torch.all((y >= 0) & (y <= 1))


@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("size", [32, 64, 128])
def test_small_unet_shapes(in_channels: int, size: int):
    torch.manual_seed(0)
    model = UNet(in_channels=in_channels, base=4)
    x = torch.randn(2, in_channels, size, size)
    logits = model.forward_logits(x)
    probs = model(x)
    assert logits.shape == probs.shape == (2, 1, size, size)
    assert torch.all((probs >= 0) & (probs <= 1))


def test_forward_is_sigmoid_of_forward_logits():
    torch.manual_seed(0)
    model = UNet(in_channels=1, base=4).eval()
    x = torch.randn(2, 1, 32, 48)
    with torch.inference_mode():
        torch.testing.assert_close(model(x), torch.sigmoid(model.forward_logits(x)))


@pytest.mark.parametrize("shape", [(1, 1, 40, 32), (1, 1, 16, 16), (1, 2, 32, 32), (1, 32, 32)])
def test_bad_input_shapes_are_refused(shape):
    with pytest.raises(ValueError):
        UNet(in_channels=1, base=4).forward_logits(torch.randn(*shape))


def test_state_dict_keys_follow_the_study():
    keys = UNet(base=4).state_dict().keys()
    assert {"c1.net.0.weight", "d1.layer.0.weight", "u1.layer.weight", "u1.layer.bias", "head.weight", "head.bias"} <= keys
    assert "c1.net.0.bias" not in keys  # convs before BatchNorm carry no bias


def test_loss_is_finite_on_extreme_logits_and_empty_masks():
    logits = torch.tensor([[-1e4, 1e4], [50.0, -50.0]]).view(1, 1, 2, 2)
    target = torch.tensor([[0.0, 1.0], [1.0, 0.0]]).view(1, 1, 2, 2)
    assert torch.isfinite(bce_dice_loss(logits, target))
    assert bce_dice_loss(logits, target) < 1e-3  # near-perfect prediction
    empty = torch.zeros(2, 1, 4, 4)
    assert soft_dice_loss(torch.full_like(empty, -100.0), empty) == pytest.approx(0.0, abs=1e-6)
    assert soft_dice_loss(torch.full_like(empty, 100.0), empty) == pytest.approx(32 / 33)


def test_loss_gradient_flows_to_logits():
    logits = torch.zeros(2, 1, 8, 8, requires_grad=True)
    bce_dice_loss(logits, torch.ones(2, 1, 8, 8)).backward()
    assert logits.grad is not None and torch.all(logits.grad < 0)
