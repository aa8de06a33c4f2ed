"""Region U-Nets behind config: the binary path is bit-identical to before, region training gives
3-channel models and checkpoints, domain randomisation is seeded per (seed, epoch, batch), training only."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
import pytest
import torch

from gbm_assets.lib.segment import train as train_module
from gbm_assets.lib.segment.checkpoint import (
    architecture,
    load_checkpoint,
    model_target,
    save_checkpoint,
)
from gbm_assets.lib.segment.dataset import SliceRows
from gbm_assets.lib.segment.regions import labels_to_regions
from gbm_assets.lib.segment.train import TrainConfig, predict_slices, train_unet
from gbm_assets.lib.segment.unet import UNet
from gbm_assets_tests.lib.segment.test_train import bright_discs

BINARY = TrainConfig(base=4, epochs=2, batch_size=8, lr=1e-2, seed=5, augment=True, dropout=0.1, device="cpu", threads=1)
GOLDEN_BINARY_WEIGHTS = {"AVX512": "3770c12b62277d0456eaf80eac18416abf4f26dbafadaac9f96a9c45498e2325"}.get(
    torch.backends.cpu.get_cpu_capability(), "4b88608f088c03ddff71fa9eaf7f9c8a66ee3a48b10242a36a9eaabfd1f3448c")
"""sha256 of BINARY's best weights on `discs()`, measured with the trainer of commit ce66006 (before region models).
Bits depend on the kernels torch picks for the CPU: on AVX-512 (an AMD EPYC, torch 2.13.0+cpu) ce66006's trainer and
this one both give the first; the second was measured on the earlier reference machines."""


def discs() -> tuple[np.ndarray, ...]:
    return bright_discs(16, seed=0) + bright_discs(8, seed=1)


def nested(y: np.ndarray) -> np.ndarray:
    """Canonical labels from 0/1 disc masks: edema rim (2), core (1) inside, enhancing (3) at the centre."""
    from scipy import ndimage

    out = y.astype(np.uint8) * 2
    core = np.stack([ndimage.binary_erosion(m, iterations=1) for m in y])
    out[core] = 1
    out[np.stack([ndimage.binary_erosion(m, iterations=2) for m in y])] = 3
    return out


def fingerprint(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].numpy().tobytes())
    return h.hexdigest()


def test_binary_weights_are_those_of_the_code_before_region_models():
    tx, ty, vx, vy = discs()
    result = train_unet(tx, ty, vx, vy, BINARY)
    assert fingerprint(result.best_state) == GOLDEN_BINARY_WEIGHTS
    # canonical labels instead of the 0/1 mask: a binary model trains on label > 0, the same weights
    same = train_unet(tx, nested(ty), vx, nested(vy), BINARY)
    keys = ("train_loss", "val_loss", "val_dice")
    assert fingerprint(same.best_state) == GOLDEN_BINARY_WEIGHTS
    assert [[h[k] for k in keys] for h in same.history] == [[h[k] for k in keys] for h in result.history]
    assert all(h["val_dice_whole_tumor"] == h["val_dice"] for h in result.history)  # one channel: the same Dice
    other = train_unet(tx, ty, vx, vy, replace(BINARY, seed=6))  # the fingerprint can fail
    assert fingerprint(other.best_state) != GOLDEN_BINARY_WEIGHTS


def test_region_training_gives_a_three_channel_model_and_checkpoint(tmp_path):
    tx, ty, vx, vy = discs()
    config = replace(BINARY, target="regions", epochs=3)
    result = train_unet(tx, nested(ty), vx, nested(vy), config)
    assert result.model.out_channels == 3 and result.best_state["head.weight"].shape[0] == 3
    assert 0 <= result.best_val_dice <= 1 and len(result.history) == 3
    # the whole-tumour channel is scored alone too, so binary and region models compare on the same region
    assert all(0 <= h["val_dice_whole_tumor"] <= 1 for h in result.history)
    assert any(h["val_dice_whole_tumor"] != h["val_dice"] for h in result.history)
    probs = predict_slices(result.model, vx)
    assert probs.shape == (len(vx), 3, 32, 32) and ((probs >= 0) & (probs <= 1)).all()
    arch = architecture(1, 4, 0.1, 3, "regions")
    path = save_checkpoint(tmp_path / "m.pt", result.best_state, arch, "flair")
    loaded = load_checkpoint(path)
    assert loaded.out_channels == 3 and model_target(loaded) == "regions"
    np.testing.assert_array_equal(predict_slices(loaded, vx), predict_slices(result.model.cpu(), vx))
    with pytest.raises(ValueError, match="target"):
        train_unet(tx, ty, vx, vy, replace(BINARY, target="multi"))


def test_a_binary_checkpoint_keeps_its_old_architecture_and_old_ones_load_as_binary(tmp_path):
    assert architecture(3, 4, 0.3) == {"in_channels": 3, "base": 4, "dropout": 0.3}  # same bytes as before regions
    model = UNet(3, base=4)
    path = save_checkpoint(tmp_path / "old.pt", model.state_dict(), {"in_channels": 3, "base": 4, "dropout": 0.3}, "stack")
    loaded = load_checkpoint(path)
    assert loaded.out_channels == 1 and model_target(loaded) == "binary"
    with pytest.raises(ValueError, match="target"):
        architecture(3, 4, 0.3, 3, "multi")


def spy_on_batches(monkeypatch, name: str) -> list[tuple[int, int, int, int]]:
    """Record (seed, epoch, batch, slices) of every call the trainer makes to its per-batch hook `name`."""
    seen, real = [], getattr(train_module, name)

    def spy(xb, yb, seed, epoch, batch, *rest):
        seen.append((seed, epoch, batch, len(xb)))
        return real(xb, yb, seed, epoch, batch, *rest)

    monkeypatch.setattr(train_module, name, spy)
    return seen


def test_randomisation_is_seeded_per_epoch_and_batch_and_touches_training_batches_only(monkeypatch):
    tx, ty, vx, vy = discs()
    labels, seen = nested(ty), spy_on_batches(monkeypatch, "randomised_batch")
    config = replace(BINARY, randomise=True, epochs=2)
    first = train_unet(tx, labels, vx, nested(vy), config)
    batches = len(tx) // config.batch_size
    assert seen[: 2 * batches] == [(5, e, b, 8) for e in (1, 2) for b in range(batches)]  # never a validation batch
    again = train_unet(tx, labels, vx, nested(vy), config)
    assert fingerprint(again.best_state) == fingerprint(first.best_state)  # deterministic
    plain = train_unet(tx, labels, vx, nested(vy), replace(config, randomise=False))
    assert fingerprint(plain.best_state) != fingerprint(first.best_state)  # and it does change the batches


def test_slice_rows_read_canonical_labels_or_the_whole_tumour(tmp_path):
    labels = nested(bright_discs(6, seed=2)[1])
    np.save(tmp_path / "y.npy", labels)
    rows = np.array([4, 0, 2])
    as_labels, as_mask = SliceRows([(tmp_path / "y.npy", rows)], "labels"), SliceRows([(tmp_path / "y.npy", rows)], "y")
    assert as_labels.dtype == np.uint8 and as_mask.dtype == bool
    np.testing.assert_array_equal(as_labels[:], labels[rows])
    np.testing.assert_array_equal(as_mask[:], labels[rows] > 0)
    assert labels_to_regions(as_labels[:], axis=1).shape == (3, 3, 32, 32)
    with pytest.raises(ValueError, match="kind"):
        SliceRows([(tmp_path / "y.npy", rows)], "z")
