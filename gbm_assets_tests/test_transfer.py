"""Transfer to real MRI, with floors: the demo-trained champion on every real case of ../shared/data with a reference.

The champion (`fixtures/transfer_champion.pt`) is the one `make demo` trains on phantoms alone (seed 7) and
lesion_masks' `auto` picks for four-sequence cohorts; after a make demo, `python scripts/transfer.py --data-root data
--export gbm_assets_tests/fixtures` refreshes it with the figures it measured. Each case is preprocessed on the demo's
grid and segmented by the lesion_masks worker, and its native-grid mask is compared with the reference (MSD BRATS_001:
expert labels; TCGA-06-1802: HD-GLIO, which labels whole tumour and enhancing tumour only).

Two kinds of assertion:
- floors this champion meets (`FLOORS`): a change to preprocessing, inference, post-processing or label decoding that
  costs transfer fails here;
- the same floors on the cases preprocessed at the platform's default 1 mm, as a dropped cohort is: the champion
  resamples them to the 1.5 mm grid it learnt on, and its volumes stay within `GRID_DRIFT` of those on that grid
  (without the grid record they do not);
- the target a transferring model must reach (whole-tumour Dice >= 0.75 and a volume within 30% of the reference on
  every case), which the phantom-trained champion does not reach yet: a strict xfail, so the day a champion reaches
  it the test fails and the target becomes a floor.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gbm_assets_tests.conftest import shared_case
from gbm_assets_tests.test_scripts import script

FIXTURE = Path(__file__).parent / "fixtures"
CASES = ("BRATS_001 (MSD, expert)", "TCGA-06-1802 (HD-GLIO)")
FLOORS = {  # case -> (whole-tumour Dice, volume ratio range, enhancing Dice), set below the measured values
    "BRATS_001 (MSD, expert)": (0.78, (0.9, 1.5), 0.65),  # measured 0.811, 1.20x, 0.694
    "TCGA-06-1802 (HD-GLIO)": (0.72, (0.6, 1.3), 0.70),  # measured 0.747, 0.76x, 0.757 (0.732, 0.73x, 0.737 aliased)
}
TARGET_DICE, TARGET_RATIO = 0.75, (0.7, 1.3)


META = json.loads((FIXTURE / "transfer_champion.json").read_text())


def score_case(case: str, checkpoint: Path, tmp: Path, grid_mm: float | None = None) -> tuple[float, float, float]:
    """(whole-tumour Dice, volume ratio, enhancing Dice) of `checkpoint` (the fixture's architecture) on one real case,
    preprocessed as the champion's profile was, or on a `grid_mm` in-plane grid."""
    from gbm_assets.lib.preprocess.volumes import PreprocessConfig

    transfer = script("transfer")
    folder, files, labels_file, scheme = transfer.CASES[case]
    champion = {META["model_input"]: (str(checkpoint), META["version"], META["keep_largest"])}
    prepare = META["prepare"] if grid_mm is None else transfer.regridded(META["prepare"], grid_mm)
    [(_, _, _, dice_wt, ratio, dice_et, _)], _, _ = transfer.case_rows(case, shared_case(folder), files, labels_file, scheme, champion,
                                                                 PreprocessConfig(**prepare), tmp)  # fmt: skip
    return dice_wt, ratio, dice_et


@pytest.fixture(scope="module")
def scored(tmp_path_factory) -> dict:
    """case -> (whole-tumour Dice, volume ratio, enhancing Dice, the export's figures) of the fixture champion."""
    return {case: (*score_case(case, FIXTURE / "transfer_champion.pt", tmp_path_factory.mktemp("t")), META["measured"][case.split()[0]])
            for case in CASES}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_the_demo_champion_transfers_above_its_floors(case, scored, record_property):
    dice_wt, ratio, dice_et, measured = scored[case]
    floor_wt, (low, high), floor_et = FLOORS[case]
    record_property("dice_whole_tumor", dice_wt), record_property("volume_ratio", ratio), record_property("dice_enhancing", dice_et)
    print(f"{case}: whole-tumour Dice {dice_wt:.3f}, volume {ratio:.2f}x the reference, enhancing Dice {dice_et:.3f}")
    assert dice_wt >= floor_wt, f"{case}: whole-tumour Dice {dice_wt:.3f} < floor {floor_wt}"
    assert low <= ratio <= high, f"{case}: predicted volume {ratio:.2f}x the reference, outside {low}-{high}"
    assert not np.isnan(dice_et) and dice_et >= floor_et, f"{case}: enhancing Dice {dice_et:.3f} < floor {floor_et}"
    assert dice_wt == pytest.approx(measured["dice_whole_tumor"], abs=2e-3)  # this code reproduces the export's figures


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="the phantom-trained champion under-segments TCGA-06-1802 (whole-tumour Dice 0.747)")
def test_the_demo_champion_reaches_the_transfer_target_on_every_case(scored):
    for case, (dice_wt, ratio, _, _) in scored.items():
        assert dice_wt >= TARGET_DICE and TARGET_RATIO[0] <= ratio <= TARGET_RATIO[1], f"{case}: {dice_wt:.3f}, {ratio:.2f}x"


