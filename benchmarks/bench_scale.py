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

With --compare-dask, instead: preprocessing and radiomics (the stages fanned out per patient
through lib/store/compute.py) on one cohort, on the local process pool and on a Dask LocalCluster
(127.0.0.1, processes, one thread each) with the same number of workers, repeated with the order
alternating; prints the median wall times, dask / local (target <= 1.10) and whether both
backends' outputs are identical.

At the largest size the training epoch also runs with the pre-issue-10 eager loader (every slice
copied into RAM and concatenated), to show the memory the lazy views save.

Prints per stage and size: seconds per patient and peak RSS (MB), then the ratios largest /
smallest (targets: per-patient cost and peak training RSS flat within 25%, i.e. ratio <= 1.25).
One run per size: on a busy machine, rerun and compare.

    python benchmarks/bench_scale.py                        # 20, 80, 320 patients (minutes on 2 cores)
    python benchmarks/bench_scale.py --sizes 10 40 --keep   # smaller; keep the data under --workdir
    python benchmarks/bench_scale.py --quick                # smoke run: 5 and 10 tiny patients
    python benchmarks/bench_scale.py --compare-dask 40      # local pool vs Dask, 2 workers each, 3 repeats
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
COMPARE_STAGES = ("preprocess", "radiomics")  # the stages fanned out through lib/store/compute.py here
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


def _preprocess_tasks(root: Path, size: int, out: Path | None = None) -> list:
    """Every patient's `PreprocessTask` (the assets' picklable unit), writing under `out` (default: preprocessed)."""
    from gbm_assets.lib.preprocess.tasks import PreprocessTask
    from gbm_assets.lib.preprocess.volumes import PreprocessConfig
    from gbm_assets.lib.store.paths import DataRoot
    from gbm_assets.lib.synth.phantom import BRATS_SUFFIX

    config, data = PreprocessConfig(target_spacing_mm=192 / size, size=size), DataRoot(root)
    return [PreprocessTask(pid, {s: str(folder / f"{pid}_{x}.nii.gz") for s, x in BRATS_SUFFIX.items()}, str(folder / f"{pid}_seg.nii.gz"),
                           "brats", str(out / pid if out else data.volume_dir("preprocessed", COHORT, pid)), config)
            for pid, folder in _patients(root)]  # fmt: skip


def stage_preprocess(root: Path, n: int, size: int, slices: int, threads: int) -> None:
    from gbm_assets.lib.preprocess.tasks import preprocess_task

    for task in _preprocess_tasks(root, size):
        preprocess_task(task)


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


def _radiomics_tasks(root: Path) -> list:
    """Every patient's `PatientTask`: four sequences, whole tumour of the predicted mask."""
    from gbm_assets.lib.radiomics import PatientTask, default_params_path
    from gbm_assets.lib.store.paths import DataRoot
    from gbm_assets.lib.synth.phantom import BRATS_SUFFIX

    data, params = DataRoot(root), str(default_params_path())
    return [PatientTask(COHORT, pid, {s: str(folder / f"{pid}_{x}.nii.gz") for s, x in BRATS_SUFFIX.items()},
                        {"predicted": str(data.volume_dir("lesion_masks", COHORT, pid) / "mask.nii.gz")}, params,
                        regions=("whole_tumor",), roi_schemes={"predicted": "binary"})
            for pid, folder in _patients(root)]  # fmt: skip


def stage_radiomics(root: Path, n: int, size: int, slices: int, threads: int) -> None:
    from gbm_assets.lib.radiomics.extract import extract_patient

    for task in _radiomics_tasks(root):
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


def run_compare(what: str, backend: str, root: Path, size: int, workers: int) -> dict:
    """One fan-out stage's patients on `backend` ("local" pool | a fresh Dask `LocalCluster` on
    127.0.0.1), `workers` single-threaded worker processes (called in the child process). The clock
    covers the fan-out only (the pool's start and its workers' imports, as in an asset; the Dask
    workers' imports too): the cluster's start is printed apart, a Dask cluster outlives runs."""
    import hashlib
    import importlib
    from contextlib import ExitStack

    from gbm_assets.lib.store.compute import collect, open_compute

    for module in SHARED_IMPORTS:
        importlib.import_module(module)
    with ExitStack() as stack:
        t0, address = time.perf_counter(), ""
        if backend == "dask":
            from distributed import LocalCluster

            address = stack.enter_context(LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                                       dashboard_address=None)).scheduler_address  # fmt: skip
        compute = stack.enter_context(open_compute(backend, workers=workers, scheduler_address=address, data_root=str(root)))
        startup, t0 = time.perf_counter() - t0, time.perf_counter()
        if what == "preprocess":  # written beside the setup's volumes, one folder per backend
            from gbm_assets.lib.preprocess.tasks import preprocess_task

            tasks = _preprocess_tasks(root, size, root / "compare" / backend)
            rows = [r if isinstance(r, BaseException) else {k: v for k, v in r.items() if k != "dir"}
                    for _, r in collect(compute.map_patients(preprocess_task, tasks), tasks)]  # fmt: skip
            if failed := [r for r in rows if isinstance(r, BaseException)]:
                raise RuntimeError(f"{len(failed)} patients failed to preprocess on {backend}: {failed[0]!r}")
            out = json.dumps(rows, sort_keys=True)
        else:
            from gbm_assets.lib.radiomics import extract_cohort

            features, exclusions, _ = extract_cohort(_radiomics_tasks(root), progress=False, compute=compute)
            out = features.to_csv() + exclusions.to_csv()
        seconds = time.perf_counter() - t0
    return {"stage": what, "backend": backend, "patients": len(_patients(root)), "workers": workers, "seconds": seconds,
            "startup_s": startup, "digest": hashlib.sha1(out.encode()).hexdigest()}  # fmt: skip


