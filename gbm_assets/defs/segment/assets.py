"""Segmentation assets: per-input U-Nets (tracked and registered in MLflow), their champion and metrics."""

import tempfile

import dagster as dg
import numpy as np
import pandas as pd
from mlflow import MlflowClient

from gbm_assets.defs.conditions import EAGER
from gbm_assets.defs.metadata import (
    artifact_url,
    image_metadata,
    mlflow_links,
    table_metadata,
)
from gbm_assets.defs.partitions import model_inputs_partitions
from gbm_assets.defs.preprocess.config import source_version
from gbm_assets.defs.resources import DataRootResource, MlflowResource
from gbm_assets.defs.segment.config import MetricsSettings, UNetSettings
from gbm_assets.defs.segment.training_run import train_and_log
from gbm_assets.defs.segment.versions import CHAMPION_METRIC, produced_version
from gbm_assets.lib.contract import MODEL_INPUTS
from gbm_assets.lib.masks.postprocess import KEEP_LARGEST_TAG, PostprocessSettings
from gbm_assets.lib.preprocess.intensity import common_intensity, intensity_problem, read_intensity
from gbm_assets.lib.preprocess.splits import (
    SPLITS,
    leak_messages,
    subjects_in_several_splits,
)
from gbm_assets.lib.preprocess.volumes import load_preprocessed
from gbm_assets.lib.segment import checkpoint, losses, region_loss, train, unet
from gbm_assets.lib.segment.checkpoint import load_checkpoint, model_target
from gbm_assets.lib.segment.grid import common_spacing, folder_spacing
from gbm_assets.lib.segment.dataset import load_slice_data
from gbm_assets.lib.segment.evaluate import (
    WHOLE_TUMOR,
    comparison_markdown,
    evaluate_model,
    with_region,
)
from gbm_assets.lib.segment.regions import REGION_CHANNELS
from gbm_assets.lib.store.files import write_bytes_atomic
from gbm_assets.lib.store.tables import read_parquet
from gbm_assets.lib.store.tracking import (
    log_run_artifacts,
    log_run_metrics,
    promote_if_better,
    set_version_tag,
)


def _training_patients(context: dg.AssetExecutionContext, config: UNetSettings, training_splits: pd.DataFrame) -> pd.DataFrame:
    leaks = leak_messages(subjects_in_several_splits(training_splits))
    if leaks:
        raise dg.Failure(description=f"training_splits puts a subject in two splits: {'; '.join(leaks[:5])}")
    available = sorted(set(training_splits["cohort"]))
    missing = sorted(set(config.training_cohorts) - set(available))
    if missing:
        raise dg.Failure(description=f"training cohorts not in training_splits: {missing}; materialize training_slices for them, then training_splits")
    chosen = [c for c in available if c in config.training_cohorts] if config.training_cohorts else available
    if not chosen:
        raise dg.Failure(description="training_splits lists no patient; materialize training_slices for a labelled cohort, then training_splits")
    context.log.info(f"training on cohorts {chosen}")
    return training_splits[training_splits["cohort"].isin(chosen)].reset_index(drop=True)


@dg.asset(
    partitions_def=model_inputs_partitions,
    group_name="segment",
    ins={"training_splits": dg.AssetIn(input_manager_key="table_io_manager")},
    kinds={"pytorch", "mlflow"},
    code_version=source_version(unet, train, losses, region_loss, checkpoint),
    description="The study's 2D U-Net for one input (t1, t1c, t2, flair, stack, all), trained on the patients of "
    "training_splits, tracked and registered in MLflow; binary whole tumour, or nested regions with target: regions.",
)
def unet_model(
    context: dg.AssetExecutionContext, config: UNetSettings, training_splits: pd.DataFrame, data_root: DataRootResource, mlflow: MlflowResource
) -> dg.MaterializeResult:
    input_name, root = context.partition_key, data_root.root()
    patients = _training_patients(context, config, training_splits)
    folders = {(c, p): root.volume_dir("preprocessed", c, p) for c, p in zip(patients["cohort"], patients["patient_id"])}
    try:  # the model remembers the scaling it learnt (lesion_masks refuses volumes scaled otherwise) and its grid
        intensity = common_intensity({f"cohort {c}, patient {p}": read_intensity(d) for (c, p), d in folders.items()}, MODEL_INPUTS[input_name])
        spacing = common_spacing({f"cohort {c}, patient {p}": folder_spacing(d) for (c, p), d in folders.items()})
    except ValueError as exc:
        raise dg.Failure(description=f"unet_model[{input_name}]: {exc}") from exc
    regions = config.target == "regions"
    data = load_slice_data(root, patients, input_name, labels=regions or config.randomise, require_regions=REGION_CHANNELS if regions else ())
    for cohort, pid, reason in data.excluded:
        context.log.warning(f"unet_model[{input_name}]: cohort {cohort}, patient {pid} left out of region training: {reason}")
    # They stay in the version's patient list: segmentation_metrics scores them on the regions their truth carries.
    try:
        trained = train_and_log(context, data, patients, input_name, config, root, mlflow, intensity, spacing)
    except ValueError as exc:  # too few slices, no lesions, bad shapes: a clear failure, never a silent model
        raise dg.Failure(description=f"unet_model[{input_name}]: {exc}") from exc
    trained["patients_without_region_labels"] = dg.MetadataValue.json([{"cohort": c, "patient_id": p, "reason": r} for c, p, r in data.excluded])
    return dg.MaterializeResult(metadata=trained)


