"""Wall time of `extract_cohort` against PyRadiomics' own batch mode on the same work (not a test).

The work product: for every patient, all four sequences x all five regions, with the same
parameter file (default: the shipped `gbm_assets/config/radiomics.yaml`).
- ours: `extract_cohort(tasks, workers=<cores>)`: one task per patient; each worker keeps one
  validated extractor, reads each NIfTI once, computes shape once per region and the intensity
  classes per sequence on ROI-cropped images.
- PyRadiomics: `pyradiomics cases.csv --param <file> --jobs <cores> -f csv`, one CSV row per
  patient x sequence x region (Image = sequence NIfTI, Mask = that region's binary mask NIfTI,
  written beforehand and not timed), so every row re-reads its files and recomputes shape.

Both run once, from the page cache, one after the other (PyRadiomics first). The features must be
identical: the same names per (patient, sequence, region) and values within 1e-6 relative.
Prints both wall times and the ratio (target: ours >= 2x faster).

    python benchmarks/bench_radiomics.py                             # 4 synthetic patients
    python benchmarks/bench_radiomics.py --source msd --patients 4   # ../shared/data BRATS_001 x 4
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from gbm_assets.lib.contract import REGIONS, SEQUENCES, region_mask, to_canonical
from gbm_assets.lib.radiomics import PatientTask, default_params_path, extract_cohort

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
MSD_CHANNELS = {"flair": "0000", "t1": "0001", "t1c": "0002", "t2": "0003"}
# Mean shift (in sd) of each compartment per sequence: necrosis, edema, enhancing.
CONTRAST = {"t1": (-1.0, -0.5, 0.2), "t1c": (-0.8, -0.3, 2.5), "t2": (2.0, 1.8, 1.0), "flair": (0.8, 2.2, 1.2)}


def _zscore(image: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """As the preprocess stage does: clip to 0.5-99.5 percentiles and z-score inside the brain."""
    values = np.clip(image[brain], *np.percentile(image[brain], (0.5, 99.5)))
    out = np.zeros(image.shape, np.float32)
    out[brain] = (values - values.mean()) / values.std()
    return out


def synthetic_patient(rng: np.random.Generator, shape=(160, 192, 128)):
    """(images {seq: (X, Y, Z) float32}, canonical labels uint8, affine): a brain ellipsoid with
    smooth texture and an irregular tumour (edema around an enhancing rim around necrosis)."""
    grid = np.stack(np.meshgrid(*[np.arange(n) - n / 2 for n in shape], indexing="ij"))
    brain = ((grid / np.array([70.0, 85.0, 58.0])[:, None, None, None]) ** 2).sum(0) <= 1
    centre = rng.uniform([-30, -30, -15], [30, 30, 15])
    stretch = rng.uniform(0.8, 1.2, 3)[:, None, None, None]
    radius = np.sqrt((((grid - centre[:, None, None, None]) / stretch) ** 2).sum(0))
    bumps = ndimage.gaussian_filter(rng.normal(size=shape), 6)
    lumpy = radius * (1 + 0.25 * bumps / bumps.std())
    labels = np.zeros(shape, np.uint8)
    size = rng.uniform(22, 32)
    labels[(lumpy <= size) & brain] = 2
    labels[(lumpy <= 0.55 * size) & brain] = 3
    labels[(lumpy <= 0.3 * size) & brain] = 1
    texture = ndimage.gaussian_filter(rng.normal(size=shape), 2.0)
    images = {}
    for seq in SEQUENCES:
        image = texture / texture.std() + 0.5 * rng.normal(size=shape)
        for label, shift in zip((1, 2, 3), CONTRAST[seq]):
            image[labels == label] += shift
        images[seq] = _zscore(image, brain)
    affine = np.eye(4)
    affine[:3, 3] = -np.array(shape) / 2
    return images, labels, affine


def msd_patient():
    """BRATS_001 from ../shared/data: z-scored images and canonical labels."""
    folder = SHARED / "msd-task01-brats001"
    label_img = nib.load(folder / "BRATS_001_labels.nii.gz")
    labels = to_canonical(np.asarray(label_img.dataobj), "msd", "BRATS_001_labels.nii.gz")
    images = {}
    for seq, channel in MSD_CHANNELS.items():
        image = np.asarray(nib.load(folder / f"BRATS_001_{channel}.nii.gz").dataobj, dtype=np.float32)
        images[seq] = _zscore(image, image > 0)
    return images, labels, label_img.affine


def prepare(root: Path, source: str, patients: int, seed: int):
    """Write every patient's NIfTIs, region masks and the PyRadiomics batch CSV. Returns (tasks, csv, index)."""
    rng = np.random.default_rng(seed)
    tasks, index, rows = [], {}, []
    cached = msd_patient() if source == "msd" else None
    for p in range(patients):
        pid = f"P{p:03d}"
        folder = root / pid
        folder.mkdir(parents=True)
        images, labels, affine = cached if cached else synthetic_patient(rng)
        paths = {}
        for seq in SEQUENCES:
            paths[seq] = str(folder / f"{seq}.nii.gz")
            nib.save(nib.Nifti1Image(images[seq], affine), paths[seq])
        nib.save(nib.Nifti1Image(labels, affine), str(folder / "labels.nii.gz"))
        for region in REGIONS:
            mask_path = str(folder / f"mask_{region}.nii.gz")
            nib.save(nib.Nifti1Image(region_mask(labels, region).astype(np.uint8), affine), mask_path)
            for seq in SEQUENCES:
                rows.append({"Image": paths[seq], "Mask": mask_path})
                index[(paths[seq], mask_path)] = (pid, seq, region)
        tasks.append(PatientTask("bench", pid, paths, {"ground_truth": str(folder / "labels.nii.gz")}, str(PARAMS)))
    cases = root / "cases.csv"
    with open(cases, "w", newline="") as f:
        writer = csv.DictWriter(f, ["Image", "Mask"])
        writer.writeheader()
        writer.writerows(rows)
    return tasks, cases, index