GRID_DRIFT = 0.06
"""How far the predicted / reference volume may move when a case is preprocessed at 1 mm instead of the champion's
1.5 mm: resampled to its grid it moved 0.03 and 0.00; fed 1 mm slices as they are, 0.12 and 0.10."""


def score_at_1mm(case: str, checkpoint: Path, tmp: Path) -> tuple[float, float, float]:
    dice_wt, ratio, dice_et = score_case(case, checkpoint, tmp, grid_mm=1.0)
    print(f"{case} at 1 mm: whole-tumour Dice {dice_wt:.3f}, volume {ratio:.2f}x the reference, enhancing Dice {dice_et:.3f}")
    return dice_wt, ratio, dice_et


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_on_the_platform_s_default_grid_the_champion_resamples_to_its_own(case, tmp_path):
    """A real cohort dropped into the inbox is preprocessed at the default 1 mm; the champion, which learnt on 1.5 mm,
    resamples its slices to that grid and back, so its figures stay near those on its own grid, above the floors."""
    from gbm_assets.lib.segment.checkpoint import checkpoint_record

    assert checkpoint_record(FIXTURE / "transfer_champion.pt")[1] == META["prepare"]["target_spacing_mm"]
    dice_wt, ratio, dice_et = score_at_1mm(case, FIXTURE / "transfer_champion.pt", tmp_path)
    floor_wt, (low, high), floor_et = FLOORS[case]
    assert dice_wt >= floor_wt and low <= ratio <= high and dice_et >= floor_et, (dice_wt, ratio, dice_et)
    assert abs(ratio - META["measured"][case.split()[0]]["volume_ratio"]) < GRID_DRIFT, ratio


@pytest.mark.slow
def test_without_its_grid_record_the_champion_drifts_on_a_1mm_case(tmp_path):
    """The same weights without the record (as checkpoints before it) see 1 mm slices as they are: BRATS_001's volume
    drifts past GRID_DRIFT, so the test above can fail."""
    import torch

    from gbm_assets.lib.segment.checkpoint import save_checkpoint

    blob = torch.load(FIXTURE / "transfer_champion.pt", map_location="cpu", weights_only=True)
    legacy = save_checkpoint(tmp_path / "legacy.pt", blob["state_dict"], blob["architecture"], blob["input"], blob.get("intensity"))
    _, ratio, _ = score_at_1mm(CASES[0], legacy, tmp_path)
    assert abs(ratio - META["measured"]["BRATS_001"]["volume_ratio"]) >= GRID_DRIFT, ratio


@pytest.mark.slow
def test_the_floors_fail_a_champion_that_does_not_transfer(tmp_path):
    """The same champion with its head's output channels permuted (whole tumour, core and enhancing answer for each
    other) falls outside the BRATS_001 floors: the floors can fail."""
    import torch

    from gbm_assets.lib.segment.checkpoint import save_checkpoint

    case = CASES[0]
    blob = torch.load(FIXTURE / "transfer_champion.pt", map_location="cpu", weights_only=True)
    generator = torch.Generator().manual_seed(0)
    state = {k: v[torch.randperm(len(v), generator=generator)] if k.startswith("head.") and v.ndim else v for k, v in blob["state_dict"].items()}
    broken = save_checkpoint(tmp_path / "broken.pt", state, blob["architecture"], blob["input"], blob.get("intensity"), blob.get("spacing_mm"))
    dice_wt, ratio, dice_et = score_case(case, broken, tmp_path)
    floor_wt, (low, high), floor_et = FLOORS[case]
    assert dice_wt < floor_wt or not low <= ratio <= high or dice_et < floor_et, (dice_wt, ratio, dice_et)


def test_scale_contrast_stretches_each_chosen_sequence_about_its_brain_median():
    transfer = script("transfer")
    rng = np.random.default_rng(0)
    images = rng.normal(size=(2, 6, 6, 4)).astype(np.float32)
    brain = np.zeros((6, 6, 4), bool)
    brain[1:5, 1:5] = True
    out = transfer.scale_contrast(images, brain, [1], 2.0)
    median = np.median(images[1][brain])
    np.testing.assert_allclose(out[1][brain] - median, 2.0 * (images[1][brain] - median), rtol=1e-5)
    np.testing.assert_array_equal(out[1][~brain], images[1][~brain])  # outside the brain as it was
    np.testing.assert_array_equal(out[0], images[0])  # a sequence not chosen is untouched
    np.testing.assert_allclose(transfer.scale_contrast(images, brain, [0, 1], 1.0), images, atol=1e-6)


