"""Domain randomisation: seeded, labels untouched, output finite and on the input's scale, and each
transform measurably changes what it should (and nothing when its probability is 0)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage, stats

from gbm_assets.lib.contract import SEQUENCES
from gbm_assets.lib.preprocess.intensity import PERCENTILE_POINTS, SCALERS
from gbm_assets.lib.preprocess.volumes import normalize
from gbm_assets.lib.synth.phantom import SynthOptions, synth_patient
from gbm_assets.lib.synth.randomise import (
    RandomiseConfig,
    add_noise,
    bias_field,
    class_intensities,
    class_map,
    degrade_resolution,
    gamma,
    lesion_border,
    mix_sequences,
    randomise_batch,
    randomise_slice,
    restore_scale,
)

NONE = RandomiseConfig(p_intensity=0, p_bias=0, p_gamma=0, p_contrast=0, p_resolution=0, p_noise=0, p_border=0)
ALL = RandomiseConfig(p_intensity=1, p_bias=1, p_gamma=1, p_contrast=1, p_resolution=1, p_noise=1, p_border=1)


def phantom_slices(scalers: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x (6, C, H, W), labels, tissues) of six axial phantom slices through the tumour, each sequence scaled in the
    brain by `scalers[sequence]` as `training_slices` stores them."""
    p = synth_patient(5, "Classical", SynthOptions(shape=(64, 64, 32), spacing=(3.0, 3.0, 5.0)))
    brain = p.tissues > 0
    vol = np.stack([scalers[s](p.images[s], brain) for s in SEQUENCES])  # (C, X, Y, Z)
    z = np.argsort((p.labels > 0).sum(axis=(0, 1)))[-6:]
    x = np.ascontiguousarray(vol[..., z].transpose(3, 0, 1, 2)).astype(np.float32)
    return x, np.ascontiguousarray(p.labels[..., z].transpose(2, 0, 1)), np.ascontiguousarray(p.tissues[..., z].transpose(2, 0, 1))


@pytest.fixture(scope="module")
def batch():
    """Six axial phantom slices through the tumour, z-scored in the brain."""
    return phantom_slices(dict.fromkeys(SEQUENCES, normalize))


def test_seeded_labels_untouched_finite_and_on_the_input_scale(batch):
    x, labels, _ = batch
    before = labels.copy()
    a, la = randomise_batch(np.random.default_rng(1), x, labels, ALL)
    b, _ = randomise_batch(np.random.default_rng(1), x, labels, ALL)
    c, _ = randomise_batch(np.random.default_rng(2), x, labels, ALL)
    assert np.array_equal(a, b) and not np.allclose(a, c)
    assert la is labels and np.array_equal(labels, before)
    assert a.shape == x.shape and a.dtype == np.float32 and np.isfinite(a).all()
    brain = (x != 0).any(axis=1)
    for i in range(len(x)):
        assert np.all(a[i][:, ~brain[i]] == 0)
        for ch in range(x.shape[1]):
            inside, orig = a[i, ch][brain[i]], x[i, ch][brain[i]]
            assert inside.mean() == pytest.approx(orig.mean(), abs=1e-4)
            assert inside.std() == pytest.approx(orig.std(), rel=1e-3)
            assert np.abs(inside - orig.mean()).max() <= 8 * orig.std()  # clipped at percentiles as preprocessing does
    assert not np.allclose(a, x, atol=0.1)


SCALINGS = tuple("percentile" if s in ("t2", "flair") else "zscore" for s in SEQUENCES)  # the platform's default


@pytest.fixture(scope="module")
def scaled_batch():
    """The same six slices scaled as `preprocessed_volumes` scales them by default: FLAIR and T2 by their brain median
    and 99th percentile, T1 and T1c z-scored."""
    x, labels, _ = phantom_slices({s: SCALERS[k] for s, k in zip(SEQUENCES, SCALINGS)})
    return x, labels


