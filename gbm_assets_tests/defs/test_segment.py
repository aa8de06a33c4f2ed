"""Splits -> one U-Net -> checks, champion, metrics -> masks through Dagster on a tiny synthetic cohort."""

import json
import shutil

import dagster as dg
import pandas as pd
import pytest
from mlflow import MlflowClient

from gbm_assets.defs.segment import checks as segment_checks
from gbm_assets.defs.segment.versions import unet_version
from gbm_assets.lib.masks.postprocess import KEEP_LARGEST_TAG
from gbm_assets.lib.segment.checkpoint import checkpoint_intensity
from gbm_assets.lib.store.paths import DataRoot
from gbm_assets.lib.store.tables import read_parquet
from gbm_assets.lib.store.tracking import CHAMPION, TrackingStore
from gbm_assets.lib.store.warehouse import query
from gbm_assets.lib.synth.phantom import SynthOptions, write_cohort
from gbm_assets_tests.conftest import (
    add_cohort,
    check_evaluation,
    checks_by_name,
    failure_message,
    materialize,
    metadata,
)

TINY = SynthOptions(shape=(48, 48, 24), spacing=(3.0, 3.0, 6.0))
PREPROCESS = {"preprocessed_volumes": {"config": {"target_spacing_mm": 3.0, "size": 48}}}
UNET = {"unet_model": {"config": {"base": 4, "epochs": 2, "batch_size": 8}}}


