"""Cost per patient and peak memory of each stage as cohorts grow (issue 10; not a test).

Synthetic cohorts of growing size (default 20, 80 and 320 patients, 64 x 64 in-plane, 24 slices)
go through the library functions the assets call, without Dagster, so the numbers are the
computation's: preprocessing (read NIfTI, resample, normalise, save), training slices (the
memory-mapped arrays of every input), one training epoch of the stack U-Net (lazy slice views,
validation included), masks (inference, post-processing, native-grid NIfTI) and radiomics
(PyRadiomics, whole tumour of the predicted mask, four sequences). Each stage of each size runs in
a fresh Python process, so its peak RSS (the kernel's VmHWM for that process) is its own; the
process's RSS after imports is printed beside it. Stages run one patient at a time in one process
(no pool), so wall time per patient compares like with like across sizes.

At the largest size the training epoch also runs with the pre-issue-10 eager loader (every slice
copied into RAM and concatenated), to show the memory the lazy views save.

Prints per stage and size: seconds per patient and peak RSS (MB), then the ratios largest /
smallest (targets: per-patient cost and peak training RSS flat within 25%, i.e. ratio <= 1.25).
One run per size: on a busy machine, rerun and compare.

    python benchmarks/bench_scale.py                        # 20, 80, 320 patients (minutes on 2 cores)
    python benchmarks/bench_scale.py --sizes 10 40 --keep   # smaller; keep the data under --workdir
    python benchmarks/bench_scale.py --quick                # smoke run: 5 and 10 tiny patients
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The driver imports nothing heavy: each stage's process starts from a small parent.
STAGES = ("preprocess", "slices", "train_epoch", "masks", "radiomics")
SHARED_IMPORTS = ("gbm_assets.lib.synth.phantom", "gbm_assets.lib.preprocess.slices", "gbm_assets.lib.segment.train",
                  "gbm_assets.lib.segment.dataset", "gbm_assets.lib.segment.inference", "gbm_assets.lib.masks.native",
                  "gbm_assets.lib.masks.postprocess", "gbm_assets.lib.radiomics.extract", "gbm_assets.lib.store.tables")  # fmt: skip
COHORT = "bench"
INPUT = "stack"


def _vm_hwm_mb() -> float:
    """Peak resident set of this process so far (VmHWM), MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---- stages (run in a child process) ------------------------------------------------------------


def _patients(root: Path) -> list[tuple[str, Path]]:
    return sorted((p.name, p) for p in (root / "cohorts" / COHORT).iterdir() if p.is_dir())


def _split(i: int) -> str:
    """70% train, 20% validation, 10% test, interleaved (every 5th patient validates: 5 patients suffice)."""
    return "validation" if i % 5 == 4 else "test" if i % 10 == 7 else "train"


def stage_synth(root: Path, n: int, size: int, slices: int, threads: int) -> None:
    from gbm_assets.lib.synth.phantom import SynthOptions, write_cohort

    write_cohort(root / "cohorts", COHORT, n, seed=0, options=SynthOptions(shape=(size, size, slices), spacing=(192 / size, 192 / size, 132 / slices)))


def stage_preprocess(root: Path, n: int, size: int, slices: int, threads: int) -> None:
    from gbm_assets.lib.preprocess.volumes import (
        PreprocessConfig,
        preprocess_patient,
        read_case,
        save_preprocessed,
    )
    from gbm_assets.lib.store.paths import DataRoot
    from gbm_assets.lib.synth.phantom import BRATS_SUFFIX

    config, data = PreprocessConfig(target_spacing_mm=192 / size, size=size), DataRoot(root)
    for pid, folder in _patients(root):
        images, labels = read_case({s: folder / f"{pid}_{x}.nii.gz" for s, x in BRATS_SUFFIX.items()}, folder / f"{pid}_seg.nii.gz", "brats")
        save_preprocessed(preprocess_patient(images, labels, config), data.volume_dir("preprocessed", COHORT, pid))


def stage_slices(root: Path, n: int, size: int, slices: int, threads: int) -> None:
    from gbm_assets.lib.preprocess.slices import write_slice_arrays
    from gbm_assets.lib.store.paths import DataRoot
    from gbm_assets.lib.store.tables import write_parquet_atomic

    data = DataRoot(root)
    plan = [(COHORT, pid, data.volume_dir("preprocessed", COHORT, pid), _split(i)) for i, (pid, _) in enumerate(_patients(root))]
    index, _ = write_slice_arrays(data.volume_dir("training_slices", COHORT), plan)
    write_parquet_atomic(index, data.table_file("training_slices", COHORT))