def _percentiles(a: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """(slices, channels, 2): each slice's and channel's brain median and 99th percentile."""
    return np.array([[np.percentile(a[i, c][brain[i]], PERCENTILE_POINTS) for c in range(a.shape[1])] for i in range(len(a))])


def test_each_channel_keeps_the_scaling_it_carries(scaled_batch):
    """Randomised, a percentile-scaled channel keeps each slice's brain median and 99th percentile (where inference's
    percentile scaling puts a case's brightest tissue, whatever its lesion's contrast) and a z-scored one its mean and
    SD; restored as z-scores instead, the percentile-scaled channels' 99th percentile wanders off."""
    x, labels = scaled_batch
    brain = (x != 0).any(axis=1)
    kept, _ = randomise_batch(np.random.default_rng(3), x, labels, ALL, scalings=SCALINGS)
    assert np.all(kept[:, :, ~brain.any(axis=0)] == 0) and np.isfinite(kept).all()
    pct = [c for c, k in enumerate(SCALINGS) if k == "percentile"]
    zsc = [c for c, k in enumerate(SCALINGS) if k == "zscore"]
    np.testing.assert_allclose(_percentiles(kept, brain)[:, pct], _percentiles(x, brain)[:, pct], atol=1e-3)
    for i in range(len(x)):
        for c in zsc:
            assert kept[i, c][brain[i]].mean() == pytest.approx(x[i, c][brain[i]].mean(), abs=1e-4)
            assert kept[i, c][brain[i]].std() == pytest.approx(x[i, c][brain[i]].std(), rel=1e-3)
    as_z, _ = randomise_batch(np.random.default_rng(3), x, labels, ALL)
    drift = np.abs(_percentiles(as_z, brain)[:, pct, 1] - _percentiles(x, brain)[:, pct, 1])
    assert drift.max() > 0.5, drift
    np.testing.assert_array_equal(as_z[:, zsc], kept[:, zsc])  # the same draws: only the restoration differs


def test_restore_scale_refuses_an_unknown_scaling_and_a_wrong_count(scaled_batch):
    x, labels = scaled_batch
    brain = (x[0] != 0).any(axis=0)
    with pytest.raises(ValueError, match="unknown intensity scaling 'minmax'"):
        restore_scale(x[0, 0], x[0, 0], brain, "minmax")
    with pytest.raises(ValueError, match="2 scalings for 4 channels"):
        randomise_slice(np.random.default_rng(0), x[0], labels[0], ALL, scalings=("zscore", "percentile"))


def test_nothing_applied_keeps_the_image(batch):
    x, labels, _ = batch
    out, _ = randomise_batch(np.random.default_rng(0), x, labels, NONE)
    brain = (x != 0).any(axis=1)
    assert np.corrcoef(out[:, 0][brain], x[:, 0][brain])[0, 1] > 0.99  # only the slice-level re-clipping


def _class_means(ch, classes):
    n = classes.max() + 1
    return np.bincount(classes.ravel(), ch.ravel(), n) / np.maximum(np.bincount(classes.ravel(), minlength=n), 1)


def test_class_intensities_redraw_each_class_and_keep_its_texture(batch):
    x, labels, tissue = batch
    u = np.clip(x[0] - x[0].min(axis=(1, 2), keepdims=True), 0, None) * ((x[0] != 0).any(axis=0))
    brain = (x[0] != 0).any(axis=0)
    classes = class_map(u, labels[0], brain, tissue=tissue[0])
    k = len(np.unique(tissue[0][(labels[0] == 0) & brain]))  # healthy tissues in this slice
    assert set(np.unique(classes[(labels[0] == 0) & brain])) == set(range(1, k + 1))
    assert set(np.unique(classes[labels[0] > 0])) == {k + v for v in np.unique(labels[0][labels[0] > 0])}
    assert set(np.unique(class_map(u, labels[0], brain, clusters=3)[(labels[0] == 0) & brain])) == {1, 2, 3}
    cfg = replace(ALL, mix=(1.0, 1.0), texture_gain=(1.0, 1.0), edge_sigma_px=(0.5, 0.5))
    out = class_intensities(np.random.default_rng(0), u, classes, cfg)
    before, after = _class_means(u[1], classes)[1:], _class_means(out[1], classes)[1:]
    assert np.abs(np.diff(after) - np.diff(before)).max() > 0.1  # contrasts between classes redrawn
    interior = ndimage.binary_erosion(classes == 3, iterations=2)  # white matter, away from class borders
    assert np.corrcoef(out[1][interior], u[1][interior])[0, 1] > 0.9  # texture kept (gain 1)
    assert np.all(out[:, ~brain] == u[:, ~brain])


def test_lesion_contrast_keeps_the_sign_of_each_tumour_label_and_varies_its_strength(batch):
    """Edema stays FLAIR-bright and enhancing tumour T1c-bright under class_intensities (faint or strong);
    drawn like healthy tissue (lesion_contrast None) the sign flips in some draws, which is what it prevents."""
    x, labels, tissue = batch
    i = next(i for i in range(len(x)) if {2, 3} <= set(np.unique(labels[i])))
    x, labels, tissue = x[i:], labels[i:], tissue[i:]
    brain = (x[0] != 0).any(axis=0)
    u = np.clip(x[0] - x[0].min(axis=(1, 2), keepdims=True), 0, None) * brain
    classes = class_map(u, labels[0], brain, tissue=tissue[0])
    tumour = brain & (labels[0] > 0)
    healthy = brain & ~tumour
    cfg = replace(ALL, mix=(1.0, 1.0), edge_sigma_px=(0.5, 0.5))

    def contrasts(out, label):  # per sequence: the label's mean minus the healthy brain's
        return np.array([out[c][labels[0] == label].mean() - out[c][healthy].mean() for c in range(len(out))])

    flair, t1c = SEQUENCES.index("flair"), SEQUENCES.index("t1c")
    before = {2: contrasts(u, 2)[flair], 3: contrasts(u, 3)[t1c]}
    assert before[2] > 0 and before[3] > 0  # the phantom: edema FLAIR-bright, enhancing T1c-bright
    kept = {2: [], 3: []}
    free = {2: [], 3: []}
    for seed in range(40):
        out = class_intensities(np.random.default_rng(seed), u, classes, cfg, tumour)
        kept[2].append(contrasts(out, 2)[flair])
        kept[3].append(contrasts(out, 3)[t1c])
        loose = class_intensities(np.random.default_rng(seed), u, classes, replace(cfg, lesion_contrast=None), tumour)
        free[2].append(contrasts(loose, 2)[flair])
        free[3].append(contrasts(loose, 3)[t1c])
    for label in (2, 3):
        assert min(kept[label]) > 0, f"label {label} lost its contrast sign"
        assert max(kept[label]) / min(kept[label]) > 3  # faint and strong contrasts both drawn
        assert min(free[label]) < 0  # without the setting the sign is free
    with pytest.raises(ValueError, match="lesion_contrast"):
        RandomiseConfig(lesion_contrast=(0.0, 1.0))


def _disk_slice():
    """Two sequences on a 64 x 64 brain: edema (radius 14) bright in the first, dark in the second,
    around an enhancing core (radius 6); healthy brain flat at 0.5."""
    yy, xx = np.mgrid[:64, :64]
    r = np.hypot(yy - 32, xx - 32)
    labels = np.where(r < 6, 3, np.where(r < 14, 2, 0)).astype(np.uint8)
    brain = r < 30
    u = np.where(brain, 0.5, 0.0)[None].repeat(2, 0).astype(np.float32)
    u[0][labels == 2], u[1][labels == 2] = 0.9, 0.3
    return u, labels, brain, r


def test_lesion_border_fades_the_edema_and_adds_an_unlabelled_halo_relative_to_it():
    u, labels, brain, r = _disk_slice()
    cfg = RandomiseConfig(edema_fade=(0.6, 0.6), halo_contrast=(0.3, 0.3), halo_width_px=(3.0, 3.0))
    out = lesion_border(np.random.default_rng(0), u, labels, brain, cfg)
    assert np.array_equal(out, lesion_border(np.random.default_rng(0), u, labels, brain, cfg))
    ring = lambda lo, hi: (r >= lo) & (r < hi)
    for ch, contrast in ((0, 0.4), (1, -0.2)):  # the halo follows each sequence's own edema contrast, either sign
        edge = (out[ch][ring(13, 14) & (labels == 2)].mean() - 0.5) / contrast
        deep = (out[ch][ring(7, 8)].mean() - 0.5) / contrast
        halo = (out[ch][ring(14, 15) & (labels == 0)].mean() - 0.5) / contrast
        far = out[ch][ring(24, 30)].mean() - 0.5
        assert 0.5 < edge < 0.75 and deep > 0.85  # labelled edema keeps most of its contrast
        assert 0.1 < halo < 0.3 and abs(far) < 0.05 * abs(contrast)  # faint unlabelled halo, gone further out
        assert edge > halo  # the label's edge: brighter than anything unlabelled
    assert np.array_equal(out[:, labels == 3], u[:, labels == 3]) and np.all(out[:, ~brain] == 0)
    plain = lesion_border(np.random.default_rng(0), u, labels, brain, replace(cfg, edema_fade=None, halo_contrast=(0.0, 0.0)))
    assert np.allclose(plain, u)  # nothing to add: the image is unchanged
    no_edema = np.where(labels == 2, 0, labels)
    assert np.array_equal(lesion_border(np.random.default_rng(0), u, no_edema, brain, cfg), u)


def test_bias_field_is_smooth_and_multiplicative():
    u = np.ones((2, 64, 64), np.float32)
    out = bias_field(np.random.default_rng(0), u, replace(ALL, bias_amplitude=0.5))
    assert out.std() > 0.02 and out.min() > 0
    step = np.abs(np.diff(out, axis=-1)).mean()
    assert step < 0.1 * out.std()  # low frequency: neighbours differ far less than the field varies
    assert not np.allclose(out[0], out[1])  # one field per sequence


def test_gamma_is_monotone_and_changes_contrast():
    ramp = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (3, 64, 1))
    brain = np.ones((64, 64), bool)
    out = gamma(np.random.default_rng(3), ramp, brain, replace(ALL, gamma_log_std=0.5))
    for ch in out:
        assert np.all(np.diff(ch[0]) >= 0) and not np.allclose(ch, ramp[0], atol=0.02)


