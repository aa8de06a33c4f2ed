"""How the champion U-Nets of a data root transfer to the real cases of ../shared/data that have a reference label.

    python scripts/transfer.py --data-root data --config-dir demo

For each real case with a reference (MSD BRATS_001: expert labels; TCGA-06-1802: HD-GLIO's prediction) and
each champion the data root's registry holds (every model input whose sequences the case has), the case is
preprocessed as the profile's `prepare.yaml` says (the grid the champion was trained on), segmented by
`lib/masks/worker.segment_patient` exactly as `lesion_masks` does (the champion's keep-largest tag included),
and its mask, on the native grid, is compared with the reference: whole-tumour Dice, predicted / reference
volume and, for a region model, enhancing-tumour Dice. Prints one markdown table; the model lesion_masks'
`auto` would choose for these cases is marked. Nothing is written under
the data root (the preprocessed cases and masks go to a temporary folder).

`--errors` adds, for the `auto` champion, where its whole-tumour errors lie in intensity: the median scaled
T1, T1c, T2 and FLAIR (on the preprocessed grid, as the network sees them) of the reference's edema it found,
the edema it missed, what it predicted outside the reference, and the rest of the brain.

`--contrast` adds, for the `auto` champion, how its whole tumour moves when a case's lesion contrast is scaled: each
of FLAIR and T2 (and both) stretched about the brain's median by 0.75, 1.5 and 2 (`scale_contrast`), scored on the
preprocessed grid. A model that labels tissue by its brightness relative to the case's own lesion keeps its figures
under such a stretch; one that labels by absolute brightness (z-scored) grows and shrinks with it.

`--grid-mm 1.0` preprocesses the cases on another in-plane grid (same field of view) instead of the profile's, as
the platform's default preprocesses a cohort dropped into the inbox; each champion resamples them to the grid it
learnt on (lib/segment/grid).

`--export DIR` also copies the `auto` champion's checkpoint to DIR/transfer_champion.pt, with DIR/transfer_champion.json
(its input, version, keep-largest setting and the figures of this run): the fixture of the transfer test
(gbm_assets_tests/test_transfer.py), which checks that floor on every run of the suite.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np

CASES = {  # case -> (folder under shared data, sequence -> file, labels file, label scheme)
    "BRATS_001 (MSD, expert)": ("msd-task01-brats001", {"flair": "BRATS_001_0000.nii.gz", "t1": "BRATS_001_0001.nii.gz",
                                "t1c": "BRATS_001_0002.nii.gz", "t2": "BRATS_001_0003.nii.gz"}, "BRATS_001_labels.nii.gz", "msd"),
    "TCGA-06-1802 (HD-GLIO)": ("tcga-gbm-06-1802-elmed219", {"t1": "T1_reorient_bet.nii.gz", "t1c": "CT1_reorient_bet_reg.nii.gz",
                               "t2": "T2_reorient_bet_reg.nii.gz", "flair": "FLAIR_reorient_bet_reg.nii.gz"},
                               "tcga_06_1802_hd_glio_predict.nii.gz", "hd_glio"),
}  # fmt: skip
ENHANCING = 3  # canonical label of enhancing tumour


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two boolean arrays (1.0 when both are empty)."""
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def whole_tumour(patient, model_input: str, champion: tuple) -> np.ndarray:
    """The champion's post-processed whole tumour on a preprocessed patient, as `lesion_masks` segments it."""
    from gbm_assets.lib.masks import worker
    from gbm_assets.lib.masks.postprocess import POSTPROCESS

    checkpoint, _, keep_largest = champion
    return worker.patient_mask(worker.model_at(checkpoint), patient, model_input, POSTPROCESS.threshold,
                               POSTPROCESS.min_component_mm3, keep_largest) > 0  # fmt: skip


def error_rows(name: str, saved: Path, model_input: str, champion: tuple) -> list:
    """Rows (case, voxel set, voxels, median z per sequence) of one case's whole-tumour errors (see `--errors`)."""
    from gbm_assets.lib.preprocess.volumes import load_preprocessed

    patient = load_preprocessed(saved)
    pred = whole_tumour(patient, model_input, champion)
    truth, edema = patient.labels > 0, patient.labels == 2
    sets = {"reference edema found": pred & edema, "reference edema missed": ~pred & edema,
            "predicted outside the reference": pred & ~truth, "rest of the brain": patient.brain & ~truth & ~pred}  # fmt: skip
    return [(name, what, int(sel.sum()), {s: float(np.median(patient.images[i][sel])) if sel.any() else float("nan")
                                          for i, s in enumerate(patient.sequences)}) for what, sel in sets.items()]  # fmt: skip


CONTRAST_FACTORS = (0.75, 1.5, 2.0)
CONTRAST_SEQUENCES = (("flair",), ("t2",), ("flair", "t2"))