def _slice_data(root: Path):
    import pandas as pd

    from gbm_assets.lib.segment.dataset import load_slice_data
    from gbm_assets.lib.store.paths import DataRoot

    pids = [pid for pid, _ in _patients(root)]
    patients = pd.DataFrame({"cohort": COHORT, "patient_id": pids, "split": [_split(i) for i in range(len(pids))]})
    return load_slice_data(DataRoot(root), patients, INPUT)


def _train(root: Path, threads: int, x, y, vx, vy) -> None:
    from gbm_assets.lib.segment.checkpoint import architecture, save_checkpoint
    from gbm_assets.lib.segment.train import TrainConfig, train_unet

    cfg = TrainConfig(base=8, epochs=1, batch_size=16, lr=2e-3, device="cpu", threads=threads, progress=False)
    result = train_unet(x, y, vx, vy, cfg)
    save_checkpoint(root / "model.pt", result.best_state, architecture(x.shape[1], cfg.base, cfg.dropout), INPUT)


def stage_train_epoch(root: Path, n: int, size: int, slices: int, threads: int) -> None:
    data = _slice_data(root)
    _train(root, threads, data.x["train"], data.y["train"], data.x["validation"], data.y["validation"])


def stage_train_epoch_eager(root: Path, n: int, size: int, slices: int, threads: int) -> None:
    """The pre-issue-10 loader: each cohort's rows copied out of the memmaps, then concatenated."""
    import numpy as np

    from gbm_assets.lib.store.paths import DataRoot

    data = _slice_data(root)
    folder = DataRoot(root).volume_dir("training_slices", COHORT)
    x_mm, y_mm = np.load(folder / f"{INPUT}_x.npy", mmap_mode="r"), np.load(folder / "y.npy", mmap_mode="r")
    arrays = {}
    for split in ("train", "validation"):
        take = data.index[split]["row"].to_numpy()
        arrays[split] = (np.concatenate([np.asarray(x_mm[take], dtype=np.float32)]), np.concatenate([np.asarray(y_mm[take]) > 0]))
    _train(root / "eager", threads, *arrays["train"], *arrays["validation"])


def stage_masks(root: Path, n: int, size: int, slices: int, threads: int) -> None:
    import torch

    from gbm_assets.lib.masks.native import save_native_mask
    from gbm_assets.lib.masks.postprocess import postprocess_mask
    from gbm_assets.lib.preprocess.volumes import load_preprocessed
    from gbm_assets.lib.segment.checkpoint import load_checkpoint
    from gbm_assets.lib.segment.inference import predict_volume
    from gbm_assets.lib.store.paths import DataRoot

    torch.set_num_threads(threads)
    model, data = load_checkpoint(root / "model.pt"), DataRoot(root)
    for pid, _ in _patients(root):
        patient = load_preprocessed(data.volume_dir("preprocessed", COHORT, pid))
        mask = postprocess_mask(predict_volume(model, patient, INPUT), patient.spacing)
        save_native_mask(mask, patient.transform, data.volume_dir("lesion_masks", COHORT, pid) / "mask.nii.gz")


def stage_radiomics(root: Path, n: int, size: int, slices: int, threads: int) -> None:
    from gbm_assets.lib.radiomics import PatientTask, default_params_path
    from gbm_assets.lib.radiomics.extract import extract_patient
    from gbm_assets.lib.store.paths import DataRoot
    from gbm_assets.lib.synth.phantom import BRATS_SUFFIX

    data, params = DataRoot(root), str(default_params_path())
    for pid, folder in _patients(root):
        task = PatientTask(COHORT, pid, {s: str(folder / f"{pid}_{x}.nii.gz") for s, x in BRATS_SUFFIX.items()},
                           {"predicted": str(data.volume_dir("lesion_masks", COHORT, pid) / "mask.nii.gz")}, params,
                           regions=("whole_tumor",), roi_schemes={"predicted": "binary"})  # fmt: skip
        extract_patient(task)


