import shutil

import dagster as dg
import pandas as pd

from gbm_assets.defs.partitions import cohorts_partitions
from gbm_assets.lib.store.paths import DataRoot
from gbm_assets.lib.synth.longitudinal import write_longitudinal_cohort
from gbm_assets.lib.synth.phantom import SynthOptions
from gbm_assets_tests.conftest import (
    add_cohort,
    check_evaluation,
    materialize,
    metadata,
    only_assets,
)

BURDEN_SOURCE = dg.SourceAsset(key="tumor_burden", partitions_def=cohorts_partitions, io_manager_key="table_io_manager")
TINY = SynthOptions(shape=(40, 40, 20), spacing=(4.0, 4.5, 6.5))


def test_longitudinal_raw_cohort_and_timepoint_check(data_root, instance):
    root = DataRoot(data_root)
    write_longitudinal_cohort(root.cohort_dir("lon").parent, "lon", 2, seed=2, options=TINY)
    add_cohort(instance, "lon")
    result = materialize(data_root, ["raw_cohort"], "lon", instance=instance, assets=only_assets("raw_cohort"))
    assert check_evaluation(result, "raw_cohort_timepoints_consistent").passed
    # another patient's scan (another grid) filed under lon-000 is flagged; the rows stay valid
    other = write_longitudinal_cohort(data_root / "elsewhere", "oth", 1, seed=9, options=SynthOptions(shape=(44, 40, 20), spacing=(4.0, 4.5, 6.5)))
    shutil.copytree(data_root / "elsewhere" / "oth" / "oth-000" / other["timepoint"].iloc[0], root.cohort_dir("lon") / "lon-000" / "week-099")
    result = materialize(data_root, ["raw_cohort"], "lon", instance=instance, assets=only_assets("raw_cohort"))
    evaluation = check_evaluation(result, "raw_cohort_timepoints_consistent")
    assert not evaluation.passed
    assert "lon-000" in evaluation.description and "shape/spacing" in evaluation.description


def test_tumor_progression_from_burden(data_root, instance):
    root = DataRoot(data_root)
    burden = pd.DataFrame({
        "cohort": "lon", "roi_source": "ground_truth", "region": "whole_tumor",
        "patient_id": ["A__week-000", "A__week-008", "A__week-016", "B__week-000", "B__week-010"],
        "volume_ml": [10.0, 3.0, 4.5, 20.0, 21.0],
    })  # fmt: skip
    path = root.table_dir("tumor_burden") / "lon.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    burden.to_parquet(path)
    add_cohort(instance, "lon")
    result = materialize(data_root, ["tumor_progression"], "lon", instance=instance, assets=[*only_assets("tumor_progression"), BURDEN_SOURCE])
    table = pd.read_parquet(root.table_dir("tumor_progression") / "lon.parquet")
    assert list(table["response"]) == ["baseline", "partial_response", "progressive_disease", "baseline", "stable_disease"]
    meta = metadata(result, "tumor_progression")
    assert meta["subjects"] == 2 and "plot_A" in meta


def test_tumor_progression_of_a_cross_sectional_cohort_is_empty(data_root, instance):
    root = DataRoot(data_root)
    path = root.table_dir("tumor_burden") / "x.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"cohort": ["x"], "patient_id": ["BRATS_001"], "roi_source": ["ground_truth"], "region": ["whole_tumor"],
                  "volume_ml": [3.0]}).to_parquet(path)
    add_cohort(instance, "x")
    result = materialize(data_root, ["tumor_progression"], "x", instance=instance, assets=[*only_assets("tumor_progression"), BURDEN_SOURCE])
    assert metadata(result, "tumor_progression")["rows"] == 0
