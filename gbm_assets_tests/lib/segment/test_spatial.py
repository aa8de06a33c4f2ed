"""Random zoom and rotation of training slices: images and labels move together, labels stay labels, draws are
seeded per (seed, epoch, batch) and touch training batches only."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from gbm_assets.lib.segment.spatial import SpatialConfig, affine_draws, random_affine
from gbm_assets.lib.segment.train import train_unet
from gbm_assets_tests.lib.segment.test_region_training import BINARY, discs, fingerprint, nested, spy_on_batches


def square_batch(n: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """Two identical image channels (1 inside a 16-pixel square) and canonical labels (3 inside it)."""
    x, y = torch.zeros(n, 2, 64, 64), torch.zeros(n, 1, 64, 64)
    x[:, :, 20:36, 24:40], y[:, :, 20:36, 24:40] = 1.0, 3.0
    return x, y


def test_nothing_moves_when_no_slice_is_drawn():
    x, y = square_batch()
    moved, labels = random_affine(x, y, np.random.default_rng(0), SpatialConfig(p=0.0))
    torch.testing.assert_close(moved, x)
    assert torch.equal(labels, y)


def test_images_and_labels_move_together_and_labels_stay_labels():
    x, y = square_batch()
    moved, labels = random_affine(x, y, np.random.default_rng(3), SpatialConfig(p=1.0))
    assert labels.shape == y.shape and labels.dtype == y.dtype
    assert set(labels.unique().tolist()) <= {0.0, 3.0}  # nearest neighbour: no fractional labels
    for image, label in zip(moved, labels, strict=True):
        inside, lesion = image[0] > 0.5, label[0] > 0
        assert not torch.equal(lesion, y[0, 0] > 0)  # every slice moved
        assert (inside ^ lesion).float().mean() < 0.02  # the bright square is where its label went
    torch.testing.assert_close(moved[:, 0], moved[:, 1])  # every channel of a slice moves alike


def test_zoom_scales_the_lesion_area_within_its_range():
    x, y = square_batch(64)
    _, labels = random_affine(x, y, np.random.default_rng(1), SpatialConfig(p=1.0, zoom=1.4, rotate_deg=0.0))
    ratio = (labels > 0).flatten(1).sum(1).float() / (y > 0).flatten(1).sum(1).float()
    assert ratio.min() >= 1 / 1.4**2 - 0.1 and ratio.max() <= 1.4**2 + 0.1
    assert ratio.min() < 0.8 and ratio.max() > 1.3  # both ways


def test_labels_of_shape_n_h_w_keep_their_shape():
    x, y = square_batch()
    _, labels = random_affine(x, y[:, 0].to(torch.uint8), np.random.default_rng(0), SpatialConfig(p=1.0))
    assert labels.shape == (6, 64, 64) and labels.dtype == torch.uint8


def test_draws_are_reproducible_and_about_p_of_slices_move():
    first, again = affine_draws(np.random.default_rng(7), 400), affine_draws(np.random.default_rng(7), 400)
    np.testing.assert_array_equal(first, again)
    identity = np.all(first == np.array([[1, 0, 0], [0, 1, 0]], dtype=np.float32), axis=(1, 2))
    assert 0.4 < identity.mean() < 0.6


@pytest.mark.parametrize("bad", [{"p": 1.5}, {"zoom": 0.8}, {"rotate_deg": -1.0}])
def test_bad_settings_are_refused(bad):
    with pytest.raises(ValueError):
        SpatialConfig(**bad)


def test_the_trainer_moves_training_batches_only_and_stays_deterministic(monkeypatch):
    tx, ty, vx, vy = discs()
    labels, seen = nested(ty), spy_on_batches(monkeypatch, "spatial_batch")
    config = replace(BINARY, spatial=True, epochs=2)
    first = train_unet(tx, labels, vx, nested(vy), config)
    batches = len(tx) // config.batch_size
    assert seen == [(5, e, b, 8) for e in (1, 2) for b in range(batches)]  # never a validation batch
    assert fingerprint(train_unet(tx, labels, vx, nested(vy), config).best_state) == fingerprint(first.best_state)
    plain = train_unet(tx, labels, vx, nested(vy), replace(config, spatial=False))
    assert fingerprint(plain.best_state) != fingerprint(first.best_state)
