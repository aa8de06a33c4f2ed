"""A model's grid: recorded in its checkpoint, one per training set, and inference resampled to it and back."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from gbm_assets.lib.segment.checkpoint import architecture, checkpoint_record, load_checkpoint, save_checkpoint
from gbm_assets.lib.segment.grid import common_spacing, model_grid_shape, on_model_grid, same_grid
from gbm_assets.lib.segment.inference import predict_volume
from gbm_assets.lib.segment.unet import UNet


def disc_slices(size: int, radius: float, n: int = 3) -> np.ndarray:
    """(n, 2, size, size) float32: 1 inside a centred disc of `radius` pixels, 0 outside (both channels)."""
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    disc = (np.hypot(yy, xx) <= radius).astype(np.float32)
    return np.broadcast_to(disc, (n, 2, size, size)).copy()


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float((a & b).sum()) / max(float(a.sum() + b.sum()), 1.0)


def test_on_the_model_grid_or_without_a_record_the_slices_reach_the_network_unchanged():
    slices, seen = disc_slices(48, 10), []

    def predict(x):
        seen.append(x)
        return x[:, 0]

    for model_spacing in (None, 1.5, 1.505):
        np.testing.assert_array_equal(on_model_grid(predict, slices, 1.5, model_spacing), slices[:, 0])
        assert seen.pop() is slices


@pytest.mark.parametrize(("size", "spacing", "model_spacing", "seen_shape"), [
    (96, 1.0, 1.5, (64, 64)),  # a 1 mm cohort, a model of the demo's 1.5 mm grid
    (90, 1.0, 1.5, (64, 64)),  # 60 x 60, zero-padded to the network's multiple of 16
    (40, 3.0, 1.5, (80, 80)),  # a coarser cohort: upsampled
])  # fmt: skip
def test_the_network_sees_the_slices_on_its_grid_and_the_probabilities_come_back(size, spacing, model_spacing, seen_shape):
    slices, seen = disc_slices(size, size / 5), []

    def perfect(x):  # segments the bright disc exactly, on whatever grid it is given
        seen.append(x.shape)
        return (x[:, 0] > 0.5).astype(np.float32)

    prob = on_model_grid(perfect, slices, spacing, model_spacing)
    assert seen == [(3, 2, *seen_shape)] and prob.shape == (3, size, size)
    assert prob.min() >= 0.0 and prob.max() <= 1.0
    assert dice(prob[0] > 0.5, slices[0, 0] > 0.5) > 0.95


def test_region_probabilities_come_back_per_region():
    slices = disc_slices(96, 20)
    prob = on_model_grid(lambda x: np.stack([x[:, 0], x[:, 0] * 0.0, x[:, 1]], axis=1), slices, 1.0, 1.5)
    assert prob.shape == (3, 3, 96, 96) and prob[:, 1].max() == 0.0
    assert dice(prob[0, 2] > 0.5, slices[0, 1] > 0.5) > 0.95


def test_a_model_learns_one_grid():
    assert common_spacing({"cohort a, patient 1": 1.5, "cohort a, patient 2": 1.5004}) == 1.5
    assert common_spacing({}) is None
    with pytest.raises(ValueError) as raised:
        common_spacing({"cohort a, patient 1": 1.5, "cohort b, patient 7": 1.0, "cohort b, patient 8": 1.0})
    message = str(raised.value)
    assert "2 different in-plane grids" in message and "cohort a, patient 1: 1.5 mm" in message
    assert "cohort b, patient 7: 1 mm" in message and "target_spacing_mm" in message
    assert same_grid(1.5, 1.51) and not same_grid(1.5, 1.53)
    assert model_grid_shape((192, 192), 1.0, 1.5) == (128, 128)


def test_the_checkpoint_carries_the_grid_and_inference_uses_it(tmp_path):
    torch.manual_seed(0)
    model = UNet(in_channels=1, base=4, p=0.0)
    arch = architecture(1, 4, 0.0)
    recorded = load_checkpoint(save_checkpoint(tmp_path / "grid.pt", model.state_dict(), arch, "t1", {"t1": "zscore"}, 1.5))
    legacy = load_checkpoint(save_checkpoint(tmp_path / "legacy.pt", model.state_dict(), arch, "t1"))
    assert recorded.spacing_mm == 1.5 and legacy.spacing_mm is None
    assert recorded.intensity == legacy.intensity == {"t1": "zscore"}  # the record, or z-scored where it predates it
    assert checkpoint_record(tmp_path / "grid.pt") == ({"t1": "zscore"}, 1.5)
    assert checkpoint_record(tmp_path / "legacy.pt") == ({"t1": "zscore"}, None)
    images = np.random.default_rng(0).normal(size=(1, 48, 48, 4)).astype(np.float32)
    patient = SimpleNamespace(images=images, sequences=("t1",), spacing=(1.0, 1.0, 2.0))
    on_own_grid, resampled = predict_volume(legacy, patient, "t1"), predict_volume(recorded, patient, "t1")
    assert on_own_grid.shape == resampled.shape == (48, 48, 4)
    assert not np.allclose(on_own_grid, resampled)  # the recorded model saw the slices at 1.5 mm (32 x 32)
    patient.spacing = (1.5, 1.5, 2.0)
    np.testing.assert_array_equal(predict_volume(recorded, patient, "t1"), predict_volume(legacy, patient, "t1"))
