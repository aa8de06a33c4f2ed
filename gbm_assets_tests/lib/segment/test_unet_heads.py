"""`UNet(out_channels=...)`: a 3-region head has the right shape, and out_channels=1 is the model of
before the parameter existed (same weights, same outputs, same seed)."""

from __future__ import annotations

import pytest
import torch

from gbm_assets.lib.segment.unet import UNet

# Fingerprints of `UNet(in_channels=2, base=4)` built after torch.manual_seed(7), and of its eval
# logits on a fixed input, measured with the unet.py of before `out_channels` (git HEAD at the
# time), so any change to the default model's construction order or head shows up here.
GOLDEN_WEIGHT_SUM, GOLDEN_WEIGHT_ABS = 851.5752350966975, 4493.67425469919
GOLDEN_LOGIT_SUM, GOLDEN_LOGIT_ABS = -199.79431309551, 199.79431309551


def _build(**kwargs) -> tuple[UNet, torch.Tensor]:
    torch.manual_seed(7)
    net = UNet(in_channels=2, base=4, **kwargs).eval()
    x = torch.randn(2, 2, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return net, net.forward_logits(x)


def test_three_region_head_shapes_and_probabilities():
    net, logits = _build(out_channels=3)
    assert logits.shape == (2, 3, 32, 32)
    with torch.no_grad():
        probs = net(torch.randn(1, 2, 48, 64))
    assert probs.shape == (1, 3, 48, 64) and probs.min() >= 0 and probs.max() <= 1
    assert net.out_channels == 3 and net.head.weight.shape == (3, 4, 3, 3)


def test_default_head_is_unchanged_for_the_same_seed():
    default, y_default = _build()
    one, y_one = _build(out_channels=1)
    assert default.out_channels == 1
    sd, so = default.state_dict(), one.state_dict()
    assert list(sd) == list(so) and all(torch.equal(sd[k], so[k]) for k in sd) and torch.equal(y_default, y_one)
    weights = torch.cat([v.flatten().double() for v in sd.values()])
    assert float(weights.sum()) == pytest.approx(GOLDEN_WEIGHT_SUM, rel=1e-12)
    assert float(weights.abs().sum()) == pytest.approx(GOLDEN_WEIGHT_ABS, rel=1e-12)
    assert float(y_one.double().sum()) == pytest.approx(GOLDEN_LOGIT_SUM, rel=1e-5)
    assert float(y_one.double().abs().sum()) == pytest.approx(GOLDEN_LOGIT_ABS, rel=1e-5)


def test_region_head_shares_the_body_of_the_binary_model():
    """The head is built last, so for one seed the 3-head model's body equals the binary model's."""
    binary, _ = _build()
    regions, _ = _build(out_channels=3)
    sb, sr = binary.state_dict(), regions.state_dict()
    body = [k for k in sb if not k.startswith("head.")]
    assert all(torch.equal(sb[k], sr[k]) for k in body)
    assert sr["head.weight"].shape[0] == 3 and sb["head.weight"].shape[0] == 1