@pytest.mark.slow
def test_the_contrast_sweep_scores_the_native_case_first_and_every_stretch(tmp_path):
    """`--contrast` on TCGA-06-1802: the native row, then FLAIR, T2 and both at every factor, each stretch reaching the
    model (the fixture champion's whole tumour grows with the case's FLAIR contrast and shrinks with its T2 contrast)."""
    from gbm_assets.lib.preprocess.volumes import PreprocessConfig, preprocess_patient, read_case, save_preprocessed

    transfer = script("transfer")
    case = CASES[1]
    folder, files, labels_file, scheme = transfer.CASES[case]
    images, labels = read_case({s: shared_case(folder) / f for s, f in files.items()}, shared_case(folder) / labels_file, scheme)
    saved = save_preprocessed(preprocess_patient(images, labels, PreprocessConfig(**META["prepare"])), tmp_path / "case")
    champion = (str(FIXTURE / "transfer_champion.pt"), META["version"], META["keep_largest"])
    rows = transfer.contrast_rows(case, saved, META["model_input"], champion)
    assert [(r[1], r[2]) for r in rows] == [("-", 1.0)] + [(" + ".join(s), f) for s in transfer.CONTRAST_SEQUENCES
                                                             for f in transfer.CONTRAST_FACTORS]  # fmt: skip
    ratio = {(r[1], r[2]): r[4] for r in rows}
    assert ratio[("flair", 2.0)] - ratio[("-", 1.0)] > 0.05 and ratio[("-", 1.0)] - ratio[("t2", 2.0)] > 0.05


@pytest.mark.parametrize("regions", [1, 3])
def test_the_contrast_sweep_reads_binary_and_region_models(tmp_path, regions):
    """A tiny untrained U-Net of either kind on a synthetic case: one row per stretch, Dice and ratio finite."""
    import torch

    from gbm_assets.lib.preprocess.volumes import PreprocessConfig, preprocess_patient, save_preprocessed
    from gbm_assets.lib.segment.checkpoint import architecture, save_checkpoint
    from gbm_assets.lib.segment.unet import UNet
    from gbm_assets_tests.lib.preprocess import RAS_1MM, synthetic_case

    transfer = script("transfer")
    torch.manual_seed(0)
    arch = architecture(1, 4, 0.0, regions, "binary" if regions == 1 else "regions")
    checkpoint = save_checkpoint(tmp_path / "m.pt", UNet(1, 4, 0.0, out_channels=regions).state_dict(), arch, "flair")
    saved = save_preprocessed(preprocess_patient(*synthetic_case((32, 32, 6), RAS_1MM, seed=1), PreprocessConfig(size=32)), tmp_path / "p")
    rows = transfer.contrast_rows("synthetic", saved, "flair", (str(checkpoint), "1", False))
    assert len(rows) == 1 + len(transfer.CONTRAST_SEQUENCES) * len(transfer.CONTRAST_FACTORS)
    assert all(np.isfinite(r[3]) and np.isfinite(r[4]) for r in rows)


def test_transfer_refuses_a_profile_scaled_otherwise_than_the_champion_learnt(tmp_path):
    """As lesion_masks: a champion trained on percentile-scaled FLAIR (the default) is not scored on a case the profile
    z-scores."""
    import nibabel as nib

    from gbm_assets.lib.preprocess.volumes import PreprocessConfig
    from gbm_assets.lib.segment.checkpoint import architecture, save_checkpoint
    from gbm_assets.lib.segment.unet import UNet
    from gbm_assets_tests.lib.preprocess import RAS_1MM, synthetic_case

    transfer = script("transfer")
    images, labels = synthetic_case((32, 32, 6), RAS_1MM, seed=1)
    folder = tmp_path / "case"
    folder.mkdir()
    for seq, img in images.items():
        nib.save(img, folder / f"{seq}.nii.gz")
    nib.save(labels, folder / "labels.nii.gz")
    files = {s: f"{s}.nii.gz" for s in images}
    arch = architecture(1, 4, 0.0)
    checkpoint = save_checkpoint(tmp_path / "m.pt", UNet(1, 4, 0.0).state_dict(), arch, "flair", {"flair": "percentile"})
    champion = {"flair": (str(checkpoint), "1", False)}
    with pytest.raises(SystemExit, match="synthetic case, flair v1: 1 of 1 patients .* flair: zscore, the model percentile"):
        transfer.case_rows("synthetic case", folder, files, "labels.nii.gz", "canonical", champion,
                           PreprocessConfig(size=32, percentile_scaled=()), tmp_path)  # fmt: skip
    scaled = PreprocessConfig(size=32)
    [row], _, _ = transfer.case_rows("synthetic case", folder, files, "labels.nii.gz", "canonical", champion, scaled, tmp_path)
    assert row[1] == "flair" and np.isfinite(row[3])


def test_grid_mm_keeps_the_profile_s_field_of_view_on_another_grid():
    regridded = script("transfer").regridded
    demo = {"target_spacing_mm": 1.5, "size": 128, "percentile_scaled": ["flair"]}
    assert regridded(demo, 1.0) == {"target_spacing_mm": 1.0, "size": 192, "percentile_scaled": ["flair"]}
    assert regridded(demo, 1.5) == demo
    assert regridded(demo, 0.8)["size"] == 240  # 192 mm / 0.8 = 240, already a multiple of 16
    assert regridded({}, 2.0)["size"] == 96  # the platform's default 1 mm x 192
