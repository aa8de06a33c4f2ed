"""lesion_masks through Dagster: bad model inputs, a champion without its post-processing tag, and
the automatic choice of the champion whose inputs a cohort has (a stub registry of tiny untrained U-Nets)."""

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from gbm_assets.defs.masks.assets import champion_dice
from gbm_assets.lib.contract import MODEL_INPUTS
from gbm_assets.lib.masks.choice import choose_model_input
from gbm_assets.lib.masks.postprocess import KEEP_LARGEST_TAG
from gbm_assets.lib.preprocess.intensity import scalings
from gbm_assets.lib.preprocess.volumes import PreprocessConfig
from gbm_assets.lib.segment.checkpoint import CHECKPOINT_ARTIFACT, architecture, save_checkpoint
from gbm_assets.lib.segment.unet import UNet
from gbm_assets.lib.store.paths import DataRoot
from gbm_assets.lib.store.tracking import (
    CHAMPION,
    TrackingStore,
    ensure_experiment,
    log_run_artifacts,
    tracked_run,
)
from gbm_assets_tests.conftest import add_cohort, failure_message, materialize, metadata
from gbm_assets_tests.factories import write_brats_cohort

SMALL = {"preprocessed_volumes": {"config": {"size": 16}}}


@pytest.fixture
def cohort(data_root, instance):
    write_brats_cohort(DataRoot(data_root).cohorts_dir / "c", patients=1, shape=(16, 16, 8))
    add_cohort(instance, "c")
    materialize(data_root, ["raw_cohort", "preprocessed_volumes"], "c", instance=instance, run_config=SMALL)
    return "c"


def test_unknown_model_input_is_refused(data_root, instance, cohort):
    result = materialize(data_root, ["lesion_masks"], cohort, instance=instance, raise_on_error=False,
                         run_config={"lesion_masks": {"config": {"model_input": "dwi"}}})  # fmt: skip
    assert "unknown model input 'dwi'" in failure_message(result)
    with pytest.raises(Exception, match="dwi"):
        materialize(data_root, ["unet_model"], "dwi", instance=instance)


def test_no_champion_says_what_to_do(data_root, instance, cohort):
    result = materialize(data_root, ["lesion_masks"], cohort, instance=instance, raise_on_error=False,
                         run_config={"lesion_masks": {"config": {"model_input": "stack"}}})  # fmt: skip
    assert "no 'champion' version of gbm-unet-stack" in failure_message(result)
    result = materialize(data_root, ["lesion_masks"], cohort, instance=instance, raise_on_error=False)
    assert "cohort 'c': its valid patients all have the sequences [t1, t1c, t2, flair], which match no champion" in failure_message(result)


