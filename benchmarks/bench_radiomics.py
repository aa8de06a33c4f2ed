"""Wall time of `extract_cohort` against two PyRadiomics baselines on the same work (not a test).

The work product: for every patient, all four sequences x all five regions, with the same
parameter file (default: the shipped `gbm_assets/config/radiomics.yaml`).
- ours: `extract_cohort(tasks, workers=W)`: one task per patient; each worker keeps one
  validated extractor, reads each NIfTI once, computes shape once per region and the intensity
  classes per sequence on ROI-cropped images.
- api pool: what a careful user writes with PyRadiomics' Python API: a
  `concurrent.futures.ProcessPoolExecutor(W)` (SimpleITK single-threaded per worker, PyRadiomics'
  logger at ERROR, as ours), one task per patient; each worker builds its
  `RadiomicsFeatureExtractor(<parameter file>)` once, reads each image and region mask once per
  patient (SimpleITK images passed to `execute`), and computes shape once per region (the first
  sequence's call; the other sequences' calls have shape disabled).
- cli: `pyradiomics cases.csv --param <file> --jobs W -f csv`, one CSV row per patient x sequence x
  region (Image = sequence NIfTI, Mask = that region's binary mask NIfTI), so every row re-reads
  its files and recomputes shape.

Region masks and the batch CSV are written beforehand and not timed. Each method runs `--repeats`
times, alternating (the starting method rotates each repeat), from the page cache; the median is
reported. The features must be identical: the same names per (patient, sequence, region) and
values within 1e-6 relative, ours against both baselines.

    python benchmarks/bench_radiomics.py                             # 4 synthetic patients
    python benchmarks/bench_radiomics.py --source msd --patients 4   # ../shared/data BRATS_001 x 4
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk
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
    tasks, index, rows, api_tasks = [], {}, [], []
    cached = msd_patient() if source == "msd" else None
    for p in range(patients):
        pid = f"P{p:03d}"
        folder = root / pid
        folder.mkdir(parents=True)
        images, labels, affine = cached if cached else synthetic_patient(rng)
        paths, masks = {}, {}
        for seq in SEQUENCES:
            paths[seq] = str(folder / f"{seq}.nii.gz")
            nib.save(nib.Nifti1Image(images[seq], affine), paths[seq])
        nib.save(nib.Nifti1Image(labels, affine), str(folder / "labels.nii.gz"))
        for region in REGIONS:
            mask_path = str(folder / f"mask_{region}.nii.gz")
            nib.save(nib.Nifti1Image(region_mask(labels, region).astype(np.uint8), affine), mask_path)
            masks[region] = mask_path
            for seq in SEQUENCES:
                rows.append({"Image": paths[seq], "Mask": mask_path})
                index[(paths[seq], mask_path)] = (pid, seq, region)
        tasks.append(PatientTask("bench", pid, paths, {"ground_truth": str(folder / "labels.nii.gz")}, str(PARAMS)))
        api_tasks.append((pid, paths, masks, str(PARAMS)))
    cases = root / "cases.csv"
    with open(cases, "w", newline="") as f:
        writer = csv.DictWriter(f, ["Image", "Mask"])
        writer.writeheader()
        writer.writerows(rows)
    return tasks, cases, index, api_tasks


def run_pyradiomics(cases: Path, out: Path, jobs: int) -> float:
    exe = Path(sys.executable).with_name("pyradiomics")
    out.unlink(missing_ok=True)
    cmd = [str(exe), str(cases), "--param", str(PARAMS), "--jobs", str(jobs), "-o", str(out), "-f", "csv"]
    start = time.perf_counter()
    with open(out.with_suffix(".log"), "w") as log:  # its per-case warnings, kept out of the report
        done = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=False)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"pyradiomics failed ({done.returncode}); see {out.with_suffix('.log')} (run with --keep)")
    return seconds


def _api_init() -> None:
    """Per api-pool worker, as ours: one SimpleITK thread (the pool is the parallelism), PyRadiomics quiet."""
    import logging

    import radiomics

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    radiomics.logger.setLevel(logging.ERROR)


_API_EXTRACTORS: dict = {}


def _api_extractors(params: str):
    """(full, without shape) extractors from the parameter file, built once per worker."""
    if params not in _API_EXTRACTORS:
        from radiomics.featureextractor import RadiomicsFeatureExtractor

        full = RadiomicsFeatureExtractor(params)
        no_shape = RadiomicsFeatureExtractor(params)
        no_shape.enabledFeatures = {c: f for c, f in no_shape.enabledFeatures.items() if not c.startswith("shape")}
        _API_EXTRACTORS[params] = (full, no_shape)
    return _API_EXTRACTORS[params]


def api_patient(work) -> dict[tuple[str, str, str], dict[str, float]]:
    """One patient with PyRadiomics' Python API: each file read once, shape once per region.

    Returns {(patient, sequence, region): {"original_<class>_<feature>": value}}, the region's shape
    features included in every sequence's entry (as PyRadiomics' CLI rows have them).
    """
    pid, paths, masks, params = work
    full, no_shape = _api_extractors(params)
    images = {seq: sitk.ReadImage(paths[seq]) for seq in SEQUENCES}
    out = {}
    for region, mask_path in masks.items():
        mask = sitk.ReadImage(mask_path)
        shape: dict[str, float] = {}
        for i, seq in enumerate(SEQUENCES):
            result = (full if i == 0 else no_shape).execute(images[seq], mask, label=1)
            values = {k: float(v) for k, v in result.items() if not k.startswith("diagnostics_")}
            if i == 0:
                shape = {k: v for k, v in values.items() if k.startswith("original_shape")}
            out[(pid, seq, region)] = {**shape, **values}
    return out


def run_api_pool(api_tasks, workers: int) -> tuple[float, dict]:
    """PyRadiomics' Python API in a process pool of `workers`, one task per patient. Returns (seconds, features)."""
    start = time.perf_counter()
    features: dict = {}
    with ProcessPoolExecutor(min(workers, len(api_tasks)), initializer=_api_init) as pool:
        for result in pool.map(api_patient, api_tasks):
            features.update(result)
    return time.perf_counter() - start, features


