"""Predicted lesion masks: the champion U-Net segments every valid patient of a cohort.

The U-Net is the configured `model_input`'s champion, or by default ("auto") the champion with the
best validation Dice (`best_val_dice` on its version's run) whose inputs every patient has.
"""

import tempfile
from functools import partial

import dagster as dg
import pandas as pd

from gbm_assets.defs.compute import ComputeResource
from gbm_assets.defs.masks.config import MaskSettings
from gbm_assets.defs.metadata import artifact_url, image_metadata, run_url
from gbm_assets.defs.partitions import cohorts_partitions
from gbm_assets.defs.patients import keyed, map_each_patient
from gbm_assets.defs.preprocess.config import source_version
from gbm_assets.defs.resources import DataRootResource, MlflowResource
from gbm_assets.defs.segment.versions import CHAMPION_METRIC, VALIDATION_DICE_3D, WHOLE_TUMOR_METRIC
from gbm_assets.lib.contract import MODEL_INPUTS
from gbm_assets.lib.masks import native, postprocess, worker
from gbm_assets.lib.masks.choice import (
    AUTO,
    NoMatchingChampion,
    choose_model_input,
    common_sequences,
    preprocessed_sequences,
)
from gbm_assets.lib.masks.overview import choose, overview_png
from gbm_assets.lib.masks.postprocess import KEEP_LARGEST_TAG
from gbm_assets.lib.masks.worker import (
    MaskTask,
    init_worker,
    load_thumb,
    mask_key,
    mask_outputs,
    segment_patient,
    thumb_path,
)
from gbm_assets.lib.preprocess.intensity import describe, intensity_problem
from gbm_assets.lib.segment import inference
from gbm_assets.lib.segment.checkpoint import checkpoint_record, logged_checkpoint, registered_model_name
from gbm_assets.lib.segment.grid import folder_spacing, same_grid
from gbm_assets.lib.store.compute import usable_cpus
from gbm_assets.lib.store.tracking import (
    CHAMPION,
    champion_version,
    log_run_artifacts,
    run_data,
    version_run_id,
    version_tags,
)

CODE_VERSION = source_version(worker, postprocess, native, inference)
"""The inference and post-processing code's version, part of each patient's content key."""

MASK_COLUMNS = [
    "cohort", "patient_id", "status", "problems", "mask_path", "roi_scheme",
    "model_name", "model_version", "voxels", "volume_ml", "empty",
]  # fmt: skip


def champion_checkpoint(tracking_uri: str, model_name: str, folder) -> tuple[str, str, bool]:
    """(checkpoint file downloaded into `folder`, version, keep_largest) of the registry's `champion`.

    The file lies under the data root, so every worker (local or Dask) loads it without MLflow.

    Raises:
        dg.Failure: no champion, or a champion without the keep-largest tag segmentation_metrics sets.
    """
    version = champion_version(tracking_uri, model_name)
    if version is None:
        raise dg.Failure(description=f"no {CHAMPION!r} version of {model_name} in {tracking_uri}; materialize unet_model first")
    tag = version_tags(tracking_uri, model_name, version).get(KEEP_LARGEST_TAG)
    if tag not in ("true", "false"):
        raise dg.Failure(description=f"{model_name} version {version} (the {CHAMPION}) has no {KEEP_LARGEST_TAG!r} tag: "
                         f"materialize segmentation_metrics for it to choose the post-processing")  # fmt: skip
    path = logged_checkpoint(tracking_uri, version_run_id(tracking_uri, model_name, version), folder)
    return str(path), version, tag == "true"