def test_mix_sequences_changes_the_contrast_between_sequences():
    rng = np.random.default_rng(0)
    u = rng.uniform(0, 1, (3, 48, 48)).astype(np.float32)  # independent sequences
    brain = np.ones((48, 48), bool)
    mixed = mix_sequences(np.random.default_rng(1), u, brain, replace(ALL, channel_mix=0.5, contrast_log_std=0.0))
    before, after = np.corrcoef(u.reshape(3, -1)), np.corrcoef(mixed.reshape(3, -1))
    assert np.abs(after - before)[~np.eye(3, dtype=bool)].max() > 0.1 and mixed.min() >= 0
    stretched = mix_sequences(np.random.default_rng(1), u, brain, replace(ALL, channel_mix=0.0, contrast_log_std=0.5))
    assert np.allclose(np.corrcoef(stretched.reshape(3, -1)), before, atol=0.05)  # no mixing: sequences stay independent
    assert np.abs(stretched.std(axis=(1, 2)) / u.std(axis=(1, 2)) - 1).max() > 0.1  # but each one's contrast changed
    one = mix_sequences(np.random.default_rng(1), u[:1], brain, ALL)  # one sequence: stretch only
    assert stats.spearmanr(one.ravel(), u[0].ravel())[0] > 0.99


def test_degrade_resolution_removes_fine_detail_and_keeps_the_mean():
    rng = np.random.default_rng(0)
    u = rng.uniform(0, 1, (2, 64, 64)).astype(np.float32)
    out = degrade_resolution(np.random.default_rng(1), u, replace(ALL, resolution_factor=(2.0, 3.0)))
    assert out.shape == u.shape
    grad = lambda a: np.abs(np.diff(a, axis=-1)).mean()
    assert grad(out) < 0.5 * grad(u)
    assert out.mean() == pytest.approx(u.mean(), abs=0.02)


