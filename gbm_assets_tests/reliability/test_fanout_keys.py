"""Preprocessing and masks fanned out on the compute resource, with content-keyed patients and
relative paths, through Dagster:

- a process pool gives the same tables and the same files as the in-process path;
- a second run reuses every patient; a changed file recomputes only its patient (and, downstream,
  only its mask);
- a copied data root whose original is gone, with a cohort added to the copy, shows both cohorts
  through `gbm-assets sql`, and downstream assets read the copy's files.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pandas as pd
import pandas.testing as pdt
import pytest
import torch

from gbm_assets.cli import main
from gbm_assets.defs.compute import ComputeResource
from gbm_assets.lib.store.paths import DataRoot
from gbm_assets_tests.conftest import add_cohort, assets_and_checks, metadata, resources
from gbm_assets_tests.defs.test_masks import register_champion
from gbm_assets_tests.factories import write_brats_cohort

STAGES = ["raw_cohort", "preprocessed_volumes", "lesion_masks"]
CONFIG = {"preprocessed_volumes": {"config": {"size": 32}}, "lesion_masks": {"config": {"model_input": "stack"}}}


def _run(root: Path, instance, cohort: str, workers: int, selection=STAGES) -> dg.ExecuteInJobResult:
    result = dg.materialize(assets_and_checks(), selection=selection, partition_key=cohort, instance=instance,
                            resources=resources(root) | {"compute": ComputeResource(workers=workers)},
                            run_config={"ops": {k: v for k, v in CONFIG.items() if k in selection}})  # fmt: skip
    assert result.success
    return result


def _prepared(root: Path, tmp_path: Path, instance, workers: int) -> dg.ExecuteInJobResult:
    """Cohort 'c' (3 patients) and the same stub champion (seeded weights) on data root `root`."""
    write_brats_cohort(DataRoot(root).cohorts_dir / "c", patients=3, shape=(16, 16, 8))
    torch.manual_seed(0)
    register_champion(root, "stack", 0.5, tmp_path / root.name)
    return _run(root, instance, "c", workers)


def _tables(root: Path) -> dict[str, pd.DataFrame]:
    return {t: pd.read_parquet(root / "tables" / t / "c.parquet") for t in ("preprocessed_volumes", "lesion_masks")}


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted((root / "volumes").rglob("*")) if p.is_file()}


def _counts(result, asset: str) -> tuple[int, int]:
    meta = metadata(result, asset)
    return meta["patients_reused"], meta["patients_computed"]


@pytest.mark.slow
def test_pool_equals_in_process_and_reruns_reuse_unchanged_patients(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    serial, pooled = tmp_path / "serial" / "data", tmp_path / "pooled" / "data"
    instance = dg.DagsterInstance.ephemeral()
    add_cohort(instance, "c")
    _prepared(serial, tmp_path, instance, workers=1)
    result = _prepared(pooled, tmp_path, instance, workers=2)
    assert _counts(result, "preprocessed_volumes") == (0, 3) and _counts(result, "lesion_masks") == (0, 3)
    for name, table in _tables(pooled).items():
        pdt.assert_frame_equal(table, _tables(serial)[name], check_exact=True, obj=name)
    assert _tables(pooled)["lesion_masks"]["mask_path"].str.startswith("volumes/").all(), "paths stored relative"
    assert _files(pooled) == _files(serial), "the pool writes the in-process path's volumes and masks, byte for byte"

    result = _run(pooled, instance, "c", workers=2)
    assert _counts(result, "preprocessed_volumes") == (3, 0) and _counts(result, "lesion_masks") == (3, 0)
    patient = DataRoot(pooled).cohorts_dir / "c" / "P001"
    shutil.copy(DataRoot(pooled).cohorts_dir / "c" / "P000" / "P000_t1.nii.gz", patient / "P001_t1.nii.gz")
    result = _run(pooled, instance, "c", workers=2)
    assert _counts(result, "preprocessed_volumes") == (2, 1) and _counts(result, "lesion_masks") == (2, 1)

    # a copy of the data root, the original gone, a cohort added to the copy
    copy = tmp_path / "copy" / "data"
    shutil.copytree(pooled, copy)
    shutil.rmtree(pooled)
    write_brats_cohort(DataRoot(copy).cohorts_dir / "d", patients=2, shape=(16, 16, 8))
    add_cohort(instance, "d")
    _run(copy, instance, "d", workers=1, selection=["raw_cohort"])
    monkeypatch.setenv("GBM_DATA_ROOT", str(copy))
    assert main(["sql", "select cohort, patient_id, t1_path from raw_cohort order by 1, 2", "--format", "csv"]) == 0
    # recomputed in the copy, preprocessing must read the copy's images (the original is gone); the
    # same bytes come out, so the masks' keys still match and every mask is reused from the copy's records
    before = _files(copy)
    shutil.rmtree(copy / "results" / "preprocessed_volumes")
    # lesion_masks downloads the champion from the copy's own MLflow store (relocated on open)
    result = _run(copy, instance, "c", workers=2, selection=["preprocessed_volumes", "lesion_masks"])
    assert _counts(result, "preprocessed_volumes") == (0, 3) and _files(copy) == before
    assert _counts(result, "lesion_masks") == (3, 0)
    table = pd.read_parquet(copy / "tables" / "preprocessed_volumes" / "c.parquet")
    assert table["dir"].tolist() == [f"volumes/preprocessed/c/P00{i}" for i in range(3)]


def test_sql_lists_copied_and_new_cohorts_with_relative_paths(tmp_path, monkeypatch, capsys):
    """The copy's raw_cohort, the original renamed away: both cohorts through `gbm-assets sql`."""
    original = tmp_path / "original" / "data"
    instance = dg.DagsterInstance.ephemeral()
    add_cohort(instance, "c", "d")
    write_brats_cohort(DataRoot(original).cohorts_dir / "c", patients=2, shape=(16, 16, 8))
    _run(original, instance, "c", workers=1, selection=["raw_cohort"])
    copy = tmp_path / "copy" / "data"
    shutil.copytree(original, copy)
    original.rename(tmp_path / "original" / "renamed")
    write_brats_cohort(DataRoot(copy).cohorts_dir / "d", patients=1, shape=(16, 16, 8))
    _run(copy, instance, "d", workers=1, selection=["raw_cohort"])
    monkeypatch.setenv("GBM_DATA_ROOT", str(copy))
    capsys.readouterr()
    assert main(["sql", "select cohort, patient_id, t1_path from raw_cohort order by 1, 2", "--format", "csv"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1:] == ["c,P000,cohorts/c/P000/P000_t1.nii.gz", "c,P001,cohorts/c/P001/P001_t1.nii.gz",
                       "d,P000,cohorts/d/P000/P000_t1.nii.gz"]  # fmt: skip
    result = _run(copy, instance, "c", workers=1, selection=["preprocessed_volumes"])
    assert metadata(result, "preprocessed_volumes")["preprocessed"] == 2, "reads the copy's images (the original is gone)"
