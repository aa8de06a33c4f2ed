"""Tumour localisation, pure: a synthetic tumour in a known Harvard-Oxford structure, moved into a
"patient" space by a known affine, is found in that structure after registration; tables, lobes,
failed registrations; and the real MSD BRATS_001 case lands in its native-space hemisphere."""

from __future__ import annotations

import math

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from gbm_assets.lib.contract import to_canonical
from gbm_assets.lib.location.atlas import LOBES, UNLABELLED, load_atlas, lobe_of
from gbm_assets.lib.location.figure import location_png
from gbm_assets.lib.location.overlap import region_overlap
from gbm_assets.lib.location.patient import (
    DEFAULT_DICE_FLOOR,
    Roi,
    locate_patient,
    reference_image,
)
from gbm_assets.lib.location.register import register_to_template, warp_mask
from gbm_assets.lib.radiomics.burden import brain_midline_x, region_burden
from gbm_assets_tests.conftest import shared_case


@pytest.fixture(scope="module")
def atlas():
    return load_atlas()


def _known_affine() -> sitk.AffineTransform:
    """Patient point -> template point: rotate 8 degrees about z and 4 about x, scale 1/0.95, translate."""
    rotation = sitk.Euler3DTransform()
    rotation.SetRotation(np.deg2rad(4), 0.0, np.deg2rad(8))
    transform = sitk.AffineTransform(3)
    transform.SetMatrix((np.array(rotation.GetMatrix()).reshape(3, 3) / 0.95).ravel().tolist())
    transform.SetTranslation((6.0, -9.0, 4.0))
    return transform