def run_ours(tasks, workers: int):
    start = time.perf_counter()
    features, exclusions, _ = extract_cohort(tasks, workers=workers, progress=False)
    seconds = time.perf_counter() - start
    if len(exclusions):
        raise AssertionError(f"unexpected exclusions:\n{exclusions}")
    return seconds, features


def ours_by_roi(features) -> dict[tuple[str, str, str], dict[str, float]]:
    """Our long rows as {(patient, sequence, region): {"original_<class>_<feature>": value}}, shape included."""
    rows: dict[tuple, dict[str, float]] = {}
    for r in features.itertuples(index=False):
        rows.setdefault((r.patient_id, r.sequence, r.region), {})[f"original_{r.feature_class}_{r.feature}"] = r.value
    return {(pid, seq, region): {**rows.get((pid, "any", region), {}), **values}
            for (pid, seq, region), values in rows.items() if seq != "any"}  # fmt: skip


def cli_by_roi(out: Path, index) -> dict[tuple[str, str, str], dict[str, float]]:
    """PyRadiomics' batch CSV as {(patient, sequence, region): {feature: value}}."""
    theirs = {}
    with open(out, newline="") as f:
        for row in csv.DictReader(f):
            key = index[(row.pop("Image"), row.pop("Mask"))]
            theirs[key] = {k: float(v) for k, v in row.items() if not k.startswith("diagnostics_")}
    return theirs