def run_pyradiomics(cases: Path, out: Path, jobs: int) -> float:
    exe = Path(sys.executable).with_name("pyradiomics")
    out.unlink(missing_ok=True)
    cmd = [str(exe), str(cases), "--param", str(PARAMS), "--jobs", str(jobs), "-o", str(out), "-f", "csv"]
    start = time.perf_counter()
    with open(out.with_suffix(".log"), "w") as log:  # its per-case warnings, kept out of the report
        done = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"pyradiomics failed ({done.returncode}); see {out.with_suffix('.log')} (run with --keep)")
    return seconds


def compare(features, out: Path, index) -> tuple[int, float]:
    """Check PyRadiomics' CSV against our long rows. Returns (values compared, max relative difference)."""
    ours: dict[tuple, dict[str, float]] = {}
    for r in features.itertuples(index=False):
        ours.setdefault((r.patient_id, r.sequence, r.region), {})[f"original_{r.feature_class}_{r.feature}"] = r.value
    compared, worst, seen = 0, 0.0, 0
    with open(out, newline="") as f:
        for row in csv.DictReader(f):
            seen += 1
            pid, seq, region = index[(row.pop("Image"), row.pop("Mask"))]
            theirs = {k: float(v) for k, v in row.items() if not k.startswith("diagnostics_")}
            mine = {**ours.get((pid, "any", region), {}), **ours.get((pid, seq, region), {})}
            if set(theirs) != set(mine):
                differ = sorted(set(theirs) ^ set(mine))[:6]
                raise AssertionError(f"{pid} {seq} {region}: feature names differ: {differ}")
            for name, value in theirs.items():
                a = mine[name]
                same = a == value or (math.isnan(a) and math.isnan(value))
                rel = 0.0 if same else abs(a - value) / max(abs(value), 1e-300)
                worst = max(worst, rel)
                compared += 1
    if seen != len(index):
        raise AssertionError(f"PyRadiomics wrote {seen} rows, expected {len(index)}")
    return compared, worst


def main() -> None:
    global PARAMS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", choices=["synthetic", "msd"], default="synthetic")
    ap.add_argument("--patients", type=int, default=4)
    ap.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--params", type=Path, default=default_params_path())
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args()
    PARAMS = args.params.resolve()
    root = Path(tempfile.mkdtemp(prefix="bench_radiomics_"))
    try:
        t0 = time.perf_counter()
        tasks, cases, index = prepare(root, args.source, args.patients, args.seed)
        took = time.perf_counter() - t0
        print(f"prepared {len(tasks)} {args.source} patients, {len(index)} PyRadiomics rows in {took:.1f} s ({root})")
        startup = time.perf_counter()
        exe = str(Path(sys.executable).with_name("pyradiomics"))
        subprocess.run([exe, "--version"], check=True, capture_output=True)
        startup = time.perf_counter() - startup
        theirs = run_pyradiomics(cases, root / "pyradiomics.csv", args.workers)
        start = time.perf_counter()
        features, exclusions, timings = extract_cohort(tasks, workers=args.workers, progress=False)
        mine = time.perf_counter() - start
        if len(exclusions):
            raise AssertionError(f"unexpected exclusions:\n{exclusions}")
        compared, worst = compare(features, root / "pyradiomics.csv", index)
        print(f"workers: {args.workers}; params: {PARAMS.name}; features compared: {compared}; "
              f"max relative difference: {worst:.2e}")
        print(f"pyradiomics batch: {theirs:7.1f} s  (of which CLI start-up ~{startup:.1f} s)")
        print(f"gbm_assets:        {mine:7.1f} s  (per patient in a worker: {timings.seconds.mean():.1f} s)")
        print(f"speed-up: {theirs / mine:.2f}x  ({(theirs - startup) / mine:.2f}x without PyRadiomics' start-up)")
        if worst > 1e-6:
            raise SystemExit("features differ by more than 1e-6 relative")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


PARAMS = default_params_path()

if __name__ == "__main__":
    main()