def _ball_in(atlas, structure: str, radius_vox: int = 4) -> sitk.Image:
    """Canonical labels (3 = enhancing) of a ball around the deepest voxel of `structure`, on the atlas grid."""
    inside = sitk.GetArrayFromImage(atlas.labels) == atlas.names.index(structure)
    centre = np.unravel_index(np.argmax(ndimage.distance_transform_edt(inside)), inside.shape)
    zz, yy, xx = np.indices(inside.shape, sparse=True)
    ball = (zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2 <= radius_vox**2
    image = sitk.GetImageFromArray((ball * 3).astype(np.uint8))
    image.CopyInformation(atlas.labels)
    return image


def _patient_from_template(atlas, tumour: sitk.Image) -> tuple[sitk.Image, sitk.Image]:
    """(patient image, patient labels): the template and the tumour moved by `_known_affine` onto a 2 mm grid."""
    grid = sitk.Image([96, 110, 90], sitk.sitkFloat32)
    grid.SetSpacing((2.0, 2.0, 2.0))
    grid.SetOrigin((-96.0, -130.0, -80.0))
    transform = _known_affine()
    image = sitk.Resample(atlas.template, grid, transform, sitk.sitkLinear, 0.0)
    labels = sitk.Resample(tumour, grid, transform, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    return image, labels


@pytest.mark.slow
@pytest.mark.parametrize(
    ("structure", "side", "lobe"),
    [("Left_Thalamus", "left", "subcortical"), ("Right_Superior_Frontal_Gyrus", "right", "frontal")],
)
def test_a_tumour_placed_in_a_structure_is_found_there_after_registration(atlas, structure, side, lobe):
    image, labels = _patient_from_template(atlas, _ball_in(atlas, structure))
    assert sitk.GetArrayViewFromImage(labels).any()
    registration = register_to_template(image, atlas.template)
    assert registration.brain_dice >= 0.85 and registration.metric < 0
    warped = sitk.GetArrayFromImage(warp_mask(labels, atlas.labels, registration.transform))
    rows, summaries = region_overlap(warped, atlas)
    structures = {r["name"]: r["pct_of_region"] for r in rows if r["region"] == "whole_tumor" and r["level"] == "structure"}
    assert max(structures, key=structures.get) == structure
    assert structures[structure] > 60
    whole = summaries[0]
    assert whole["region"] == "whole_tumor" and whole["hemisphere"] == side and whole["dominant_lobe"] == lobe
    assert (whole["centroid_x_mni"] < 0) == (side == "left")


def test_every_harvard_oxford_structure_has_a_lobe_and_the_lobe_map_covers_the_cerebrum(atlas):
    assert {lobe_of(n) for n in atlas.names} == set(LOBES)
    lobes = sitk.GetArrayViewFromImage(atlas.lobes)
    brain = sitk.GetArrayViewFromImage(sitk.Resample(atlas.brain_mask(), atlas.labels, sitk.Transform(), sitk.sitkNearestNeighbor, 0)) > 0
    assert (lobes[brain] >= 0).mean() > 0.9  # deep white matter gets the lobe above it; the deep cerebellum stays unlabelled
    assert set(np.unique(lobes[~brain])) <= {-1} | set(range(len(LOBES)))
    with pytest.raises(KeyError, match="no lobe"):
        lobe_of("Left_Cerebellum")


def test_overlap_tables_sum_to_the_region_and_report_empty_regions(atlas):
    labels = sitk.GetArrayFromImage(_ball_in(atlas, "Left_Insular_Cortex", 3))
    labels[labels == 3] = 2  # edema only: whole_tumor, no core, no enhancing
    rows, summaries = region_overlap(labels, atlas)
    whole = [r for r in rows if r["region"] == "whole_tumor"]
    for level in ("structure", "lobe"):
        assert math.isclose(sum(r["pct_of_region"] for r in whole if r["level"] == level), 100.0)
    assert math.isclose(sum(r["overlap_ml"] for r in whole if r["level"] == "lobe"), summaries[0]["region_ml"])
    assert summaries[0]["dominant_lobe"] == "insula" and summaries[0]["hemisphere"] == "left"
    assert {r["region"] for r in rows} == {"whole_tumor"}
    assert summaries[1]["region_ml"] == 0.0 and summaries[1]["dominant_lobe"] is None
    with pytest.raises(ValueError, match="atlas grid"):
        region_overlap(labels[1:], atlas)
    assert UNLABELLED not in {r["name"] for r in whole if r["level"] == "lobe"}


def _write(image: sitk.Image, path) -> str:
    sitk.WriteImage(image, str(path))
    return str(path)


def test_an_implausible_registration_is_recorded_as_failed_with_its_metric_not_guessed(atlas, tmp_path):
    image, labels = _patient_from_template(atlas, _ball_in(atlas, "Left_Thalamus"))
    images = {"t2": _write(image, tmp_path / "t2.nii.gz")}
    roi = Roi("ground_truth", _write(labels, tmp_path / "seg.nii.gz"), "canonical")
    located = locate_patient("c", "p1", images, [roi], atlas, floor=0.999, picture=True)
    assert located.failed and located.picture is None and len(located.rows) == 1
    row = located.rows[0]
    assert row["status"] == "failed" and "floor 0.999" in row["problem"] and row["reference_sequence"] == "t2"
    assert row["brain_dice"] == located.brain_dice < 0.999 and math.isfinite(row["metric"])
    assert row["name"] is None and row["dominant_lobe"] is None and math.isnan(row["overlap_ml"])


def test_an_unreadable_mask_is_a_failed_row_naming_its_file_and_other_rois_proceed(atlas, tmp_path):
    image, labels = _patient_from_template(atlas, _ball_in(atlas, "Left_Thalamus"))
    labels = sitk.ChangeLabel(labels, {3: 2})  # edema only: tumor_core and enhancing are empty
    images = {"t1": _write(image, tmp_path / "t1.nii.gz")}
    missing = str(tmp_path / "missing.nii.gz")
    rois = [Roi("ground_truth", _write(labels, tmp_path / "seg.nii.gz"), "canonical"), Roi("predicted", missing, "canonical")]
    located = locate_patient("c", "p1", images, rois, atlas)
    assert not located.failed
    predicted = [r for r in located.rows if r["roi_source"] == "predicted"]
    assert len(predicted) == 1 and predicted[0]["status"] == "failed" and missing in predicted[0]["problem"]
    truth = [r for r in located.rows if r["roi_source"] == "ground_truth"]
    assert {r["region"] for r in truth} == {"whole_tumor", "tumor_core", "enhancing"}
    empty = [r for r in truth if r["region"] != "whole_tumor"]  # one "empty" row each, no location
    assert len(empty) == 2 and {r["status"] for r in empty} == {"empty"} and all(r["name"] is None for r in empty)
    assert {r["status"] for r in truth if r["region"] == "whole_tumor"} == {"ok"}


def test_reference_image_is_the_first_sequence_present_and_its_absence_is_an_error():
    assert reference_image({"flair": "f", "t1c": "c"}) == ("t1c", "c")
    with pytest.raises(ValueError, match="no image"):
        reference_image({})


def test_location_picture_is_a_png(atlas):
    template = sitk.Resample(atlas.template, atlas.labels, sitk.Transform(), sitk.sitkLinear, 0.0)
    png = location_png(template, sitk.GetArrayFromImage(_ball_in(atlas, "Left_Thalamus")), "test")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.parametrize(
    ("folder", "image", "mask", "scheme", "source"),
    [
        ("msd-task01-brats001", "BRATS_001_0001.nii.gz", "BRATS_001_labels.nii.gz", "msd", "ground_truth"),
        ("tcga-gbm-06-1802-elmed219", "T1_reorient_bet.nii.gz", "tcga_06_1802_hd_glio_predict.nii.gz", "hd_glio", "predicted"),
    ],
)
def test_real_cases_land_in_the_hemisphere_of_their_native_tumour_centroid(atlas, folder, image, mask, scheme, source):
    case = shared_case(folder)
    t1, seg = case / image, case / mask
    # Native side: the whole tumour's centroid against the brain's midline, RAS world, as tumor_burden does it.
    reference = nib.load(t1)
    midline = brain_midline_x(np.asanyarray(reference.dataobj) != 0, reference.affine)
    labels = nib.load(seg)
    native = region_burden(to_canonical(np.asanyarray(labels.dataobj), scheme, str(seg)), labels.affine, midline_x_mm=midline)
    native_side = native[0]["hemisphere"]
    assert native[0]["region"] == "whole_tumor" and native_side in ("left", "right")

    located = locate_patient("real", folder, {"t1": str(t1)}, [Roi(source, str(seg), scheme)], atlas)
    assert not located.failed and located.brain_dice >= DEFAULT_DICE_FLOOR
    whole = next(r for r in located.rows if r["region"] == "whole_tumor")
    assert whole["status"] == "ok" and whole["hemisphere"] == native_side
    print(f"{folder}: native {native_side}, MNI {whole['hemisphere']} ({whole['dominant_lobe']}), "
          f"brain Dice {located.brain_dice:.3f}, MI {located.metric:.4f}, {whole['seconds']:.1f} s")  # fmt: skip