@pytest.mark.parametrize("rician", [0.0, 1.0])
def test_noise_adds_the_drawn_std_and_rician_is_positive(rician):
    flat = np.full((2, 64, 64), 0.5, np.float32)
    cfg = replace(ALL, noise_std=(0.05, 0.05), rician_share=rician)
    out = add_noise(np.random.default_rng(0), flat, cfg)
    assert out.std(axis=(1, 2)) == pytest.approx([0.05, 0.05], rel=0.1)
    dark = add_noise(np.random.default_rng(0), np.zeros_like(flat), cfg)
    assert (dark.min() >= 0) == bool(rician)  # Rician magnitude never negative; Gaussian is
    assert (dark.mean() > 0.02) == bool(rician)  # Rician noise floor on zero signal


def test_bad_config_and_shapes_raise(batch):
    x, labels, _ = batch
    with pytest.raises(ValueError, match="probabilities"):
        RandomiseConfig(p_noise=1.5)
    with pytest.raises(ValueError, match="ranges"):
        RandomiseConfig(resolution_factor=(0.5, 2.0))
    with pytest.raises(ValueError, match="halo_contrast"):
        RandomiseConfig(halo_contrast=(0.2, 1.5))
    with pytest.raises(ValueError, match="halo_contrast"):
        RandomiseConfig(edema_fade=(0.8, 0.5))
    with pytest.raises(ValueError, match="expected x"):
        randomise_batch(np.random.default_rng(0), x, labels[:, :10])
    empty = np.zeros((1, 4, 32, 32), np.float32)  # a slice without brain passes through
    assert np.array_equal(randomise_batch(np.random.default_rng(0), empty, np.zeros((1, 32, 32), np.uint8), ALL)[0], empty)
