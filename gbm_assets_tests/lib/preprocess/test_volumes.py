"""Volume preprocessing: orientation, resampling, crop/pad, normalisation, the map back to native."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from gbm_assets.lib.contract import LabelError, region_mask
from gbm_assets.lib.preprocess.grid import (
    NativeTransform,
    crop_or_pad,
    from_ras,
    reorient_to_ras,
    to_native,
)
from gbm_assets.lib.preprocess.volumes import (
    PreprocessConfig,
    load_preprocessed,
    normalize,
    preprocess_patient,
    read_case,
    save_preprocessed,
)
from gbm_assets_tests.conftest import shared_case
from gbm_assets_tests.lib.preprocess import (
    LAS_ANISO,
    LPS_1MM,
    PERMUTED,
    RAS_1MM,
    dice,
    synthetic_case,
)


@pytest.mark.parametrize(
    "affine, expected_shape, expected_index",
    [
        (RAS_1MM, (6, 7, 8), (1, 2, 3)),
        (LAS_ANISO, (6, 7, 8), (4, 2, 3)),
        (LPS_1MM, (6, 7, 8), (4, 4, 3)),
        (PERMUTED, (7, 8, 6), (2, 3, 1)),
    ],
)
def test_reorient_to_ras_puts_marker_where_expected(affine, expected_shape, expected_index):
    arr = np.zeros((6, 7, 8), np.uint8)
    arr[1, 2, 3] = 1
    ras, ras_affine, ornt = reorient_to_ras(arr, affine)
    assert ras.shape == expected_shape
    assert tuple(np.argwhere(ras)[0]) == expected_index
    assert nib.aff2axcodes(ras_affine) == ("R", "A", "S")
    # same world point, and the inverse restores the native array
    np.testing.assert_allclose(ras_affine @ [*expected_index, 1], affine @ [1, 2, 3, 1])
    np.testing.assert_array_equal(from_ras(ras, ornt), arr)


def test_resampling_keeps_physical_size_and_world_position():
    images, labels = synthetic_case((100, 80, 10), LAS_ANISO)
    p = preprocess_patient(images, labels, PreprocessConfig(size=64))
    t = p.transform
    assert t.resampled_shape == (50, 40, 10)  # 50 x 40 mm in-plane at 1 mm; 10 slices of 3 mm kept
    assert p.spacing == (1.0, 1.0, 3.0)
    assert p.images.shape == (4, 64, 64, 10) and p.images.dtype == np.float32
    assert p.labels.shape == (64, 64, 10) and p.labels.dtype == np.uint8
    assert nib.aff2axcodes(p.affine) == ("R", "A", "S")
    np.testing.assert_allclose(np.sqrt((p.affine[:3, :3] ** 2).sum(axis=0)), [1, 1, 3])
    # the tumour's centroid sits at the same world position (within half a voxel)
    world = lambda aff, mask: (aff @ [*np.argwhere(mask).mean(axis=0), 1])[:3]
    native = np.asarray(labels.dataobj) > 0
    np.testing.assert_allclose(world(p.affine, p.labels > 0), world(LAS_ANISO, native), atol=0.5)

    thin = preprocess_patient(images, labels, PreprocessConfig(size=64, slice_thickness_mm=1.0))
    assert thin.transform.resampled_shape == (50, 40, 30) and thin.spacing == (1.0, 1.0, 1.0)


@pytest.mark.parametrize("native_xy, size", [(40, 48), (120, 64)])
def test_crop_or_pad_gives_size_and_centres_the_brain(native_xy, size):
    images, _ = synthetic_case((native_xy, native_xy, 6), RAS_1MM)
    p = preprocess_patient(images, None, PreprocessConfig(size=size))
    assert p.images.shape == (4, size, size, 6) and p.brain.shape == (size, size, 6) and p.labels is None
    for axis in ((1, 2), (0, 2)):
        idx = np.flatnonzero(p.brain.any(axis=axis))
        assert abs((idx[0] + idx[-1]) / 2 - size / 2) <= 1


def test_crop_or_pad_window_semantics():
    a = np.arange(24).reshape(2, 3, 4)
    out = crop_or_pad(a, (-1, 1, 2), (4, 2, 3))
    assert out.shape == (4, 2, 3)
    np.testing.assert_array_equal(out[1:3, :, :2], a[:, 1:3, 2:4])
    assert out[0].sum() == 0 and out[3].sum() == 0 and out[..., 2].sum() == 0


def test_normalize_zscores_inside_brain_and_zeroes_outside():
    rng = np.random.default_rng(1)
    image = rng.normal(500, 80, (20, 20, 5)).astype(np.float32)
    brain = np.zeros(image.shape, bool)
    brain[4:16, 4:16] = True
    image[5, 5, 2] = 1e6  # an outlier the clipping must tame
    out = normalize(image, brain, (0.5, 99.5))
    assert abs(out[brain].mean()) < 1e-5 and abs(out[brain].std() - 1) < 1e-5
    assert np.all(out[~brain] == 0) and out.max() < 5
    assert np.all(normalize(image, np.zeros_like(brain)) == 0)


def test_preprocessed_channels_are_normalised_in_the_brain():
    images, labels = synthetic_case((60, 60, 8), LAS_ANISO)
    p = preprocess_patient(images, labels, PreprocessConfig(size=32, percentile_scaled=()))  # z-scored, as the study
    assert p.sequences == ("t1", "t1c", "t2", "flair")
    for channel in p.images:
        assert abs(channel[p.brain].mean()) < 1e-4 and abs(channel[p.brain].std() - 1) < 1e-4
        assert np.all(channel[~p.brain] == 0)


def test_native_transform_json_round_trip():
    images, labels = synthetic_case((50, 40, 6), LAS_ANISO)
    t = preprocess_patient(images, labels, PreprocessConfig(size=32)).transform
    again = NativeTransform.from_dict(json.loads(json.dumps(t.to_dict())))
    assert again == t
    np.testing.assert_allclose(again.affine, t.affine)


@pytest.mark.parametrize("affine", [RAS_1MM, LPS_1MM, PERMUTED], ids=["RAS", "LPS", "permuted"])
@pytest.mark.parametrize("size", [48, 32], ids=["pad", "crop"])
def test_to_native_is_exact_at_unchanged_spacing(affine, size):
    images, labels = synthetic_case((40, 44, 12), affine)
    p = preprocess_patient(images, labels, PreprocessConfig(size=size))
    back = to_native(p.labels, p.transform)
    native = np.asarray(labels.dataobj)
    assert back.shape == native.shape and back.dtype == np.uint8
    # inside the field of view the labels come back voxel for voxel; outside they are 0
    fov = to_native(np.ones(p.transform.shape, np.uint8), p.transform).astype(bool)
    np.testing.assert_array_equal(back[fov], native[fov])
    assert not back[~fov].any()
    assert fov.all() == (size == 48)


def test_to_native_close_for_anisotropic_las():
    images, labels = synthetic_case((160, 140, 12), LAS_ANISO)
    p = preprocess_patient(images, labels, PreprocessConfig(size=80))
    back = to_native(p.labels, p.transform)
    native = np.asarray(labels.dataobj)
    assert dice(region_mask(back, "whole_tumor"), region_mask(native, "whole_tumor")) > 0.9
    with pytest.raises(ValueError, match="shape"):
        to_native(p.labels[:-1], p.transform)


def test_save_and_load_round_trip(tmp_path):
    images, labels = synthetic_case((50, 40, 6), LAS_ANISO)
    p = preprocess_patient(images, labels, PreprocessConfig(size=32))
    out = save_preprocessed(p, tmp_path / "patient")
    assert sorted(f.name for f in out.iterdir()) == sorted(
        ["t1.nii.gz", "t1c.nii.gz", "t2.nii.gz", "flair.nii.gz", "labels.nii.gz", "brain.nii.gz", "transform.json", "intensity.json"]
    )
    t1 = nib.load(out / "t1.nii.gz")
    assert t1.get_data_dtype() == np.float32 and nib.aff2axcodes(t1.affine) == ("R", "A", "S")
    np.testing.assert_allclose(t1.affine, p.affine, atol=1e-5)
    q = load_preprocessed(out)
    assert q.sequences == p.sequences and q.transform == p.transform and q.intensity == p.intensity
    np.testing.assert_array_equal(q.images, p.images)
    np.testing.assert_array_equal(q.labels, p.labels)
    np.testing.assert_array_equal(q.brain, p.brain)

    # rewriting with fewer sequences and no labels leaves no stale files behind
    fewer = preprocess_patient({"t1": images["t1"], "flair": images["flair"]}, None, PreprocessConfig(size=32))
    save_preprocessed(fewer, out)
    again = load_preprocessed(out)
    assert again.sequences == ("t1", "flair") and again.labels is None


def test_invalid_inputs_raise():
    images, labels = synthetic_case((20, 20, 4), RAS_1MM)
    with pytest.raises(ValueError, match="multiple of 16"):
        PreprocessConfig(size=100)
    with pytest.raises(ValueError, match="at least one image"):
        preprocess_patient({}, None)
    with pytest.raises(ValueError, match="twice"):
        preprocess_patient({"t1c": images["t1c"], "ct1": images["t1c"]})
    shifted = nib.Nifti1Image(np.asarray(images["t2"].dataobj), LPS_1MM)
    with pytest.raises(ValueError, match="differs"):
        preprocess_patient({"t1": images["t1"], "t2": shifted})
    bad = nib.Nifti1Image(np.full((20, 20, 4), 4, np.uint8), RAS_1MM)
    with pytest.raises(LabelError):
        preprocess_patient(images, bad, PreprocessConfig(size=32))


@pytest.mark.realdata
def test_tcga_06_1802_preprocesses_and_maps_back():
    case = shared_case("tcga-gbm-06-1802-elmed219")
    images, labels = read_case(
        {
            "t1": case / "T1_reorient_bet.nii.gz",
            "t1c": case / "CT1_reorient_bet_reg.nii.gz",
            "t2": case / "T2_reorient_bet_reg.nii.gz",
            "flair": case / "FLAIR_reorient_bet_reg.nii.gz",
        },
        case / "tcga_06_1802_hd_glio_predict.nii.gz",
        "hd_glio",
    )
    p = preprocess_patient(images, labels, PreprocessConfig())
    assert nib.aff2axcodes(p.affine) == ("R", "A", "S")
    assert p.images.shape == (4, 192, 192, 30)
    np.testing.assert_allclose(p.spacing, (1.0, 1.0, 5.0), atol=1e-3)  # in-plane 1 mm, 5 mm slices kept
    native = region_mask(np.asarray(labels.dataobj), "whole_tumor")
    back = region_mask(to_native(p.labels, p.transform), "whole_tumor")
    assert native.sum() > 1000
    assert dice(back, native) > 0.9
    # the oblique affine is carried, not resampled: the tumour stays at the same world position
    world = lambda aff, mask: (aff @ [*np.argwhere(mask).mean(axis=0), 1])[:3]
    np.testing.assert_allclose(world(p.affine, p.labels > 0), world(labels.affine, native), atol=1.0)


@pytest.mark.realdata
@pytest.mark.slow
def test_msd_brats001_round_trip_is_exact():
    case = shared_case("msd-task01-brats001")
    channels = {"flair": "0000", "t1": "0001", "t1c": "0002", "t2": "0003"}
    images, labels = read_case(
        {s: case / f"BRATS_001_{c}.nii.gz" for s, c in channels.items()}, case / "BRATS_001_labels.nii.gz", "msd"
    )
    p = preprocess_patient(images, labels, PreprocessConfig())
    assert p.images.shape == (4, 192, 192, 155) and p.spacing == (1.0, 1.0, 1.0)
    # 1 mm RAS in, 1 mm out: the labels come back voxel for voxel (the brain fits the 192 mm window)
    np.testing.assert_array_equal(to_native(p.labels, p.transform), np.asarray(labels.dataobj))


def test_voxel_volume_ml_is_the_affines_determinant_in_ml():
    from gbm_assets.lib.preprocess.grid import voxel_volume_ml

    assert voxel_volume_ml(np.diag([-0.5, 0.5, 3.0, 1.0])) == pytest.approx(0.00075)
    assert voxel_volume_ml(PERMUTED) == pytest.approx(0.001)
    assert voxel_volume_ml(tuple(map(tuple, np.diag([2.0, 2.0, 2.0, 1.0])))) == pytest.approx(0.008)
    assert voxel_volume_ml(np.zeros((4, 4))) == 0.0


def test_save_nifti_writes_atomically_and_round_trips(tmp_path):
    from gbm_assets.lib.preprocess.volumes import save_nifti

    data = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    path = save_nifti(tmp_path / "x.nii.gz", nib.Nifti1Image(data, LAS_ANISO))
    np.testing.assert_array_equal(np.asarray(nib.load(str(path)).dataobj), data)
    np.testing.assert_allclose(nib.load(str(path)).affine, LAS_ANISO)
    assert [p.name for p in tmp_path.iterdir()] == ["x.nii.gz"]  # no temp file left
