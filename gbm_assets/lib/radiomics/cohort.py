"""Extraction of a whole cohort: many `PatientTask`s on a `Compute` (a local process pool or a Dask
cluster; one extractor per worker, parameters validated once, SimpleITK single-threaded per
worker) -> three DataFrames in patient order, identical for any number of workers and backend."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable

import pandas as pd
import SimpleITK as sitk
from tqdm.auto import tqdm

from gbm_assets.lib.radiomics.extract import (
    ANY,
    EXCLUSION_COLUMNS,
    FEATURE_COLUMNS,
    TIMING_COLUMNS,
    PatientTask,
    extract_patient,
)
from gbm_assets.lib.radiomics.params import load_params
from gbm_assets.lib.store.compute import Compute, LocalCompute


def quiet_radiomics() -> None:
    """PyRadiomics logs to stderr from WARNING; failures are exclusion rows here, so keep ERROR only."""
    import radiomics  # its import sets the logger to INFO, so import first

    radiomics.logger.setLevel(logging.ERROR)


def _init_worker() -> None:
    """Per worker: one SimpleITK thread (the pool is the parallelism) and quiet PyRadiomics."""
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    quiet_radiomics()


def extract_cohort(
    tasks: Iterable[PatientTask], workers: int = 1, progress: bool = True, *,
    max_tasks_per_child: int | None = None, mp_context: str = "spawn", compute: Compute | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:  # fmt: skip
    """Extract many patients, on `compute` (a local pool or a Dask cluster) or a local pool of `workers`.

    Every distinct parameter file is validated first (PyRadiomics' schema), so a bad file fails
    before any image is read. Without `compute`, workers=1 runs in this process (tests,
    debugging); otherwise a `LocalCompute` process pool ("spawn" by default) gets one task at a
    time per worker. Each worker keeps one extractor per parameter file and logs PyRadiomics at
    ERROR only; problems are exclusion rows. A patient whose worker died twice (killed, out of
    memory) or whose extraction raised is one exclusion row (roi_source, region and sequence
    'any') with the reason, and no features; the others proceed.

    Returns:
        features (`FEATURE_COLUMNS`), exclusions (`EXCLUSION_COLUMNS`) and timings
        (`TIMING_COLUMNS`, seconds per patient; NaN for a failed patient), each sorted by
        (cohort, patient_id); within a patient, rows keep `extract_patient`'s order. Identical
        for any number of workers and either backend.

    Raises:
        ParameterFileError: a parameter file is unreadable or invalid.
        ValueError: two tasks share (cohort, patient_id).
    """
    tasks = sorted(tasks, key=lambda t: (t.cohort, t.patient_id))
    ids = [(t.cohort, t.patient_id) for t in tasks]
    if len(set(ids)) != len(ids):
        raise ValueError(f"duplicate patients in tasks: {sorted({i for i in ids if ids.count(i) > 1})[:5]}")
    for params in sorted({str(t.params) for t in tasks}):
        load_params(params)
    if compute is None:
        compute = LocalCompute(workers, mp_context=mp_context, max_tasks_per_child=max_tasks_per_child)
    if compute.workers <= 1 or len(tasks) <= 1:
        quiet_radiomics()
    results: dict[int, tuple] = {}
    with tqdm(total=len(tasks), disable=not progress, desc="radiomics", unit="patient") as bar:
        for task, res in compute.map_patients(extract_patient, tasks, initializer=_init_worker):
            if isinstance(res, BaseException):
                reason = f"extraction failed: {type(res).__name__}: {res}"
                res = ([], [{"cohort": task.cohort, "patient_id": task.patient_id, "roi_source": ANY,
                             "region": ANY, "sequence": ANY, "reason": reason}], math.nan)  # fmt: skip
            results[id(task)] = res
            bar.update()
    ordered = [results[id(t)] for t in tasks]
    rows = [r for res in ordered for r in res[0]]
    excl = [e for res in ordered for e in res[1]]
    timing = [{"cohort": t.cohort, "patient_id": t.patient_id, "seconds": res[2], "features": len(res[0]),
               "exclusions": len(res[1])} for t, res in zip(tasks, ordered)]  # fmt: skip
    return (pd.DataFrame(rows, columns=list(FEATURE_COLUMNS)).astype({"value": "float64"}),
            pd.DataFrame(excl, columns=list(EXCLUSION_COLUMNS)),
            pd.DataFrame(timing, columns=list(TIMING_COLUMNS)).astype({"seconds": "float64"}))  # fmt: skip
