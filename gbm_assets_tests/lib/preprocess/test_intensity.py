"""Intensity scaling per sequence: the percentile scaling, its record in each preprocessed folder and in each
checkpoint, and the comparison that keeps a model from being fed volumes scaled otherwise than it learnt."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gbm_assets.lib.preprocess.intensity import (
    INTENSITY_FILE,
    PERCENTILE_TOP,
    common_intensity,
    intensity_problem,
    normalize_percentile,
    read_intensity,
)
from gbm_assets.lib.preprocess.volumes import (
    PreprocessConfig,
    load_preprocessed,
    preprocess_patient,
    save_preprocessed,
)
from gbm_assets.lib.segment.checkpoint import architecture, checkpoint_intensity, save_checkpoint
from gbm_assets.lib.segment.unet import UNet
from gbm_assets_tests.lib.preprocess import RAS_1MM, synthetic_case

PCT = {"t1": "zscore", "t1c": "zscore", "t2": "percentile", "flair": "percentile"}


def test_percentile_scaling_maps_median_and_99th_percentile_and_leaves_outside_zero():
    rng = np.random.default_rng(0)
    image = rng.gamma(2.0, 50.0, (20, 20, 10))
    brain = np.zeros(image.shape, bool)
    brain[2:18, 2:18, 1:9] = True
    out = normalize_percentile(image, brain, (0.0, 100.0))
    median, top = np.percentile(out[brain], (50, 99))
    assert median == pytest.approx(0, abs=1e-5) and top == pytest.approx(PERCENTILE_TOP, abs=1e-4)
    assert out.dtype == np.float32 and not out[~brain].any()
    # a bright lesion filling a tenth of the brain moves the z-score scale; the percentile scale much less
    lesion = brain & (np.arange(20)[:, None, None] < 5)
    lit = np.where(lesion, image * 3, image)
    healthy = brain & ~lesion
    assert abs(np.median(normalize_percentile(lit, brain)[healthy]) - np.median(normalize_percentile(image, brain)[healthy])) < 0.3
    assert not normalize_percentile(image, np.zeros_like(brain)).any()
    assert not normalize_percentile(np.full(image.shape, 7.0), brain).any()  # a flat brain: zeros, no division by 0


def test_preprocess_scales_the_chosen_sequences_and_records_it(tmp_path):
    images, labels = synthetic_case((40, 40, 6), RAS_1MM, seed=2)
    config = PreprocessConfig(size=32, percentile_scaled=["FLAIR", "t2"])  # aliases and lists, as run config gives them
    assert config.percentile_scaled == ("t2", "flair")
    p = preprocess_patient(images, labels, config)
    assert p.intensity == PCT
    for seq, channel in zip(p.sequences, p.images):
        inside = channel[p.brain]
        if seq in ("t2", "flair"):
            assert np.median(inside) == pytest.approx(0, abs=1e-4) and np.percentile(inside, 99) == pytest.approx(PERCENTILE_TOP, abs=0.05)
        else:
            assert inside.mean() == pytest.approx(0, abs=1e-4) and inside.std() == pytest.approx(1, abs=1e-3)
    out = save_preprocessed(p, tmp_path / "p")
    assert json.loads((out / INTENSITY_FILE).read_text()) == PCT
    assert load_preprocessed(out).intensity == PCT == read_intensity(out)
    assert PreprocessConfig().percentile_scaled == ("t2", "flair")  # the default: FLAIR and T2, T1 and T1c z-scored
    zscored = save_preprocessed(preprocess_patient(images, labels, PreprocessConfig(size=32, percentile_scaled=())), tmp_path / "z")
    assert set(read_intensity(zscored).values()) == {"zscore"}
    (zscored / INTENSITY_FILE).unlink()  # a folder written before the record existed: z-scored, as all were
    assert read_intensity(zscored) == dict.fromkeys(("t1", "t1c", "t2", "flair"), "zscore")
    (zscored / INTENSITY_FILE).write_text('{"flair": "minmax"}')
    with pytest.raises(ValueError, match="intensity.json: unknown intensity scaling"):
        read_intensity(zscored)
    with pytest.raises(KeyError, match="unknown sequence 'dwi'"):
        PreprocessConfig(percentile_scaled=("dwi",))


def test_checkpoints_carry_the_scaling_they_were_trained_on(tmp_path):
    arch = architecture(2, 4, 0.0)
    state = UNet(arch["in_channels"], arch["base"], arch["dropout"]).state_dict()
    save_checkpoint(tmp_path / "new.pt", state, arch, "flair", {"flair": "percentile"})
    save_checkpoint(tmp_path / "old.pt", state, arch, "stack")  # written before the record: z-scored throughout
    assert checkpoint_intensity(tmp_path / "new.pt") == {"flair": "percentile"}
    assert checkpoint_intensity(tmp_path / "old.pt") == {"t1": "zscore", "t2": "zscore", "flair": "zscore"}


def test_training_patients_must_share_one_scaling():
    same = {"cohort a, patient 1": PCT, "cohort b, patient 2": {**PCT, "t1c": "percentile"}}
    assert common_intensity(same, ("t2", "flair")) == {"t2": "percentile", "flair": "percentile"}  # T1c is not an input
    assert common_intensity({}, ("t1",)) == {"t1": "zscore"}
    mixed = {**same, "cohort c, patient 3": {**PCT, "flair": "zscore"}}
    with pytest.raises(ValueError, match=r"different intensity scalings of t2, flair .*cohort a, patient 1: flair=percentile.*"
                                         r"cohort c, patient 3: flair=zscore"):  # fmt: skip
        common_intensity(mixed, ("t2", "flair"))


def test_a_patient_scaled_otherwise_than_the_model_is_named_with_its_folder(tmp_path):
    images, labels = synthetic_case((40, 40, 6), RAS_1MM, seed=3)
    folders = {}
    for name, config in (("p1", PreprocessConfig(size=32)), ("p2", PreprocessConfig(size=32, percentile_scaled=()))):
        folders[f"patient {name}"] = save_preprocessed(preprocess_patient(images, labels, config), tmp_path / name)
    model = {"t2": "percentile", "flair": "percentile"}
    assert intensity_problem(model, {"patient p1": folders["patient p1"]}) is None
    assert intensity_problem({"t1": "zscore"}, folders) is None  # a T1 model does not care how FLAIR was scaled
    problem = intensity_problem(model, folders)
    assert problem.startswith("1 of 2 patients were preprocessed with another intensity scaling than the model was trained on "
                              "(flair=percentile, t2=percentile)")  # fmt: skip
    assert f"patient p2 ({folders['patient p2']}): t2: zscore, the model percentile; flair: zscore, the model percentile" in problem
    assert problem.endswith("percentile_scaled: [t2, flair]")