def test_champion_without_postprocess_tag_fails_naming_model_and_version(data_root, instance, cohort, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    store = TrackingStore.for_data_root(data_root)
    ensure_experiment(store, "gbm_assets")
    with tracked_run(store, "gbm_assets", "untagged", {}) as run:
        mlflow.log_metric("best_val_dice", 0.5)
    client = MlflowClient(store.tracking_uri)
    client.create_registered_model("gbm-unet-stack")
    version = client.create_model_version("gbm-unet-stack", source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id).version
    client.set_registered_model_alias("gbm-unet-stack", CHAMPION, version)
    result = materialize(data_root, ["lesion_masks"], cohort, instance=instance, raise_on_error=False)
    message = failure_message(result)
    assert f"gbm-unet-stack version {version}" in message and "postprocess.keep_largest_component" in message
    assert "materialize segmentation_metrics" in message


def register_champion(data_root, model_input: str, dice: float, tmp_path, whole_tumor: float | None = None,
                      dice_3d: float | None = None, intensity: dict | None = None) -> str:
    """A stub registry entry: a tiny untrained U-Net for `model_input` as the champion of its
    registered model, its run carrying `best_val_dice` = dice (and `best_val_dice_whole_tumor` when
    given, as a region model logs it; `validation_dice_3d` when given, as segmentation_metrics logs it)
    and the post-processing tag set; `intensity`: the scaling its checkpoint says it was trained on (default: the
    platform's default preprocessing, as a model trained on cohorts preprocessed by default)."""
    store = TrackingStore.for_data_root(data_root)
    ensure_experiment(store, "gbm_assets")
    name = f"gbm-unet-{model_input}"
    arch = architecture(len(MODEL_INPUTS[model_input]), 4, 0.0)
    folder = tmp_path / f"ckpt_{model_input}"
    intensity = intensity or scalings(MODEL_INPUTS[model_input], PreprocessConfig().percentile_scaled)
    save_checkpoint(folder / "unet.pt", UNet(arch["in_channels"], arch["base"], arch["dropout"]).state_dict(), arch, model_input, intensity)
    with tracked_run(store, "gbm_assets", f"stub-{model_input}", {}) as run:
        mlflow.log_metric("best_val_dice", dice)
        if whole_tumor is not None:
            mlflow.log_metric("best_val_dice_whole_tumor", whole_tumor)
        if dice_3d is not None:
            mlflow.log_metric("validation_dice_3d", dice_3d)
    log_run_artifacts(store.tracking_uri, run.info.run_id, folder, CHECKPOINT_ARTIFACT)
    client = MlflowClient(store.tracking_uri)
    client.create_registered_model(name)
    version = client.create_model_version(name, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id).version
    client.set_registered_model_alias(name, CHAMPION, version)
    client.set_model_version_tag(name, version, KEEP_LARGEST_TAG, "false")
    return version


def test_auto_choice_ranks_region_and_binary_champions_on_whole_tumour(data_root, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    register_champion(data_root, "t1c", 0.7, tmp_path)  # binary, logged before the whole-tumour metric existed
    register_champion(data_root, "all", 0.9, tmp_path, whole_tumor=0.5)  # regions: a high mean, a poor whole tumour
    register_champion(data_root, "flair", 0.6, tmp_path, whole_tumor=0.6)
    found = champion_dice(TrackingStore.for_data_root(data_root).tracking_uri)
    assert found == {"t1c": 0.7, "all": 0.5, "flair": 0.6}
    assert choose_model_input("c", ("t1", "t1c", "t2", "flair"), found) == "t1c"


def test_auto_choice_ranks_on_the_validation_volumes_dice_once_segmentation_metrics_logged_it(data_root, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    # a region model whose per-slice whole-tumour Dice is lower (specks on lesion-free slices count as misses)
    # but whose volumes are better segmented, against a FLAIR model not yet evaluated
    register_champion(data_root, "all", 0.88, tmp_path, whole_tumor=0.77, dice_3d=0.92)
    register_champion(data_root, "flair", 0.80, tmp_path, whole_tumor=0.80)
    register_champion(data_root, "stack", 0.78, tmp_path, whole_tumor=0.78, dice_3d=0.90)
    found = champion_dice(TrackingStore.for_data_root(data_root).tracking_uri)
    assert found == {"all": 0.92, "flair": 0.80, "stack": 0.90}
    assert choose_model_input("c", ("t1", "t1c", "t2", "flair"), found) == "all"


def test_auto_choice_takes_the_best_champion_whose_inputs_the_cohort_has(data_root, instance, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cohort_dir = write_brats_cohort(DataRoot(data_root).cohorts_dir / "pair", patients=2, shape=(16, 16, 8))
    for f in [*cohort_dir.glob("*/*_t1.nii.gz"), *cohort_dir.glob("*/*_t2.nii.gz")]:
        f.unlink()  # a FLAIR + T1c-only cohort
    add_cohort(instance, "pair")
    for model_input, dice in (("stack", 0.9), ("flair", 0.6), ("t1c", 0.7), ("t1", 0.95)):
        register_champion(data_root, model_input, dice, tmp_path)
    result = materialize(data_root, ["raw_cohort", "preprocessed_volumes", "lesion_masks"], "pair", instance=instance,
                         run_config={"preprocessed_volumes": {"config": {"size": 32}}})  # fmt: skip
    meta = metadata(result, "lesion_masks")
    assert meta["model_input"] == "t1c" and meta["model"] == "gbm-unet-t1c v1" and meta["model_input_chosen"] == "auto"
    table = pd.read_parquet(data_root / "tables" / "lesion_masks" / "pair.parquet")
    assert table["status"].tolist() == ["ok", "ok"] and set(table["model_name"]) == {"gbm-unet-t1c"}
    # the overview picture: a file under reports/, an inline image served from the MLflow run, a link
    overview = data_root / "reports" / "lesion_masks" / "pair" / "overview.png"
    assert overview.read_bytes()[:4] == b"\x89PNG" and overview.stat().st_size < 300_000
    assert meta["overview"].startswith("![") and "get-artifact" in meta["overview"] and len(meta["overview"]) < 1000
    assert meta["mlflow_run"].startswith("http://") and "/runs/" in meta["mlflow_run"]
    # an explicit model input the cohort lacks fails patient by patient, naming each
    result = materialize(data_root, ["lesion_masks"], "pair", instance=instance, raise_on_error=False,
                         run_config={"lesion_masks": {"config": {"model_input": "stack"}}})  # fmt: skip
    table = pd.read_parquet(data_root / "tables" / "lesion_masks" / "pair.parquet") if result.success else None
    assert table is None or (table["status"] == "excluded").all()


def test_a_cohort_scaled_otherwise_than_the_champion_learnt_is_refused(data_root, instance, cohort, tmp_path, monkeypatch):
    """A FLAIR model trained on z-scored FLAIR (the study's way), fed percentile-scaled volumes (the default), would
    segment without complaint and wrongly: lesion_masks refuses the cohort, naming it, the patient and the folder,
    until it is preprocessed alike."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    register_champion(data_root, "flair", 0.8, tmp_path, intensity={"flair": "zscore"})
    flair = {"lesion_masks": {"config": {"model_input": "flair"}}}
    message = failure_message(materialize(data_root, ["lesion_masks"], cohort, instance=instance, raise_on_error=False, run_config=flair))
    folder = DataRoot(data_root).volume_dir("preprocessed", cohort)
    assert "cohort 'c': gbm-unet-flair version 1: 1 of 1 patients were preprocessed with another intensity scaling" in message
    assert f"({folder}/" in message and "flair: percentile, the model zscore" in message
    assert "re-materialize preprocessed_volumes with percentile_scaled: []" in message
    assert not (DataRoot(data_root).table_dir("lesion_masks") / "c.parquet").exists()
    zscored = {"preprocessed_volumes": {"config": {"size": 16, "percentile_scaled": []}}}
    materialize(data_root, ["preprocessed_volumes"], cohort, instance=instance, run_config=zscored)
    done = materialize(data_root, ["lesion_masks"], cohort, instance=instance, run_config=flair)
    assert metadata(done, "lesion_masks")["intensity_scaling"] == "flair=zscore"