@pytest.mark.slow
def test_splits_model_checks_metrics_registry_and_masks(data_root, instance, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    root = DataRoot(data_root)
    write_cohort(root.cohorts_dir, "tiny", 8, seed=3, options=TINY)
    add_cohort(instance, "tiny")
    materialize(data_root, ["raw_cohort", "clinical_records", "preprocessed_volumes", "training_slices"], "tiny", instance=instance, run_config=PREPROCESS)
    prepared = materialize(data_root, ["training_splits"], instance=instance)
    assert checks_by_name(prepared) == {"training_splits_subjects_in_one_split": True}
    splits = query(root, "select split, count(*) n from training_splits group by 1")
    assert set(splits["split"]) == {"train", "validation", "test"} and splits["n"].sum() == 8

    first = materialize(data_root, ["unet_model", "unet_champion", "segmentation_metrics"], "stack", instance=instance, run_config=UNET)
    meta = metadata(first, "unet_model")
    assert meta["model_version"] == "1" and meta["training_patients"] == 8
    assert metadata(first, "unet_champion")["champion_version"] == "1"
    assert checks_by_name(first) == {
        "unet_model_weights_finite": True, "unet_model_beats_champion": True, "segmentation_metrics_test_dice_above_floor": False,
    }  # a 2-epoch, width-4 model is below the Dice floor: the warning fires
    assert check_evaluation(first, "unet_model_weights_finite").metadata["model_version"].value == "1"
    metrics = query(root, "select * from segmentation_metrics")
    assert list(metrics.columns) == ["sequence", "split", "region", "metric", "value"] and set(metrics["region"]) == {"whole_tumor"}
    assert len(metrics) == 36 and set(metrics["split"]) == {"train", "validation", "test"}  # 12 metrics x 3 splits
    assert metrics["value"].between(0, 1).where(~metrics["metric"].str.endswith("hd95_mm"), True).all()
    assert {"lesionwise_dice", "lesionwise_hd95_mm", "lesion_f1"} <= set(metrics["metric"])
    seg_meta = metadata(first, "segmentation_metrics")
    assert 0 <= seg_meta["test_lesionwise_dice"] <= 1 and 0 <= seg_meta["test_lesion_f1"] <= 1
    assert seg_meta["model_version"] == "1" and "| stack |" in seg_meta["comparison_test"]
    run_id = metadata(first, "unet_model")["mlflow_run_id"]
    assert f"run_uuid={run_id}" in seg_meta["test_slices_gif"] and "test_slices.gif" in seg_meta["test_slices_gif"]
    assert len(seg_meta["test_slices_gif"]) < 1000  # a short link the UI renders inline, not multi-MB base64
    assert seg_meta["mlflow_run"] == metadata(first, "unet_model")["mlflow_run"]  # the evaluated model's run
    assert seg_meta["mlflow_run"].endswith(f"/runs/{run_id}") and "mlflow_model_version" in seg_meta
    served = MlflowClient(TrackingStore.for_data_root(data_root).tracking_uri).list_artifacts(run_id, "figures")
    assert {"figures/test_slices.gif", "figures/test_overlay.png"} <= {a.path for a in served}
    unet_meta = metadata(first, "unet_model")
    assert "per-slice" in unet_meta["best_val_dice_definition"] and isinstance(unet_meta["still_improving_at_last_epoch"], bool)
    keep_largest = seg_meta["postprocess_keep_largest_component"]  # chosen on validation patients
    client = MlflowClient(TrackingStore.for_data_root(data_root).tracking_uri)
    assert client.get_model_version("gbm-unet-stack", "1").tags[KEEP_LARGEST_TAG] == str(keep_largest).lower()
    assert not list(root.root.rglob("latest.json"))

    # a champion that is hard to beat: the blocking check must keep the new version out
    client.log_metric(meta["mlflow_run_id"], "best_val_dice", 1.0)
    second = materialize(data_root, ["unet_model", "unet_champion"], "stack", instance=instance, raise_on_error=False,
                         run_config={"unet_model": {"config": {"base": 4, "epochs": 1, "batch_size": 8, "seed": 1}}})  # fmt: skip
    assert metadata(second, "unet_model")["model_version"] == "2"
    beats = check_evaluation(second, "unet_model_beats_champion")
    assert not beats.passed and beats.metadata["champion_version"].value == "1" and beats.metadata["candidate_version"].value == "2"
    assert not second.asset_materializations_for_node("unet_champion")  # blocked
    assert str(client.get_model_version_by_alias("gbm-unet-stack", CHAMPION).version) == "1"
    run_tags = client.get_run(metadata(second, "unet_model")["mlflow_run_id"]).data.tags
    assert run_tags["dagster.asset_key"] == "unet_model" and run_tags["dagster.partition"] == "stack"

    # no cross-wiring: each run's steps see the version their own run produced; a run without one sees the latest
    uri = TrackingStore.for_data_root(data_root).tracking_uri
    assert unet_version(instance, first.run_id, "stack", uri).version == "1"
    assert unet_version(instance, second.run_id, "stack", uri).version == "2"
    assert unet_version(instance, prepared.run_id, "stack", uri).version == "2"
    with pytest.raises(dg.Failure, match="materialize unet_model\\[t1\\]"):
        unet_version(instance, first.run_id, "t1", uri)
    # the store is the caller's, not the URI the materialization recorded: a moved data root reads its own store
    assert unet_version(instance, first.run_id, "stack", "sqlite:////moved/mlflow.db").tracking_uri == "sqlite:////moved/mlflow.db"

    masks = materialize(data_root, ["lesion_masks"], "tiny", instance=instance)
    table = metadata(masks, "lesion_masks")
    assert table["segmented"] == 8 and table["model"] == "gbm-unet-stack v1" and table["keep_largest_component"] is keep_largest

    # the model remembers the intensity scaling it learnt, and refuses volumes scaled otherwise
    default = "flair=percentile, t1=zscore, t2=percentile"
    assert meta["intensity_scaling"] == default and table["intensity_scaling"] == default
    assert checkpoint_intensity(meta["checkpoint"]) == {"t1": "zscore", "t2": "percentile", "flair": "percentile"}
    assert client.get_run(run_id).data.params["intensity_scaling"] == default
    tampered = root.volume_dir("preprocessed", "tiny") / sorted(p.name for p in root.volume_dir("preprocessed", "tiny").iterdir())[0]
    record = tampered / "intensity.json"
    kept = record.read_text()
    record.write_text(kept.replace('"flair": "percentile"', '"flair": "zscore"'))
    mixed = materialize(data_root, ["unet_model"], "stack", instance=instance, raise_on_error=False, run_config=UNET)
    message = failure_message(mixed)
    assert "different intensity scalings of t1, t2, flair" in message and f"patient {tampered.name}" in message
    record.write_text(kept)
    transform = tampered / "transform.json"  # one patient on another grid: a model learns one
    kept_grid = transform.read_text()
    transform.write_text(kept_grid.replace('"resampled_spacing": [\n  3.0,\n  3.0', '"resampled_spacing": [\n  2.0,\n  2.0'))
    message = failure_message(materialize(data_root, ["unet_model"], "stack", instance=instance, raise_on_error=False, run_config=UNET))
    assert "2 different in-plane grids" in message and f"patient {tampered.name}: 2 mm" in message, message
    assert "target_spacing_mm" in message
    transform.write_text(kept_grid)
    materialize(data_root, ["preprocessed_volumes"], "tiny", instance=instance,
                run_config={"preprocessed_volumes": {"config": {**PREPROCESS["preprocessed_volumes"]["config"], "percentile_scaled": []}}})  # fmt: skip
    assert json.loads(record.read_text()) == {s: "zscore" for s in ("t1", "t1c", "t2", "flair")}
    for asset, partition, who in (("lesion_masks", "tiny", "cohort 'tiny': gbm-unet-stack version 1"),
                                  ("segmentation_metrics", "stack", "segmentation_metrics[stack]: gbm-unet-stack v")):
        message = failure_message(materialize(data_root, [asset], partition, instance=instance, raise_on_error=False))
        assert who in message and "8 of 8 patients were preprocessed with another intensity scaling" in message, message
        assert "t2: zscore, the model percentile; flair: zscore, the model percentile" in message, message
        assert str(tampered.parent) in message and "percentile_scaled: [t2, flair]" in message, message

    # the model remembers its grid too: a cohort preprocessed on another is resampled to it and back, not refused
    assert meta["model_grid_mm"] == 3.0 and table["model_grid_mm"] == 3.0 and table["patients_resampled_to_model_grid"] == 0
    assert client.get_run(run_id).data.params["spacing_mm"] == "3.0"
    materialize(data_root, ["preprocessed_volumes"], "tiny", instance=instance,
                run_config={"preprocessed_volumes": {"config": {"target_spacing_mm": 2.0, "size": 64}}})  # fmt: skip
    regrid = metadata(materialize(data_root, ["lesion_masks"], "tiny", instance=instance), "lesion_masks")
    assert regrid["segmented"] == 8 and regrid["patients_resampled_to_model_grid"] == 8


def test_unet_without_training_splits_fails_clearly(data_root, instance):
    result = materialize(data_root, ["unet_model"], "t1", instance=instance, raise_on_error=False)
    assert not result.success and "training_splits" in failure_message(result)


def test_unet_with_an_unknown_training_cohort_says_what_to_do(data_root, instance):
    path = DataRoot(data_root).table_file("training_splits", "all")
    path.parent.mkdir(parents=True)
    pd.DataFrame({"cohort": ["a"], "patient_id": ["P1"], "subject_id": ["s1"], "split": ["train"]}).to_parquet(path)
    result = materialize(data_root, ["unet_model"], "t1", instance=instance, raise_on_error=False,
                         run_config={"unet_model": {"config": {"training_cohorts": ["zzz"]}}})  # fmt: skip
    assert "training cohorts not in training_splits: ['zzz']" in failure_message(result)


def test_checks_without_any_unet_model_say_what_to_do(instance):
    with pytest.raises(dg.Failure, match="no trained model for 'flair'"):
        unet_version(instance, "no-such-run", "flair", "sqlite:///unused.db")


@pytest.mark.parametrize("dice, passed", [(0.9, True), (0.5, True), (0.2, False), (float("nan"), False)])
def test_dice_floor_check_on_good_and_bad_metrics(dice, passed):
    table = pd.DataFrame({"sequence": ["stack"] * 2, "split": ["validation", "test"], "metric": ["dice_3d"] * 2, "value": [0.99, dice]})
    result = segment_checks.segmentation_metrics_test_dice_above_floor(table)
    assert result.passed is passed and result.metadata["floor"].value == segment_checks.TEST_DICE_FLOOR


@pytest.mark.slow
def test_same_seed_same_segmentation_metrics_in_two_data_roots(tmp_path, monkeypatch):
    """Determinism end to end: one prepared data root copied, then the model trained and evaluated in each
    copy with its own instance and MLflow store, gives identical metric rows."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    first = DataRoot(tmp_path / "first")
    monkeypatch.setenv("GBM_DATA_ROOT", str(first.root))
    instance = dg.DagsterInstance.ephemeral()
    write_cohort(first.cohorts_dir, "tiny", 6, seed=3, options=TINY)
    add_cohort(instance, "tiny")
    materialize(first.root, ["raw_cohort", "clinical_records", "preprocessed_volumes", "training_slices"], "tiny", instance=instance, run_config=PREPROCESS)
    materialize(first.root, ["training_splits"], instance=instance)
    second = DataRoot(tmp_path / "second")
    shutil.copytree(first.root, second.root)
    tables = []
    for root in (first, second):
        monkeypatch.setenv("GBM_DATA_ROOT", str(root.root))
        materialize(root.root, ["unet_model", "segmentation_metrics"], "flair", instance=dg.DagsterInstance.ephemeral(),
                    run_config={"unet_model": {"config": {"base": 4, "epochs": 2, "batch_size": 8, "threads": 1}}})  # fmt: skip
        tables.append(read_parquet(root.table_file("segmentation_metrics", "flair")))  # each root's own file
    assert len(tables[0]) == 36 and all(any((r.model_dir("unet") / "flair").iterdir()) for r in (first, second))
    pd.testing.assert_frame_equal(tables[0], tables[1], check_exact=True)
