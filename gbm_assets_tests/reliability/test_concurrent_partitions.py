"""Eight cohort partitions materialized at once, by eight `dagster asset materialize` processes on
one Dagster home (the project's dagster.yaml: SQLite run and event storage) and one data root:
no lock errors, every run succeeds, every patient of every cohort appears exactly once."""

from __future__ import annotations

import dagster as dg
import pytest

from gbm_assets.lib.store.paths import DataRoot
from gbm_assets.lib.store.warehouse import query
from gbm_assets.lib.synth.phantom import SynthOptions, write_cohort
from gbm_assets_tests.reliability.procs import (
    IN_PROCESS,
    Project,
    visible_tables,
)

COHORTS = [f"conc{i}" for i in range(8)]
PATIENTS = 2
TINY = SynthOptions(shape=(32, 32, 16), spacing=(4.5, 5.5, 8.0))
ASSETS = ["raw_cohort", "clinical_records"]


@pytest.mark.slow
def test_eight_partitions_at_once_on_the_sqlite_instance(tmp_path, monkeypatch):
    project = Project.create(tmp_path)
    for i, cohort in enumerate(COHORTS):
        write_cohort(project.data_root / "cohorts", cohort, PATIENTS, seed=i, options=TINY)
    monkeypatch.setenv("DAGSTER_HOME", str(project.home))  # dagster.yaml's storage base_dir reads it
    with dg.DagsterInstance.from_config(str(project.home)) as instance:
        instance.add_dynamic_partitions("cohorts", COHORTS)

    project.materialize_at_once(ASSETS, COHORTS, IN_PROCESS, timeout=600)

    tables = visible_tables(project.data_root)
    assert set(tables) == {f"{a}/{c}.parquet" for a in ASSETS for c in COHORTS}
    expected = {(c, f"{c}-{i:03d}") for c in COHORTS for i in range(PATIENTS)}
    for asset in ASSETS:
        rows = query(DataRoot.at(project.data_root), f'select cohort, patient_id from "{asset}"')
        pairs = list(zip(rows["cohort"], rows["patient_id"]))
        assert sorted(pairs) == sorted(expected), f"{asset}: each patient exactly once; got {sorted(pairs)}"

    with dg.DagsterInstance.from_config(str(project.home)) as instance:
        done = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.SUCCESS]))
        assert sorted(r.tags.get("dagster/partition") for r in done) == sorted(COHORTS)
        for asset in ASSETS:
            materialized = instance.get_materialized_partitions(dg.AssetKey(asset))
            assert materialized == set(COHORTS), f"{asset}: materialized partitions {sorted(materialized)}"