def champion_dice(tracking_uri: str) -> dict[str, float | None]:
    """Model input -> its champion's validation Dice on whole tumour, for every input that has a champion: the 3D
    Dice segmentation_metrics logged (`VALIDATION_DICE_3D`), else the training run's per-slice one
    (`WHOLE_TUMOR_METRIC`; `best_val_dice` for versions logged before it, all binary). Binary and region models
    rank on the same region."""
    found = {}
    for name in MODEL_INPUTS:
        version = champion_version(tracking_uri, registered_model_name(name))
        if version is not None:
            _, metrics = run_data(tracking_uri, version_run_id(tracking_uri, registered_model_name(name), version))
            found[name] = next((metrics[k] for k in (VALIDATION_DICE_3D, WHOLE_TUMOR_METRIC, CHAMPION_METRIC) if k in metrics), None)
    return found


def model_input_for(cohort: str, requested: str, patient_dirs, tracking_uri: str) -> str:
    """The configured model input, or the automatic choice (see `lib/masks/choice`).

    Raises:
        dg.Failure: an unknown input, or (auto) no champion whose inputs the cohort has.
    """
    if requested.strip().lower() in AUTO:
        available = common_sequences(preprocessed_sequences(d) for d in patient_dirs)
        try:
            return choose_model_input(cohort, available, champion_dice(tracking_uri))
        except NoMatchingChampion as exc:
            raise dg.Failure(description=str(exc)) from None
    if requested not in MODEL_INPUTS:
        raise dg.Failure(description=f"unknown model input {requested!r}; choose one of {', '.join(MODEL_INPUTS)} or 'auto'")
    return requested