def scale_contrast(images: np.ndarray, brain: np.ndarray, channels: list[int], factor: float) -> np.ndarray:
    """(C, X, Y, Z) images with each of `channels` stretched about its median in `brain` by `factor` (outside the brain
    unchanged): every contrast against the typical brain, the lesion's included, times `factor`."""
    out = images.copy()
    for c in channels:
        median = float(np.median(images[c][brain]))
        out[c][brain] = median + factor * (images[c][brain] - median)
    return out


def contrast_rows(name: str, saved: Path, model_input: str, champion: tuple) -> list:
    """Rows (case, sequences, factor, dice_wt, volume_ratio) of `champion` on one preprocessed case, native contrast
    first (sequences "-", factor 1), then every stretch of `CONTRAST_SEQUENCES` x `CONTRAST_FACTORS`."""
    from dataclasses import replace

    from gbm_assets.lib.preprocess.volumes import load_preprocessed

    patient = load_preprocessed(saved)
    truth = patient.labels > 0
    rows = []
    for sequences, factor in [((), 1.0), *((s, f) for s in CONTRAST_SEQUENCES for f in CONTRAST_FACTORS)]:
        images = scale_contrast(patient.images, patient.brain, [patient.sequences.index(s) for s in sequences], factor)
        pred = whole_tumour(replace(patient, images=images), model_input, champion)
        rows.append((name, " + ".join(sequences) or "-", factor, dice(pred, truth), float(pred.sum() / max(truth.sum(), 1))))
    return rows


def case_rows(name: str, folder: Path, files: dict, labels_file: str, scheme: str, champions: dict, config, tmp: Path,
              errors_of: str | None = None, contrast_of: str | None = None) -> tuple[list, list, list]:
    """Rows (case, model, version, dice_wt, volume_ratio, dice_et) of one real case for every eligible champion,
    `error_rows` of the champion of `errors_of` and `contrast_rows` of the champion of `contrast_of` (none when None)."""
    from gbm_assets.lib.contract import MODEL_INPUTS
    from gbm_assets.lib.masks import worker
    from gbm_assets.lib.masks.postprocess import POSTPROCESS
    from gbm_assets.lib.preprocess.intensity import intensity_problem
    from gbm_assets.lib.preprocess.volumes import preprocess_patient, read_case, save_preprocessed
    from gbm_assets.lib.segment.checkpoint import checkpoint_intensity

    images, labels = read_case({s: folder / f for s, f in files.items()}, folder / labels_file, scheme)
    truth = np.asarray(labels.dataobj)
    voxel_mm3 = float(np.prod(labels.header.get_zooms()[:3]))  # from the header: right for oblique affines too
    case_id = name.split()[0]
    saved = save_preprocessed(preprocess_patient(images, labels, config), tmp / case_id)
    rows = []
    for model_input, (checkpoint, version, keep_largest) in sorted(champions.items()):
        if not set(MODEL_INPUTS[model_input]) <= set(files):
            continue
        problem = intensity_problem(checkpoint_intensity(checkpoint), {case_id: str(saved)})
        if problem:  # as lesion_masks refuses: the profile's prepare.yaml is not the one the champion learnt on
            raise SystemExit(f"{name}, {model_input} v{version}: {problem} (in the --config-dir profile's prepare.yaml)")
        task = worker.MaskTask(case_id, str(saved), str(tmp / f"{case_id}_{model_input}.nii.gz"), checkpoint,
                               model_input, POSTPROCESS.threshold, POSTPROCESS.min_component_mm3, keep_largest)  # fmt: skip
        row = worker.segment_patient(task)
        pred = np.asarray(nib.load(row["mask_path"]).dataobj)
        regions = row["roi_scheme"] == "canonical"
        rows.append((name, model_input, version, dice(pred > 0, truth > 0), float((pred > 0).sum() / max((truth > 0).sum(), 1)),
                     dice(pred == ENHANCING, truth == ENHANCING) if regions else float("nan"),
                     float((truth > 0).sum() * voxel_mm3 / 1000)))  # fmt: skip
    errors = [] if errors_of not in champions else error_rows(name, saved, errors_of, champions[errors_of])
    return rows, errors, [] if contrast_of not in champions else contrast_rows(name, saved, contrast_of, champions[contrast_of])


def export(folder: Path, model_input: str, champion: tuple, rows: list, prepare: dict) -> None:
    """The transfer test's fixture: the champion's checkpoint and what it scored here."""
    import json
    import shutil

    checkpoint, version, keep_largest = champion
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(checkpoint, folder / "transfer_champion.pt")
    cases = {case.split()[0]: {"dice_whole_tumor": round(wt, 4), "volume_ratio": round(ratio, 4),
                               "dice_enhancing": None if np.isnan(et) else round(et, 4)} for case, _, _, wt, ratio, et, _ in rows}  # fmt: skip
    meta = {"model_input": model_input, "version": version, "keep_largest": keep_largest, "prepare": prepare, "measured": cases}
    (folder / "transfer_champion.json").write_text(json.dumps(meta, indent=2) + "\n")


