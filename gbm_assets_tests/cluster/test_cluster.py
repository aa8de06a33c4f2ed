"""A real cluster on this machine: PostgreSQL instance storage (deploy/dagster-postgres.yaml) and
the compute resource on a Dask scheduler with two workers. Several cohort partitions run at once,
each a `dagster asset materialize` process, through raw_cohort, clinical_records, preprocessing,
lesion masks (a stub champion U-Net with seeded weights, loaded once per Dask worker), radiomics
and tumour burden. Checks: every run succeeds with no lock error, every patient's rows appear
exactly once, and the tables equal those of the `local` backend. The fixtures stop PostgreSQL
and Dask afterwards, also on failure."""

from __future__ import annotations

import shutil

import dagster as dg
import pandas as pd
import pandas.testing as pdt
import pytest
import torch

from gbm_assets.defs.compute import ComputeResource
from gbm_assets.lib.store.paths import DataRoot
from gbm_assets.lib.store.warehouse import query
from gbm_assets.lib.synth.phantom import SynthOptions, write_cohort
from gbm_assets_tests.conftest import (
    PROJECT_ROOT,
    add_cohort,
    assets_and_checks,
    resources,
)
from gbm_assets_tests.defs.test_masks import register_champion
from gbm_assets_tests.reliability.procs import (
    IN_PROCESS,
    Project,
    visible_tables,
)

COHORTS = [f"clu{i}" for i in range(8)]  # eight partitions at once, as a real cohort batch arrives
PATIENTS = 2
TINY = SynthOptions(shape=(32, 32, 16), spacing=(4.5, 5.5, 8.0))
SETTINGS = {"roi_sources": ["ground_truth", "predicted"]}
OPS = {"radiomic_features": {"config": SETTINGS}, "preprocessed_volumes": {"config": {"size": 32}},
       "lesion_masks": {"config": {"model_input": "stack"}}}  # fmt: skip
ASSETS = ["raw_cohort", "clinical_records", "preprocessed_volumes", "lesion_masks", "radiomic_features", "radiomic_features_wide", "radiomics_exclusions",
          "radiomics_provenance", "tumor_burden"]  # fmt: skip
COMPARED = ["raw_cohort", "clinical_records", "preprocessed_volumes", "lesion_masks", "radiomic_features", "radiomic_features_wide", "radiomics_exclusions",
            "tumor_burden"]  # fmt: skip


def _write_inputs(data_root, cohorts, tmp_path) -> None:
    """The synthetic cohorts and the same stub champion (seeded weights) in the data root's MLflow store."""
    for i, cohort in enumerate(cohorts):
        write_cohort(data_root / "cohorts", cohort, PATIENTS, seed=i, options=TINY)
    torch.manual_seed(0)
    register_champion(data_root, "stack", 0.5, tmp_path / f"champion-{data_root.parent.name}")


def _relative(table: pd.DataFrame, root) -> pd.DataFrame:
    """`table` with the data root's absolute prefix removed from every path-like text column."""
    out = table.copy()
    for column in out.columns:
        if out[column].dtype == object:
            out[column] = out[column].map(lambda v: v.replace(str(root), "<root>") if isinstance(v, str) else v)
    return out


def _local_reference(root) -> dict[str, pd.DataFrame]:
    """The same cohorts on the `local` backend (in this process, an ephemeral SQLite-free instance).

    One worker: the local backend then runs each patient in this process, which is quick to start;
    that a pool of workers gives the same tables as this is tested in reliability/test_fanout_keys.py."""
    _write_inputs(root, COHORTS, root.parent)
    instance = dg.DagsterInstance.ephemeral()
    add_cohort(instance, *COHORTS)
    for cohort in COHORTS:
        result = dg.materialize(assets_and_checks(), selection=ASSETS, partition_key=cohort, instance=instance,
                                resources=resources(root) | {"compute": ComputeResource(backend="local", workers=1)},
                                run_config={"ops": OPS})  # fmt: skip
        assert result.success
    tables = visible_tables(root)
    return {a: _relative(pd.concat([tables[f"{a}/{c}.parquet"] for c in COHORTS], ignore_index=True), root)
            for a in COMPARED}  # fmt: skip


@pytest.mark.cluster
@pytest.mark.slow
def test_partitions_at_once_on_postgres_and_dask_match_the_local_backend(tmp_path, monkeypatch, postgres, dask_scheduler):
    project = Project.create(tmp_path / "cluster")
    shutil.copy(PROJECT_ROOT / "deploy" / "dagster-postgres.yaml", project.home / "dagster.yaml")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    _write_inputs(project.data_root, COHORTS, tmp_path)
    for name, value in (postgres.env() | {"GBM_COMPUTE_BACKEND": "dask", "GBM_DASK_SCHEDULER": dask_scheduler}).items():
        monkeypatch.setenv(name, value)  # the subprocesses inherit them (Project.env copies os.environ)
    monkeypatch.setenv("DAGSTER_HOME", str(project.home))
    with dg.DagsterInstance.from_config(str(project.home)) as instance:  # creates the schema once, up front
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        instance.add_dynamic_partitions("cohorts", COHORTS)

    run_config = IN_PROCESS | {"ops": OPS}
    project.materialize_at_once(ASSETS, COHORTS, run_config, timeout=900)

    expected = {(c, f"{c}-{i:03d}") for c in COHORTS for i in range(PATIENTS)}
    for asset, where in (("raw_cohort", ""), ("clinical_records", ""), ("preprocessed_volumes", "where status = 'ok'"),
                         ("lesion_masks", "where status = 'ok'"), ("radiomic_features_wide", "where roi_source = 'predicted'")):
        rows = query(DataRoot.at(project.data_root), f'select cohort, patient_id from "{asset}" {where}')
        pairs = list(zip(rows["cohort"], rows["patient_id"]))
        assert sorted(pairs) == sorted(expected), f"{asset}: each patient exactly once; got {sorted(pairs)}"
    burden = query(DataRoot.at(project.data_root), "select * from tumor_burden")
    assert set(zip(burden["cohort"], burden["patient_id"])) == expected
    assert not burden.duplicated(["cohort", "patient_id", "roi_source", "region"]).any()

    tables = visible_tables(project.data_root)
    provenance = pd.concat([tables[f"radiomics_provenance/{c}.parquet"] for c in COHORTS])
    assert set(provenance["workers"]) == {2}, "radiomics ran on the Dask cluster's two workers"
    got = {a: _relative(pd.concat([tables[f"{a}/{c}.parquet"] for c in COHORTS], ignore_index=True), project.data_root)
           for a in COMPARED}  # fmt: skip
    reference = _local_reference(tmp_path / "local")
    for asset in COMPARED:
        pdt.assert_frame_equal(got[asset], reference[asset], check_exact=True, obj=asset)

    with dg.DagsterInstance.from_config(str(project.home)) as instance:
        done = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.SUCCESS]))
        assert sorted(r.tags.get("dagster/partition") for r in done) == sorted(COHORTS)
        for asset in ASSETS:
            assert instance.get_materialized_partitions(dg.AssetKey(asset)) == set(COHORTS), asset