@dg.asset(
    partitions_def=cohorts_partitions,
    group_name="masks",
    io_manager_key="table_io_manager",
    # the champion alias it reads is moved by unet_champion (after the blocking checks on unet_model);
    # the post-processing it applies is chosen by segmentation_metrics (a tag on the version)
    deps=[dg.AssetDep(key, partition_mapping=dg.AllPartitionMapping()) for key in ("unet_champion", "segmentation_metrics")],
    kinds={"nifti", "pytorch"},
    description="Masks from the champion U-Net, post-processed and written on each patient's native grid: whole tumour "
    "(roi_scheme binary) from a binary model, canonical labels 0-3 (roi_scheme canonical) from a region model.",
)
def lesion_masks(
    context: dg.AssetExecutionContext,
    config: MaskSettings,
    preprocessed_volumes: pd.DataFrame,
    data_root: DataRootResource,
    mlflow: MlflowResource,
    compute: ComputeResource,
) -> dg.Output[pd.DataFrame]:
    """Each preprocessed patient on the compute resource (the U-Net loaded once per worker);
    unchanged patients (same preprocessed files, weights and settings) reused from their records."""
    cohort, root = context.partition_key, data_root.root()
    ok_rows = preprocessed_volumes[preprocessed_volumes["status"] == "ok"]
    if ok_rows.empty:
        raise dg.Failure(description=f"cohort {cohort!r}: no preprocessed patients to segment")
    tracking_uri = mlflow.store().tracking_uri
    model_input = model_input_for(cohort, config.model_input, ok_rows["dir"], tracking_uri)
    model_name = registered_model_name(model_input)
    models = root.model_dir("champions")
    models.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=models, prefix=f".{cohort}-") as folder, compute.open(root.root) as pool:
        checkpoint, version, keep_largest = champion_checkpoint(tracking_uri, model_name, folder)
        intensity, model_grid = checkpoint_record(checkpoint)
        resampled = 0 if model_grid is None else sum(not same_grid(folder_spacing(d), model_grid) for d in ok_rows["dir"])
        if resampled:
            context.log.info(f"cohort {cohort}: {resampled} patients preprocessed on another in-plane grid than {model_name} "
                             f"version {version} learnt on ({model_grid:g} mm); their slices are resampled to it and back")
        problem = intensity_problem(intensity, {f"patient {row.patient_id}": row.dir for row in ok_rows.itertuples()})
        if problem:  # a model fed volumes scaled otherwise than it learnt fails silently: refuse the cohort
            raise dg.Failure(description=f"cohort {cohort!r}: {model_name} version {version}: {problem}")
        context.log.info(f"cohort {cohort}: segmenting {len(ok_rows)} patients with {model_name} version {version} "
                         f"(keep largest component: {keep_largest}) on {pool.describe()}")  # fmt: skip
        base = {"cohort": cohort, "roi_scheme": "binary", "model_name": model_name, "model_version": version}
        items = [MaskTask(row.patient_id, row.dir, str(root.volume_dir("lesion_masks", cohort, row.patient_id) / "mask.nii.gz"),
                          checkpoint, model_input, config.threshold, config.min_component_mm3, keep_largest,
                          config.batch_size, model_name, version, CODE_VERSION)
                 for row in ok_rows.itertuples()]  # fmt: skip
        runner = keyed(pool, root, "lesion_masks", cohort, mask_key, mask_outputs)
        threads = max(1, usable_cpus() // max(1, pool.workers))  # cores / workers torch threads per worker
        outcome = map_each_patient(context, cohort, runner, segment_patient, items, what="segmentation",
                                   file_of=lambda task: task.dir, initializer=partial(init_worker, checkpoint, threads))  # fmt: skip
    outcome.results = [base | row for row in outcome.results]
    failed = [base | {"patient_id": f["patient_id"], "status": "excluded", "problems": f["problem"], "empty": True} for f in outcome.failures]
    table = pd.DataFrame([*outcome.results, *failed], columns=MASK_COLUMNS)
    if table.empty:
        raise dg.Failure(description=f"cohort {cohort!r}: no preprocessed patients to segment")
    order = {pid: i for i, pid in enumerate(ok_rows["patient_id"])}
    table = table.sort_values("patient_id", key=lambda s: s.map(order), ignore_index=True)
    ok = table[table["status"] == "ok"]
    thumbs = [load_thumb(row.patient_id, thumb_path(row.mask_path)) for row in ok.itertuples()]
    picture = _overview(context, mlflow, root.root / "reports" / "lesion_masks" / cohort, cohort, model_name, version, thumbs)
    return dg.Output(
        table,
        metadata={
            "model": f"{model_name} v{version}",
            "model_input": model_input,
            "model_input_chosen": "auto" if config.model_input.strip().lower() in AUTO else "config",
            "keep_largest_component": keep_largest,
            "intensity_scaling": describe(intensity),
            "model_grid_mm": model_grid,
            "patients_resampled_to_model_grid": resampled,
            "patients": len(table),
            "segmented": len(ok),
            "patients_reused": runner.reused,
            "patients_computed": runner.computed,
            "failed": int((table["status"] != "ok").sum()),
            "empty_masks": int(ok["empty"].sum()),
            "volume_ml": dg.MetadataValue.md(ok["volume_ml"].describe().round(2).to_frame().to_markdown()),
            "masks_dir": dg.MetadataValue.path(str(root.volume_dir("lesion_masks", cohort))),
            **picture,
        },
    )


def _overview(context, mlflow: MlflowResource, folder, cohort: str, model_name: str, version: str, thumbs) -> dict:
    """The overview grid (4 largest masks, 2 worst by Dice where truth exists) written to
    `folder/overview.png`, logged to an MLflow run, and its metadata entries (shown inline when
    the MLflow UI serves the run's artifacts)."""
    path = folder / "overview.png"
    data = overview_png(choose(thumbs), f"{cohort}: predicted lesion masks ({model_name} v{version})", path)
    with mlflow.run(context, f"lesion-masks-{cohort}-{context.run_id[:8]}") as run:
        run_id, experiment_id = run.info.run_id, run.info.experiment_id
        log_run_artifacts(mlflow.store().tracking_uri, run_id, folder)
    return {"overview": image_metadata(data, f"{cohort} lesion masks overview", url=artifact_url(run_id, "overview.png")),
            "overview_file": dg.MetadataValue.path(str(path)), "overview_kb": round(len(data) / 1024, 1),
            "mlflow_run": run_url(experiment_id, run_id)}