def regridded(prepare: dict, grid_mm: float) -> dict:
    """`prepare` (preprocessed_volumes' config) on a `grid_mm` in-plane grid with the same field of view, its size
    rounded up to the U-Net's multiple of 16."""
    fov = prepare.get("target_spacing_mm", 1.0) * prepare.get("size", 192)
    return {**prepare, "target_spacing_mm": grid_mm, "size": int(-(-fov / grid_mm // 16) * 16)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", type=Path, default=Path("data"), help="a data root whose registry holds champion U-Nets")
    ap.add_argument("--shared-data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--config-dir", type=Path, default=Path("demo"), help="the profile whose prepare.yaml the champions were trained on")
    ap.add_argument("--grid-mm", type=float, default=None, help="preprocess the cases at this in-plane voxel size instead of the "
                    "profile's (1.0: the platform's default, as a cohort dropped into the inbox is); each champion resamples to its own")
    ap.add_argument("--errors", action="store_true", help="where the auto champion's whole-tumour errors lie in intensity")
    ap.add_argument("--contrast", action="store_true", help="how the auto champion's whole tumour moves with the lesion's contrast")
    ap.add_argument("--export", type=Path, default=None, help="copy the auto champion and its figures here (the transfer test's fixture)")
    args = ap.parse_args(argv)

    from gbm_assets.defs.masks.assets import champion_checkpoint, champion_dice
    from gbm_assets.demo import load_run_config
    from gbm_assets.lib.masks.choice import choose_model_input
    from gbm_assets.lib.preprocess.volumes import PreprocessConfig
    from gbm_assets.lib.segment.checkpoint import registered_model_name
    from gbm_assets.lib.store.tracking import TrackingStore

    prepare = load_run_config(args.config_dir / "prepare.yaml").get("ops", {}).get("preprocessed_volumes", {}).get("config", {})
    if args.grid_mm is not None:
        prepare = regridded(prepare, args.grid_mm)
    config = PreprocessConfig(**prepare)
    prepare = {**prepare, "percentile_scaled": list(config.percentile_scaled), "anti_alias": config.anti_alias}  # recorded even as defaults
    uri = TrackingStore.for_data_root(args.data_root.resolve(), None).tracking_uri
    rows, errors, contrast = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        ranked = champion_dice(uri)  # the inputs that have a champion, with the Dice auto ranks on
        champions = {i: champion_checkpoint(uri, registered_model_name(i), Path(tmp) / i) for i in ranked}
        if not champions:
            print(f"no champion U-Net in {uri}; run make demo first", file=sys.stderr)
            return 1
        auto = choose_model_input("real", ("t1", "t1c", "t2", "flair"), ranked)  # both cases have all four sequences
        for name, (folder, files, labels_file, scheme) in CASES.items():
            if not (args.shared_data / folder).is_dir():
                print(f"skipped {name}: {args.shared_data / folder} is absent", file=sys.stderr)
                continue
            found, errs, stretched = case_rows(name, args.shared_data / folder, files, labels_file, scheme, champions, config,
                                               Path(tmp), auto if args.errors else None, auto if args.contrast else None)  # fmt: skip
            rows, errors, contrast = rows + found, errors + errs, contrast + stretched
        if args.export is not None:
            export(args.export, auto, champions[auto], [r for r in rows if r[1] == auto], prepare)
    print("| case | model | version | whole-tumour Dice | predicted / reference volume | enhancing Dice | reference ml |")
    print("|---|---|---|---|---|---|---|")
    for case, model_input, version, wt, ratio, et, ml in rows:
        name = f"**{model_input}** (auto)" if model_input == auto else model_input
        print(f"| {case} | {name} | {version} | {wt:.3f} | {ratio:.2f} | {'-' if np.isnan(et) else f'{et:.3f}'} | {ml:.1f} |")
    if errors:
        seqs = list(errors[0][3])
        print(f"\nWhere `{auto}`'s whole-tumour errors lie: median intensity as the network sees it (preprocessed grid)\n")
        print("| case | voxels | n | " + " | ".join(seqs) + " |")
        print("|---|---|---|" + "---|" * len(seqs))
        for case, what, n, medians in errors:
            print(f"| {case} | {what} | {n} | " + " | ".join(f"{medians[s]:+.2f}" for s in seqs) + " |")
    if contrast:
        print(f"\n`{auto}`'s whole tumour with the lesion's contrast stretched (preprocessed grid)\n")
        print("| case | stretched | factor | whole-tumour Dice | predicted / reference volume |")
        print("|---|---|---|---|---|")
        for case, sequences, factor, wt, ratio in contrast:
            print(f"| {case} | {sequences} | {factor:g} | {wt:.3f} | {ratio:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
