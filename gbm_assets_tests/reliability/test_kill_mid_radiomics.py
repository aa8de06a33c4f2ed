"""kill -9 of a run in the middle of radiomics loses nothing: no partial table is ever visible,
and the re-run gives exactly the rows of an uninterrupted run.

The run is `dagster asset materialize` of the radiomics multi-asset in a subprocess (its own
process group) on a temporary Dagster home and data root, extracting from the cohort's
ground-truth labels only. `lesion_masks` (the U-Net's masks, an input of the asset) is a table
with one 'excluded' row per patient: with `roi_sources: [ground_truth]` the asset reads it but
extracts nothing from it, so no U-Net has to be trained.
"""

from __future__ import annotations

import time

import dagster as dg
import pandas as pd
import pandas.testing as pdt
import pytest

from gbm_assets.lib.synth.phantom import SynthOptions, write_cohort
from gbm_assets_tests.conftest import add_cohort, materialize
from gbm_assets_tests.reliability.procs import (
    IN_PROCESS,
    Project,
    cmdline,
    descendants,
    kill_group,
    visible_tables,
)

COHORT = "C"
TINY = SynthOptions(shape=(48, 48, 24), spacing=(3.0, 3.0, 6.0))
PATIENTS = 4
RADIOMICS = ["radiomic_features", "radiomic_features_wide", "radiomics_exclusions", "radiomics_provenance"]
SETTINGS = {"roi_sources": ["ground_truth"], "workers": 2}
RUN_SPECIFIC = ["dagster_run_id", "extracted_at", "workers", "seconds_per_patient_mean", "seconds_per_patient_max",
                "wall_seconds"]  # fmt: skip
"""radiomics_provenance columns that describe the run, not the data."""


def _stub_lesion_masks(data_root, cohort: str, patients: list[str]) -> None:
    """lesion_masks as the masks stage writes it when no patient could be segmented."""
    rows = [{"cohort": cohort, "patient_id": pid, "status": "excluded", "problems": "not segmented in this test",
             "mask_path": None, "roi_scheme": "binary", "model_name": "none", "model_version": "0", "voxels": None,
             "volume_ml": None, "empty": True} for pid in patients]  # fmt: skip
    path = data_root / "tables" / "lesion_masks" / f"{cohort}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(path, index=False)


def _cohort_with_upstream(data_root) -> dg.DagsterInstance:
    """The synthetic cohort, raw_cohort and clinical_records (in this process, on an ephemeral
    instance, which it returns), and the lesion_masks stub."""
    write_cohort(data_root / "cohorts", COHORT, PATIENTS, seed=5, options=TINY)
    instance = dg.DagsterInstance.ephemeral()
    add_cohort(instance, COHORT)
    materialize(data_root, ["raw_cohort", "clinical_records"], COHORT, instance=instance)
    _stub_lesion_masks(data_root, COHORT, [f"{COHORT}-{i:03d}" for i in range(PATIENTS)])
    return instance


def _radiomics_workers(pid: int) -> list[int]:
    """The extraction pool's worker processes under `pid` (spawned by multiprocessing; not its resource tracker)."""
    return [p for p in descendants(pid) if "spawn_main" in (c := cmdline(p)) and "resource_tracker" not in c]


def _radiomics_tables(data_root) -> dict[str, pd.DataFrame]:
    tables = visible_tables(data_root)
    return {name: tables[f"{name}/{COHORT}.parquet"] for name in RADIOMICS}


@pytest.mark.slow
def test_kill_9_mid_radiomics_loses_nothing(tmp_path):
    project = Project.create(tmp_path / "killed")
    _cohort_with_upstream(project.data_root)
    project.gbm_assets("add-cohort", COHORT)
    run_config = IN_PROCESS | {"ops": {"radiomic_features": {"config": SETTINGS}}}
    before = visible_tables(project.data_root)

    run = project.start_materialize(RADIOMICS, COHORT, run_config, "killed")
    try:
        deadline, workers = time.monotonic() + 120, []
        while time.monotonic() < deadline and run.poll() is None:
            visible_tables(project.data_root)  # every poll: only complete tables visible
            workers = _radiomics_workers(run.pid)
            if workers:
                break
            time.sleep(0.05)
        assert workers, f"no radiomics worker appeared (exit {run.poll()}):\n{project.log_tail('killed')}"
        time.sleep(0.3)  # let the workers start extracting
    finally:
        kill_group(run)
    assert run.returncode == -9
    after_kill = visible_tables(project.data_root)
    assert not any(name.startswith(tuple(RADIOMICS)) for name in after_kill), "radiomics finished before the kill"
    assert set(after_kill) == set(before), "the killed run left tables behind"
    for name, table in before.items():
        pdt.assert_frame_equal(after_kill[name], table)

    rerun = project.start_materialize(RADIOMICS, COHORT, run_config, "rerun")
    try:
        assert rerun.wait(timeout=300) == 0, project.log_tail("rerun")
    finally:
        kill_group(rerun)
    rerun_tables = _radiomics_tables(project.data_root)

    reference = tmp_path / "uninterrupted"
    reference.mkdir()
    instance = _cohort_with_upstream(reference)
    materialize(reference, RADIOMICS, COHORT, instance=instance, run_config={"radiomic_features": {"config": SETTINGS}})
    expected = _radiomics_tables(reference)

    assert len(expected["radiomic_features"]) > 0
    assert set(expected["radiomic_features"]["patient_id"]) == {f"{COHORT}-{i:03d}" for i in range(PATIENTS)}
    for name in ("radiomic_features", "radiomic_features_wide", "radiomics_exclusions"):
        pdt.assert_frame_equal(rerun_tables[name], expected[name], check_exact=True, obj=name)
    pdt.assert_frame_equal(rerun_tables["radiomics_provenance"].drop(columns=RUN_SPECIFIC + ["params_path"]),
                           expected["radiomics_provenance"].drop(columns=RUN_SPECIFIC + ["params_path"]))  # fmt: skip
    assert rerun_tables["radiomics_provenance"]["dagster_run_id"].nunique() == 1
