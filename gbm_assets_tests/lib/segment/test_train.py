"""The pure trainer: it learns an obvious target, is deterministic on CPU, keeps the best epoch."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from gbm_assets.lib.segment.train import TrainConfig, predict_slices, train_unet
from gbm_assets.lib.segment.unet import UNet

DETERMINISTIC_KEYS = ("epoch", "train_loss", "val_loss", "val_dice")


def bright_discs(n: int, size: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, 1, size, size) float32 noise with one bright disc per slice, and its (n, size, size) uint8 mask."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    x = rng.normal(0.0, 0.3, (n, 1, size, size)).astype(np.float32)
    y = np.zeros((n, size, size), np.uint8)
    for i in range(n):
        cy, cx = rng.uniform(8, size - 8, 2)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= rng.uniform(3, 7) ** 2
        y[i], x[i, 0][disc] = disc, x[i, 0][disc] + 1.5
    return x, y


@pytest.fixture(scope="module")
def data():
    return bright_discs(32, seed=0) + bright_discs(16, seed=1)


CONFIG = TrainConfig(base=4, epochs=20, batch_size=8, lr=1e-2, seed=0, augment=True, dropout=0.1, device="cpu")


@pytest.fixture(scope="module")
def trained(data):
    records = []
    result = train_unet(*data, CONFIG, on_epoch=records.append)
    return result, records


def test_val_dice_improves_on_an_obvious_target(trained):
    result, _ = trained
    dice = [h["val_dice"] for h in result.history]
    assert result.best_val_dice > 0.6
    assert result.best_val_dice > dice[0] + 0.3
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_history_records_and_callback(trained):
    result, records = trained
    assert len(result.history) == CONFIG.epochs and records == result.history
    assert [h["epoch"] for h in result.history] == list(range(1, CONFIG.epochs + 1))
    for h in result.history:
        assert set(h) == {"epoch", "train_loss", "val_loss", "val_dice", "val_dice_whole_tumor", "seconds", "slices_per_s"}
        assert h["seconds"] > 0 and h["slices_per_s"] > 0 and 0.0 <= h["val_dice"] <= 1.0


def test_best_epoch_weights_are_kept(trained, data):
    result, _ = trained
    dice = [h["val_dice"] for h in result.history]
    assert result.best_epoch == int(np.argmax(dice)) + 1  # first epoch reaching the maximum
    assert result.best_val_dice == max(dice)
    for k, v in result.model.state_dict().items():
        torch.testing.assert_close(v.cpu(), result.best_state[k])
    # The kept model reproduces the best epoch's validation Dice.
    _, _, val_x, val_y = data
    pred, truth = predict_slices(result.model, val_x, batch_size=5) > 0.5, val_y.astype(bool)
    inter, denom = (pred & truth).sum((1, 2)), pred.sum((1, 2)) + truth.sum((1, 2))
    per_slice = np.where(denom == 0, 1.0, 2 * inter / np.maximum(denom, 1))
    assert per_slice.mean() == pytest.approx(result.best_val_dice, abs=1e-6)


def test_same_seed_same_history_on_cpu(data):
    config = TrainConfig(base=4, epochs=3, batch_size=8, lr=1e-2, seed=7, augment=True, device="cpu")
    torch.manual_seed(123)
    before = torch.rand(1)
    runs = [train_unet(*data, config) for _ in range(2)]
    after = torch.rand(1)
    for a, b in zip(runs[0].history, runs[1].history):
        assert {k: a[k] for k in DETERMINISTIC_KEYS} == {k: b[k] for k in DETERMINISTIC_KEYS}
    torch.manual_seed(123)
    assert torch.rand(1) == before and torch.rand(1) == after  # the caller's RNG stream is untouched
    other = train_unet(*data, replace(config, seed=8))
    assert [h["train_loss"] for h in other.history] != [h["train_loss"] for h in runs[0].history]


def test_memmap_inputs_and_channel_dim_masks(data, tmp_path):
    train_x, train_y, val_x, val_y = data
    mm = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float32, shape=train_x.shape)
    mm[:] = train_x
    mm.flush()
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    config = TrainConfig(base=4, epochs=1, batch_size=5, seed=0, augment=False, device="cpu")
    a = train_unet(mm, train_y[:, None].astype(bool), val_x, val_y, config)
    b = train_unet(train_x, train_y, val_x, val_y, config)
    assert a.history[0]["train_loss"] == b.history[0]["train_loss"]


def test_predict_slices_shape_range_and_mode():
    model = UNet(in_channels=3, base=4).train()
    x = np.random.default_rng(0).normal(size=(5, 3, 32, 64)).astype(np.float32)
    probs = predict_slices(model, x, batch_size=2)
    assert probs.shape == (5, 32, 64) and probs.dtype == np.float32
    assert np.all((probs >= 0) & (probs <= 1))
    assert model.training  # mode restored
    np.testing.assert_allclose(predict_slices(model, x, batch_size=5), probs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "x_shape, y_shape",
    [((4, 1, 30, 32), (4, 30, 32)), ((4, 1, 32, 32), (4, 32)), ((4, 1, 32, 32), (3, 32, 32)), ((1, 1, 32, 32), (1, 32, 32))],
)
def test_bad_shapes_are_refused(x_shape, y_shape):
    x, y = np.zeros(x_shape, np.float32), np.zeros(y_shape, np.uint8)
    good_x, good_y = np.zeros((4, 1, 32, 32), np.float32), np.zeros((4, 32, 32), np.uint8)
    with pytest.raises(ValueError):
        train_unet(x, y, good_x, good_y, TrainConfig(base=4, epochs=1, device="cpu"))


def test_same_seed_same_weights_and_the_callers_random_state_is_kept(data):
    import random

    config = TrainConfig(base=4, epochs=2, batch_size=8, lr=1e-2, seed=11, augment=True, device="cpu", threads=1)
    np.random.seed(5)
    random.seed(5)
    expected_np, expected_py = np.random.random(), random.random()
    np.random.seed(5)
    random.seed(5)
    runs = [train_unet(*data, config) for _ in range(2)]
    assert runs[0].best_state.keys() == runs[1].best_state.keys()
    assert all(torch.equal(runs[0].best_state[k], runs[1].best_state[k]) for k in runs[0].best_state)
    assert np.random.random() == expected_np and random.random() == expected_py  # the caller's streams go on untouched
    assert not torch.are_deterministic_algorithms_enabled()  # switched on for training only
    other = train_unet(*data, replace(config, seed=12))
    assert not all(torch.equal(other.best_state[k], v) for k, v in runs[0].best_state.items())
