"""Slices -> one U-Net -> metrics through Dagster on a tiny synthetic cohort, plus bad inputs."""

import dagster as dg
import numpy as np
import pytest
from mlflow import MlflowClient

from gbm_assets.defs import ingest, masks, segment
from gbm_assets.defs.resources import DataRootResource, MlflowResource, PartitionedParquetIOManager
from gbm_assets.lib.paths import DataRoot
from gbm_assets.lib.synth import SynthOptions, write_cohort
from gbm_assets.lib.tracking import CHAMPION, TrackingStore
from gbm_assets.lib.warehouse import query
from gbm_assets.defs.segment.training import weights_finite
from gbm_assets_tests.factories import write_brats_cohort

ALL = [*ingest.assets, *segment.assets, *masks.assets, *ingest.checks, *segment.checks]
TINY = SynthOptions(shape=(48, 48, 24), spacing=(3.0, 3.0, 6.0))
PREPROCESS = {"preprocessed_volumes": {"config": {"target_spacing_mm": 3.0, "size": 48}}}
UNET = {"unet_model": {"config": {"base": 4, "epochs": 2, "batch_size": 8}}}


def run(instance, selection, partition, run_config=None, raise_on_error=True):
    resources = {"data_root": DataRootResource(), "table_io_manager": PartitionedParquetIOManager(), "mlflow": MlflowResource()}
    return dg.materialize(ALL, selection=selection, partition_key=partition, instance=instance, resources=resources,
                          run_config={"ops": run_config or {}}, raise_on_error=raise_on_error)  # fmt: skip


@pytest.fixture
def instance():
    return dg.DagsterInstance.ephemeral()


def add_cohort(instance, name):
    instance.add_dynamic_partitions("cohorts", [name])


def failure_message(result):
    return "\n".join(str(e.event_specific_data.error) for e in result.all_events if e.is_step_failure)