def compare(mine: dict, theirs: dict, what: str) -> tuple[int, float]:
    """Same ROIs, same feature names, values within 1e-6 relative. Returns (values compared, max relative difference)."""
    if set(mine) != set(theirs):
        differ = sorted(set(mine) ^ set(theirs))[:6]
        raise AssertionError(f"{what}: different ROIs (patient, sequence, region): {differ}")
    compared, worst = 0, 0.0
    for key, values in theirs.items():
        if set(values) != set(mine[key]):
            raise AssertionError(f"{what} {key}: feature names differ: {sorted(set(values) ^ set(mine[key]))[:6]}")
        for name, value in values.items():
            a = mine[key][name]
            same = a == value or (math.isnan(a) and math.isnan(value))
            worst = max(worst, 0.0 if same else abs(a - value) / max(abs(value), 1e-300))
            compared += 1
    return compared, worst


def main() -> None:
    global PARAMS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", choices=["synthetic", "msd"], default="synthetic")
    ap.add_argument("--patients", type=int, default=4)
    ap.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--repeats", type=int, default=5, help="runs of each method, alternating")
    ap.add_argument("--params", type=Path, default=default_params_path())
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args()
    PARAMS = args.params.resolve()
    root = Path(tempfile.mkdtemp(prefix="bench_radiomics_"))
    try:
        t0 = time.perf_counter()
        tasks, cases, index, api_tasks = prepare(root, args.source, args.patients, args.seed)
        took = time.perf_counter() - t0
        print(f"prepared {len(tasks)} {args.source} patients, {len(index)} ROI x sequence extractions in {took:.1f} s ({root})")
        startup = time.perf_counter()
        exe = str(Path(sys.executable).with_name("pyradiomics"))
        subprocess.run([exe, "--version"], check=True, capture_output=True)
        startup = time.perf_counter() - startup
        methods = {
            "cli": lambda: (run_pyradiomics(cases, root / "pyradiomics.csv", args.workers), None),
            "api": lambda: run_api_pool(api_tasks, args.workers),
            "ours": lambda: run_ours(tasks, args.workers),
        }
        names = list(methods)
        seconds: dict[str, list[float]] = {m: [] for m in names}
        checked: dict[str, tuple[int, float]] = {}
        for rep in range(args.repeats):
            order = names[rep % len(names):] + names[: rep % len(names)]
            outputs = {}
            for name in order:
                took, outputs[name] = methods[name]()
                seconds[name].append(took)
            mine = ours_by_roi(outputs["ours"])
            for name, theirs in (("api", outputs["api"]), ("cli", cli_by_roi(root / "pyradiomics.csv", index))):
                compared, worst = compare(mine, theirs, f"ours vs {name}")
                checked[name] = (compared, max(worst, checked.get(name, (0, 0.0))[1]))
            print(f"repeat {rep + 1}/{args.repeats} ({' -> '.join(order)}): "
                  + ", ".join(f"{n} {seconds[n][-1]:.1f} s" for n in names), flush=True)  # fmt: skip
        median = {n: statistics.median(v) for n, v in seconds.items()}
        print(f"workers: {args.workers} (nproc {os.cpu_count()}); params: {PARAMS.name}; repeats: {args.repeats}")
        for name, (compared, worst) in checked.items():
            print(f"features ours vs {name}: {compared} values per repeat, max relative difference {worst:.2e}")
        print(f"pyradiomics CLI batch (--jobs {args.workers}):  median {median['cli']:7.2f} s  "
              f"(of which CLI start-up ~{startup:.1f} s)")
        print(f"pyradiomics API pool ({args.workers} workers):  median {median['api']:7.2f} s")
        print(f"gbm_assets extract_cohort:           median {median['ours']:7.2f} s")
        print(f"ours vs API pool: {median['api'] / median['ours']:.2f}x faster; "
              f"ours vs CLI: {median['cli'] / median['ours']:.2f}x faster")
        if any(worst > 1e-6 for _, worst in checked.values()):
            raise SystemExit("features differ by more than 1e-6 relative")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


PARAMS = default_params_path()

if __name__ == "__main__":
    main()