def run_stage(name: str, root: Path, n: int, size: int, slices: int, threads: int) -> dict:
    """Run one stage here and return its numbers (called in the child process)."""
    import importlib

    fn = globals()[f"stage_{name}"]
    for module in SHARED_IMPORTS:  # every stage pays the same imports before the clock starts
        importlib.import_module(module)

    base = _vm_hwm_mb()
    t0 = time.perf_counter()
    fn(root, n, size, slices, threads)
    return {"stage": name, "patients": n, "seconds": time.perf_counter() - t0, "peak_rss_mb": _vm_hwm_mb(), "import_rss_mb": base}


# ---- driver -------------------------------------------------------------------------------------


def _child(name: str, root: Path, n: int, args) -> dict:
    cmd = [sys.executable, __file__, "--stage", name, "--root", str(root), "--n", str(n), "--size", str(args.size),
           "--slices", str(args.slices), "--threads", str(args.threads)]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode:
        raise RuntimeError(f"stage {name} at {n} patients failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(results: list[dict], sizes: list[int]) -> str:
    """The printed table: per stage, seconds per patient and peak RSS per size, and largest / smallest."""
    by = {(r["stage"], r["patients"]): r for r in results}
    head = "| stage | " + " | ".join(f"{n} pts s/pt | {n} pts peak MB" for n in sizes) + " | s/pt ratio | peak RSS ratio |"
    lines = [head, "|" + "---|" * (2 * len(sizes) + 3)]
    for stage in (*STAGES, "train_epoch_eager"):
        rows = [by.get((stage, n)) for n in sizes]
        if not any(rows):
            continue
        cells = " | ".join("- | -" if r is None else f"{r['seconds'] / r['patients']:.3f} | {r['peak_rss_mb']:.0f}" for r in rows)
        first, last = rows[0], rows[-1]
        ratio = (f"{(last['seconds'] / last['patients']) / (first['seconds'] / first['patients']):.2f} | {last['peak_rss_mb'] / first['peak_rss_mb']:.2f}"
                 if first and last and first is not last else "- | -")  # fmt: skip
        lines.append(f"| {stage} | {cells} | {ratio} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[20, 80, 320], help="patients per cohort, ascending")
    ap.add_argument("--size", type=int, default=64, help="in-plane voxels after preprocessing (a multiple of 16)")
    ap.add_argument("--slices", type=int, default=24, help="axial slices per synthetic patient")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per stage (1 on a shared machine)")
    ap.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES),
                    help="stages to run, in order (each needs the ones before it: preprocess slices ...)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 5 and 10 patients of 32 x 32 x 16")
    ap.add_argument("--workdir", type=Path, default=None, help="where the cohorts go (default: a temporary folder)")
    ap.add_argument("--keep", action="store_true", help="keep --workdir's data afterwards")
    ap.add_argument("--stage", help=argparse.SUPPRESS)
    ap.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.stage:  # child: one stage, one JSON line
        print(json.dumps(run_stage(args.stage, args.root, args.n, args.size, args.slices, args.threads)))
        return {}
    if args.quick:
        args.sizes, args.size, args.slices = [5, 10], 32, 16
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_scale_"))
    results = []
    try:
        for n in args.sizes:
            root = work / f"n{n}"
            _child("synth", root, n, args)
            for stage in args.stages:
                results.append(_child(stage, root, n, args))
                print(f"{n:5d} patients  {stage:18s} {results[-1]['seconds'] / n:8.3f} s/patient  "
                      f"peak {results[-1]['peak_rss_mb']:7.0f} MB (after imports {results[-1]['import_rss_mb']:.0f} MB)", flush=True)  # fmt: skip
        if "train_epoch" in args.stages:
            results.append(_child("train_epoch_eager", work / f"n{args.sizes[-1]}", args.sizes[-1], args))
            lazy = next(r for r in results if r["stage"] == "train_epoch" and r["patients"] == args.sizes[-1])
            eager = results[-1]
            print(f"\none training epoch at {args.sizes[-1]} patients: peak RSS eager {eager['peak_rss_mb']:.0f} MB, "
                  f"lazy {lazy['peak_rss_mb']:.0f} MB (saves {eager['peak_rss_mb'] - lazy['peak_rss_mb']:.0f} MB); "
                  f"wall eager {eager['seconds']:.1f} s, lazy {lazy['seconds']:.1f} s")  # fmt: skip
        print()
        print(table(results, args.sizes))
    finally:
        if not (args.keep and args.workdir):
            shutil.rmtree(work, ignore_errors=True)
    return {"results": results, "sizes": args.sizes}


if __name__ == "__main__":
    main()