@pytest.mark.slow
def test_slices_model_metrics_and_registry(data_root, instance, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    write_cohort(DataRoot(data_root).cohorts_dir, "tiny", 8, seed=3, options=TINY)
    add_cohort(instance, "tiny")
    result = run(instance, ["raw_cohort", "clinical_records", "preprocessed_volumes", "training_slices"], "tiny", PREPROCESS)
    assert all(c.passed for c in result.get_asset_check_evaluations())  # incl. patients in one split
    index = query(DataRoot(data_root), "select split, count(distinct patient_id) n from training_slices group by 1")
    assert set(index["split"]) == {"train", "validation", "test"} and index["n"].sum() == 8

    first = run(instance, ["unet_model", "unet_champion", "segmentation_metrics"], "stack", UNET)
    meta = first.asset_materializations_for_node("unet_model")[0].metadata
    assert meta["model_version"].value == "1"
    assert first.asset_materializations_for_node("unet_champion")[0].metadata["champion_version"].value == "1"
    assert {c.check_name: c.passed for c in first.get_asset_check_evaluations()} == {
        "unet_model_weights_finite": True, "unet_model_beats_champion": True, "segmentation_metrics_test_dice_above_floor": False,
    }  # a 2-epoch, width-4 model is below the Dice floor: the warning fires
    metrics = query(DataRoot(data_root), "select * from segmentation_metrics")
    assert list(metrics.columns) == ["sequence", "split", "metric", "value"]
    assert len(metrics) == 27 and set(metrics["split"]) == {"train", "validation", "test"}
    assert set(metrics["metric"]) == {"accuracy", "balanced_accuracy", "precision", "sensitivity", "specificity", "f1", "iou", "dice_3d", "hd95_mm"}
    assert metrics["value"].between(0, 1).where(metrics["metric"] != "hd95_mm", True).all()
    seg_meta = first.asset_materializations_for_node("segmentation_metrics")[0].metadata
    assert "data:image/gif;base64," in seg_meta["test_slices_gif"].value and "| stack |" in seg_meta["comparison_test"].value
    keep_largest = seg_meta["postprocess_keep_largest_component"].value  # chosen on validation patients

    # a champion that is hard to beat: the blocking check must keep the new version out
    client = MlflowClient(TrackingStore.for_data_root(data_root).tracking_uri)
    client.log_metric(meta["mlflow_run_id"].value, "best_val_dice", 1.0)
    second = run(instance, ["unet_model", "unet_champion"], "stack", {"unet_model": {"config": {"base": 4, "epochs": 1, "batch_size": 8, "seed": 1}}},
                 raise_on_error=False)  # fmt: skip
    assert second.asset_materializations_for_node("unet_model")[0].metadata["model_version"].value == "2"
    checks = {c.check_name: c for c in second.get_asset_check_evaluations()}
    assert not checks["unet_model_beats_champion"].passed and checks["unet_model_beats_champion"].metadata["champion_version"].value == "1"
    assert not second.asset_materializations_for_node("unet_champion")  # blocked
    champion = str(client.get_model_version_by_alias("gbm-unet-stack", CHAMPION).version)
    assert champion == "1"
    run_tags = client.get_run(second.asset_materializations_for_node("unet_model")[0].metadata["mlflow_run_id"].value).data.tags
    assert run_tags["dagster.asset_key"] == "unet_model" and run_tags["dagster.partition"] == "stack"

    masks_result = run(instance, ["lesion_masks"], "tiny")
    table = masks_result.asset_materializations_for_node("lesion_masks")[0].metadata
    assert table["segmented"].value == 8 and table["model"].value == f"gbm-unet-stack v{champion}"
    assert table["keep_largest_component"].value is keep_largest


def test_training_needs_three_patients_with_masks(data_root, instance):
    write_brats_cohort(DataRoot(data_root).cohorts_dir / "two", patients=2, shape=(16, 16, 8))
    add_cohort(instance, "two")
    result = run(instance, ["raw_cohort", "clinical_records", "preprocessed_volumes", "training_slices"], "two",
                 {"preprocessed_volumes": {"config": {"size": 16}}}, raise_on_error=False)  # fmt: skip
    assert result.is_node_success("preprocessed_volumes") and not result.is_node_success("training_slices")
    assert "cohort 'two'" in failure_message(result) and "at least 3 patients" in failure_message(result)


def test_cohort_without_lesion_slices_is_refused(data_root, instance):
    cohort = write_brats_cohort(DataRoot(data_root).cohorts_dir / "clean", patients=3, shape=(16, 16, 8), labels=np.zeros((16, 16, 8), np.uint8))
    assert (cohort / "P000" / "P000_seg.nii.gz").exists()
    add_cohort(instance, "clean")
    result = run(instance, ["raw_cohort", "clinical_records", "preprocessed_volumes", "training_slices"], "clean",
                 {"preprocessed_volumes": {"config": {"size": 16}}}, raise_on_error=False)  # fmt: skip
    assert "no lesion-bearing slices" in failure_message(result)


def test_patient_missing_a_sequence_is_excluded_and_others_preprocess(data_root, instance):
    cohort = write_brats_cohort(DataRoot(data_root).cohorts_dir / "gap", patients=3, shape=(16, 16, 8))
    (cohort / "P001" / "P001_flair.nii.gz").unlink()
    add_cohort(instance, "gap")
    result = run(instance, ["raw_cohort", "preprocessed_volumes"], "gap", {"preprocessed_volumes": {"config": {"size": 16}}})
    meta = result.asset_materializations_for_node("preprocessed_volumes")[0].metadata
    assert meta["preprocessed"].value == 2 and meta["failed"].value == 0  # P001 was excluded upstream


def test_unknown_model_input_is_refused(data_root, instance):
    write_brats_cohort(DataRoot(data_root).cohorts_dir / "c", patients=1, shape=(16, 16, 8))
    add_cohort(instance, "c")
    run(instance, ["raw_cohort", "preprocessed_volumes"], "c", {"preprocessed_volumes": {"config": {"size": 16}}})
    result = run(instance, ["lesion_masks"], "c", {"lesion_masks": {"config": {"sequence": "dwi"}}}, raise_on_error=False)
    assert "unknown model input 'dwi'" in failure_message(result)
    with pytest.raises(Exception, match="dwi"):
        run(instance, ["unet_model"], "dwi")


def test_unet_without_training_slices_says_what_to_do(data_root, instance):
    result = run(instance, ["unet_model"], "t1", raise_on_error=False)
    assert "materialize training_slices" in failure_message(result)


def test_weights_finite_flags_a_nan_checkpoint(tmp_path):
    import torch

    from gbm_assets.lib.segment.unet import UNet

    state = UNet(in_channels=1, base=4).state_dict()
    path = tmp_path / "m.pt"
    torch.save({"architecture": {}, "state_dict": state}, path)
    assert weights_finite({"checkpoint": str(path)}) == (True, [])
    state["c1.net.0.weight"][0, 0, 0, 0] = float("nan")
    torch.save({"architecture": {}, "state_dict": state}, path)
    assert weights_finite({"checkpoint": str(path)}) == (False, ["c1.net.0.weight"])


@pytest.mark.parametrize("dice, passed", [(0.9, True), (0.5, True), (0.2, False), (float("nan"), False)])
def test_dice_floor_check_on_good_and_bad_metrics(dice, passed):
    import importlib

    import pandas as pd

    checks = importlib.import_module("gbm_assets.defs.segment.assets")
    table = pd.DataFrame({"sequence": ["stack"] * 2, "split": ["validation", "test"], "metric": ["dice_3d"] * 2, "value": [0.99, dice]})
    result = checks.segmentation_metrics_test_dice_above_floor(table)
    assert result.passed is passed and result.metadata["floor"].value == checks.TEST_DICE_FLOOR