@dg.asset(
    automation_condition=EAGER,
    partitions_def=model_inputs_partitions,
    group_name="segment",
    deps=[unet_model],
    io_manager_key="table_io_manager",
    kinds={"parquet"},
    description="The study's metric table per split and region (pixel metrics, 3D Dice, HD95; whole_tumor for a binary "
    "model, whole_tumor / tumor_core / enhancing for a region model) with pictures, for the version "
    "unet_model produced; tags that version with the post-processing lesion_masks must use.",
)
def segmentation_metrics(
    context: dg.AssetExecutionContext, config: MetricsSettings, data_root: DataRootResource, mlflow: MlflowResource
) -> dg.Output[pd.DataFrame]:
    input_name, root = context.partition_key, data_root.root()
    version = produced_version(context, mlflow)
    with tempfile.TemporaryDirectory() as tmp:
        path = version.checkpoint(tmp)
        model = load_checkpoint(path)
        patients = version.training_patients(tmp)
    folders = {f"cohort {c}, patient {p}": root.volume_dir("preprocessed", c, p) for c, p in zip(patients["cohort"], patients["patient_id"])}
    problem = intensity_problem(model.intensity, folders)
    if problem:  # its cohorts were re-preprocessed after training: scoring them would grade the wrong inputs
        raise dg.Failure(description=f"segmentation_metrics[{input_name}]: {version.label()}: {problem}")
    data = load_slice_data(root, patients, input_name, splits=SPLITS, labels=model_target(model) == "regions")
    settings = PostprocessSettings(config.threshold, config.min_component_mm3)
    result = evaluate_model(model, input_name, data, lambda c, p: load_preprocessed(root.volume_dir("preprocessed", c, p)), settings)
    folder = root.model_dir("unet") / input_name / version.run_id / "figures"
    for name, blob in result.pictures.items():
        write_bytes_atomic(folder / name, blob)
    log_run_metrics(version.tracking_uri, version.run_id, {f"{r.split}_{'' if r.region == WHOLE_TUMOR else r.region + '_'}{r.metric}": r.value
                                                           for r in result.metrics.itertuples()})  # fmt: skip
    log_run_artifacts(version.tracking_uri, version.run_id, folder, artifact_path="figures")
    keep_largest = bool(result.postprocess["keep_largest"])
    set_version_tag(version.tracking_uri, version.model_name, version.version, KEEP_LARGEST_TAG, str(keep_largest).lower())
    metrics, per_patient = result.metrics, result.per_patient
    others = [with_region(read_parquet(p)) for p in root.table_dir("segmentation_metrics").glob("*.parquet") if p.stem != input_name]
    everything = pd.concat([*others, metrics], ignore_index=True)
    whole = metrics[metrics["region"] == WHOLE_TUMOR]
    test = whole[whole["split"] == "test"].set_index("metric")["value"]
    pictures = {}
    if "test_overlay.png" in result.pictures:
        # served by the MLflow UI (the run's figures/ artifacts): a short link keeps the event log small
        pictures = {"test_overlay": image_metadata(None, "test slices: truth (green) and prediction (red)",
                                                   url=artifact_url(version.run_id, "figures/test_overlay.png")),
                    "test_slices_gif": image_metadata(None, "test patient across slices",
                                                      url=artifact_url(version.run_id, "figures/test_slices.gif"))}  # fmt: skip
    return dg.Output(
        metrics,
        metadata={
            "test_dice_3d": float(test.get("dice_3d", np.nan)),
            "test_hd95_mm": float(test.get("hd95_mm", np.nan)),
            "test_lesionwise_dice": float(test.get("lesionwise_dice", np.nan)),  # the BraTS evaluation's, whole tumour
            "test_lesion_f1": float(test.get("lesion_f1", np.nan)),
            "one_sided_empty_volumes": int((per_patient["pred_empty"] != per_patient["truth_empty"]).sum()),
            "postprocess_keep_largest_component": keep_largest,
            "validation_dice_3d_all_vs_largest": dg.MetadataValue.json(
                {k: round(v, 4) for k, v in result.postprocess.items() if k != "keep_largest"}
            ),
            "registered_model": version.model_name,
            "model_version": version.version,
            "mlflow_run_id": version.run_id,
            # the run whose model this evaluated (its metrics and figures were just logged there)
            **mlflow_links(version.tracking_uri, MlflowClient(version.tracking_uri).get_run(version.run_id).info.experiment_id,
                           version.run_id, version.model_name, version.version),
            "metrics": dg.MetadataValue.md(metrics.pivot_table(index=["region", "metric"], columns="split", values="value", sort=False)
                                           .round(4).to_markdown()),
            "comparison_test": dg.MetadataValue.md(comparison_markdown(everything, "test")),
            "per_patient": table_metadata(per_patient, index=False, digits=3),
            **pictures,
        },
    )


@dg.asset(
    partitions_def=model_inputs_partitions,
    group_name="segment",
    deps=[unet_model],
    kinds={"mlflow"},
    description="Moves the registry alias 'champion' to the new U-Net version; runs only when its blocking checks pass.",
)
def unet_champion(context: dg.AssetExecutionContext, mlflow: MlflowResource) -> dg.MaterializeResult:
    version = produced_version(context, mlflow)
    value = version.metric(CHAMPION_METRIC)
    decision = promote_if_better(version.model_name, version.version, CHAMPION_METRIC, value, tracking_uri=version.tracking_uri)
    if decision["champion_version"] != version.version:  # re-checked: a worse version never takes the alias
        context.log.warning(f"{version.label()} does not beat v{decision['champion_version']}; champion kept")
    return dg.MaterializeResult(
        metadata={
            "registered_model": version.model_name,
            "candidate_version": version.version,
            "promoted": bool(decision["promoted"]),
            "champion_version": str(decision["champion_version"]),
            "previous_champion_version": str(decision["previous_version"]),
            "previous_champion_val_dice": float("nan") if decision["previous_value"] is None else float(decision["previous_value"]),
        }
    )