# ---- driver -------------------------------------------------------------------------------------


def _child(name: str, root: Path, n: int, args, *extra: str) -> dict:
    cmd = [sys.executable, __file__, "--stage", name, "--root", str(root), "--n", str(n), "--size", str(args.size),
           "--slices", str(args.slices), "--threads", str(args.threads), *extra]  # fmt: skip
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


def compare_dask(work: Path, n: int, args) -> list[dict]:
    """Each fan-out stage on the local pool and on Dask, `args.repeats` times, alternating which goes first."""
    root = work / f"dask_n{n}"
    _child("synth", root, n, args)
    for stage in STAGES[: 4 if "radiomics" in args.compare_stages else 0]:  # radiomics reads the predicted masks
        _child(stage, root, n, args)
    runs = []
    for rep in range(args.repeats):
        for backend in ("local", "dask") if rep % 2 == 0 else ("dask", "local"):
            for what in args.compare_stages:
                runs.append(_child("compare", root, n, args, "--what", what, "--backend", backend, "--workers", str(args.workers)))
                print(f"repeat {rep + 1}  {what:10s} {backend:5s} {runs[-1]['seconds']:8.2f} s  "
                      f"(start {runs[-1]['startup_s']:.1f} s)", flush=True)  # fmt: skip
    return runs


def compare_table(runs: list[dict]) -> str:
    """Per stage: median wall time on each backend, dask / local (target <= 1.10), the same with the
    cluster's start counted (a one-off for a long-lived cluster, paid per run here), identical outputs."""
    import statistics

    lines = [("| stage | patients | workers | repeats | local pool median s | dask median s | dask / local | dask cluster start s "
              "| dask incl. start / local | identical outputs |"), "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for stage in dict.fromkeys(r["stage"] for r in runs):
        got = {b: [r for r in runs if r["stage"] == stage and r["backend"] == b] for b in ("local", "dask")}
        local, dask = (statistics.median(r["seconds"] for r in got[b]) for b in ("local", "dask"))
        same = "yes" if len({r["digest"] for r in got["local"] + got["dask"]}) == 1 else "NO"
        start = statistics.median(r["startup_s"] for r in got["dask"])
        lines.append(f"| {stage} | {got['local'][0]['patients']} | {got['local'][0]['workers']} | {len(got['local'])} | {local:.2f} | "
                     f"{dask:.2f} | {dask / local:.2f} | {start:.1f} | {(dask + start) / local:.2f} | {same} |")  # fmt: skip
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
    ap.add_argument("--compare-dask", type=int, nargs="?", const=40, default=None, metavar="PATIENTS",
                    help="instead: the fan-out stages on the local pool vs a local Dask cluster (default 40 patients)")
    ap.add_argument("--compare-stages", nargs="+", choices=COMPARE_STAGES, default=list(COMPARE_STAGES))
    ap.add_argument("--workers", type=int, default=2, help="worker processes of either backend (--compare-dask)")
    ap.add_argument("--repeats", type=int, default=3, help="runs per backend, alternating order (--compare-dask)")
    ap.add_argument("--stage", help=argparse.SUPPRESS)
    ap.add_argument("--what", help=argparse.SUPPRESS)
    ap.add_argument("--backend", help=argparse.SUPPRESS)
    ap.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.stage:  # child: one stage, one JSON line
        print(json.dumps(run_compare(args.what, args.backend, args.root, args.size, args.workers) if args.stage == "compare"
                         else run_stage(args.stage, args.root, args.n, args.size, args.slices, args.threads)))  # fmt: skip
        return {}
    if args.quick:
        args.sizes, args.size, args.slices = [5, 10], 32, 16
        args.compare_dask = args.compare_dask and 6
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_scale_"))
    results = []
    try:
        if args.compare_dask:
            runs = compare_dask(work, args.compare_dask, args)
            print(f"\n{args.size} x {args.size} x {args.slices} voxels, {args.workers} workers each, 1 thread per worker\n")
            print(compare_table(runs))
            return {"compare": runs}
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
