"""Every asset check names the partition it evaluated and the value it found against its threshold
(`gbm_assets.defs.metadata.check_result`), so a failure reads "cohort c1: 0.5, expected ..." in the
UI's sidebar and metadata without opening anything."""

from __future__ import annotations

import inspect
import re

import dagster as dg
import pandas as pd

from gbm_assets.defs.classify.checks import subtype_classifier_beats_majority_baseline
from gbm_assets.defs.masks.checks import lesion_masks_empty_rate_below_threshold
from gbm_assets.defs.metadata import check_result
from gbm_assets.defs.partitions import cohorts_partitions, model_inputs_partitions
from gbm_assets.defs.segment.checks import (
    TEST_DICE_FLOOR,
    segmentation_metrics_test_dice_above_floor,
)
from gbm_assets_tests.conftest import add_cohort, code_location, resources


def reports_through_check_result(fn, depth: int = 2) -> bool:
    """Whether `fn`, or a function of its module that it calls (`depth` levels down), calls check_result."""
    source = inspect.getsource(fn)
    if "check_result(" in source:
        return True
    called = (fn.__globals__.get(name) for name in set(re.findall(r"\b(\w+)\(", source)))
    return depth > 0 and any(reports_through_check_result(f, depth - 1) for f in called if inspect.isfunction(f))


def test_every_check_reports_through_check_result():
    checks = code_location().asset_checks
    assert checks
    for check in checks:
        fn = check.node_def.compute_fn.decorated_fn
        assert reports_through_check_result(fn), f"{check.node_def.name} builds its result without check_result (no partition / value)"


def stub(key: str, partitions_def, table: pd.DataFrame):
    """An asset standing in for `key`, writing `table` through the table IO manager."""

    @dg.asset(name=key, partitions_def=partitions_def, io_manager_key="table_io_manager")
    def _stub() -> pd.DataFrame:
        return table

    return _stub


def evaluation(data_root, assets, partition=None, instance=None):
    result = dg.materialize(assets, partition_key=partition, instance=instance, resources=resources(data_root),
                            raise_on_error=False)  # a failing blocking check fails the run  # fmt: skip
    [evaluation] = result.get_asset_check_evaluations()
    return evaluation, {k: v.value for k, v in evaluation.metadata.items()}


def test_failing_cohort_check_names_the_cohort_and_the_rate(data_root):
    instance = dg.DagsterInstance.ephemeral()
    add_cohort(instance, "c1")
    masks = pd.DataFrame({"cohort": "c1", "patient_id": ["P1", "P2", "P3"], "status": "ok", "empty": [True, True, False]})
    check, meta = evaluation(data_root, [stub("lesion_masks", cohorts_partitions, masks), lesion_masks_empty_rate_below_threshold],
                             "c1", instance)  # fmt: skip
    assert not check.passed
    assert meta["partition"] == "c1" and meta["value"] == 2 / 3 and meta["expected"] == "empty-mask rate < 0.2"
    assert check.description.startswith("c1: 0.667, expected empty-mask rate < 0.2") and "P1, P2" in check.description


def test_failing_model_input_check_names_the_input_and_the_dice(data_root):
    metrics = pd.DataFrame({"sequence": "flair", "split": ["test"], "metric": ["dice_3d"], "value": [0.125]})
    check, meta = evaluation(data_root, [stub("segmentation_metrics", model_inputs_partitions, metrics),
                                         segmentation_metrics_test_dice_above_floor], "flair")  # fmt: skip
    assert not check.passed and meta["partition"] == "flair" and meta["value"] == 0.125
    assert meta["expected"] == f"mean test 3D Dice >= {TEST_DICE_FLOOR:g}" and check.description.startswith("flair: 0.125")


def test_unpartitioned_check_says_so(data_root):
    table = pd.DataFrame({"model": ["mlp", "majority"], "balanced_accuracy": [0.25, 0.25]})
    check, meta = evaluation(data_root, [stub("subtype_classifier", None, table), subtype_classifier_beats_majority_baseline])
    assert not check.passed and meta["partition"] == "unpartitioned" and meta["value"] == 0.25
    assert check.description.startswith("unpartitioned: 0.25")


def test_check_result_outside_a_run_and_passing_results():
    passed = check_result(True, 3, "at least 1")
    assert passed.passed and passed.description is None
    assert {k: v.value for k, v in passed.metadata.items()} == {"partition": "unknown (called outside a run)", "value": 3,
                                                                "expected": "at least 1"}  # fmt: skip
    failed = check_result(False, 1e-7, "> 0.5", description="why")
    assert failed.description == "unknown (called outside a run): 1.00e-07, expected > 0.5; why"
