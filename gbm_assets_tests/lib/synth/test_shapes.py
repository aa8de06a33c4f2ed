"""Varied tumour phantoms: seeded, varied (multifocal, with and without necrosis, edema of every
extent), inside the brain, and without touching what `synth_patient` draws for a seed."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage

from gbm_assets.lib.synth.anatomy import EDEMA, ENHANCING, NECROSIS, NONENH, Tumour
from gbm_assets.lib.synth.phantom import SynthOptions, synth_patient
from gbm_assets.lib.synth.shapes import ShapeRanges, merge_tumours, synth_varied_patient

SMALL = SynthOptions(shape=(64, 64, 32), spacing=(3.0, 3.0, 5.0))
# synth_patient(11, "Proneural", COARSE) as the demo's generator draws it (labels sha256 and counts),
# measured before lib/synth/shapes.py existed: the new generator must leave it as it was.
COARSE = SynthOptions(shape=(48, 48, 24), spacing=(4.0, 4.0, 20 / 3))
GOLDEN_LABELS_SHA256 = "9f82ee79b0197e53dd83f9a71756f1945040fc9756a0cd2d43611b92054bfbcf"
GOLDEN_COUNTS = [54830, 109, 314, 43]


@pytest.fixture(scope="module")
def patients():
    return [synth_varied_patient(seed, SMALL) for seed in range(12)]


def test_existing_phantom_generator_is_unchanged():
    p = synth_patient(11, "Proneural", COARSE)
    synth_varied_patient(11, COARSE)  # drawing a varied patient in between changes nothing either
    again = synth_patient(11, "Proneural", COARSE)
    assert hashlib.sha256(p.labels.tobytes()).hexdigest() == GOLDEN_LABELS_SHA256
    assert np.bincount(p.labels.ravel()).tolist() == GOLDEN_COUNTS
    assert np.array_equal(p.labels, again.labels) and all(np.array_equal(p.images[s], again.images[s]) for s in p.images)


def test_same_seed_same_patient_other_seed_differs(patients):
    again = synth_varied_patient(0, SMALL)
    assert np.array_equal(again.labels, patients[0].labels)
    assert all(np.array_equal(again.images[s], patients[0].images[s]) for s in again.images)
    assert not np.array_equal(patients[0].labels, patients[1].labels)
    assert not np.array_equal(synth_varied_patient(0, SMALL).labels, synth_patient(0, "Classical", SMALL).labels)


def test_tumours_are_inside_the_brain_with_every_label_and_volumes_recorded(patients):
    voxel_ml = float(np.prod(SMALL.spacing)) / 1000
    for p in patients:
        assert set(np.unique(p.labels)) == {0, 1, 2, 3}, p.seed
        assert not ((p.labels > 0) & (p.tissues == 0)).any()
        assert p.params["whole_tumor_ml"] == pytest.approx((p.labels > 0).sum() * voxel_ml)
        assert all(np.isfinite(img).all() and img.min() >= 0 for img in p.images.values())


def test_shapes_vary_across_seeds(patients):
    edema_share = [p.params["edema_ml"] / p.params["whole_tumor_ml"] for p in patients]
    assert min(edema_share) < 0.2 and max(edema_share) > 0.6  # from a thin rim to vast edema
    volumes = [p.params["whole_tumor_ml"] for p in patients]
    assert max(volumes) > 5 * min(volumes)
    assert {p.params["necrosis"] for p in patients} == {True, False}
    assert max(p.params["n_foci"] for p in patients) > 1


def test_multifocal_and_necrosis_switches():
    ranges = replace(ShapeRanges(), p_multifocal=1.0, max_foci=3, radius_mm=(15.0, 25.0), edema_mm=(0.5, 1.0))
    cores = [ndimage.label(np.isin(synth_varied_patient(s, SMALL, ranges).labels, (1, 3)))[1] for s in range(4)]
    assert max(cores) > 1  # separate tumour cores
    solid = [synth_varied_patient(s, SMALL, replace(ShapeRanges(), p_no_necrosis=1.0)) for s in range(3)]
    assert not any(p.params["necrosis"] for p in solid) and all((p.labels == 1).any() for p in solid)
    necrotic = [synth_varied_patient(s, SMALL, replace(ShapeRanges(), p_no_necrosis=0.0, radius_mm=(15.0, 25.0))) for s in range(3)]
    assert all(p.params["necrosis"] for p in necrotic)


def test_merge_keeps_the_higher_class_and_its_fields():
    def tumour(start, cls, value):
        classes = np.full((4, 4, 4), cls, np.uint8)
        field = np.full((4, 4, 4), value, np.float32)
        return Tumour(tuple(slice(s, s + 4) for s in start), classes, field, field, field)

    merged = merge_tumours([tumour((0, 0, 0), EDEMA, 1.0), tumour((2, 2, 2), ENHANCING, 2.0), tumour((6, 0, 0), NONENH, 3.0)], (10, 10, 10))
    assert [(s.start, s.stop) for s in merged.box] == [(0, 10), (0, 6), (0, 6)]
    assert merged.classes[3, 3, 3] == ENHANCING and merged.uptake[3, 3, 3] == 2.0  # overlap: enhancing wins
    assert merged.classes[0, 0, 0] == EDEMA and merged.edema_weight[0, 0, 0] == 1.0
    assert merged.classes[7, 1, 1] == NONENH and merged.texture[7, 1, 1] == 3.0
    assert merged.classes[9, 5, 5] == 0 and NECROSIS not in merged.classes


def test_lps_flips_like_the_phantom():
    ras, lps = synth_varied_patient(4, SMALL), synth_varied_patient(4, replace(SMALL, orientation="LPS"))
    assert np.array_equal(lps.labels, ras.labels[::-1, ::-1]) and np.array_equal(lps.images["t1"], ras.images["t1"][::-1, ::-1])
