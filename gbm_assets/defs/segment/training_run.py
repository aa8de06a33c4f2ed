"""One U-Net training run: train (lib/segment), log and register in MLflow (lib/store/tracking).

The run holds everything later steps need about the version: params (settings, architecture,
cohorts), per-epoch metrics, `checkpoint/model.pt`, `data/training_splits.parquet` (the patients
and their splits) and `figures/training_curves.png`. Local copies sit under
`<data root>/models/unet/<input>/<run id>/`, one folder per run.
"""

from __future__ import annotations

import time

import dagster as dg
import numpy as np
import pandas as pd

from gbm_assets.defs.metadata import artifact_url, image_metadata, mlflow_links
from gbm_assets.defs.resources import MlflowResource
from gbm_assets.defs.segment.config import UNetSettings
from gbm_assets.defs.segment.versions import (
    CHAMPION_METRIC,
    WHOLE_TUMOR_METRIC,
    SPLITS_ARTIFACT,
    SPLITS_FILE,
)
from gbm_assets.lib.contract import MODEL_INPUTS
from gbm_assets.lib.preprocess.intensity import ZSCORE, describe
from gbm_assets.lib.segment.checkpoint import (
    CHECKPOINT_ARTIFACT,
    architecture,
    registered_model_name,
    save_checkpoint,
)
from gbm_assets.lib.segment.dataset import SliceData, require_trainable
from gbm_assets.lib.segment.figures import training_curves_png
from gbm_assets.lib.segment.regions import REGION_CHANNELS
from gbm_assets.lib.segment.train import TrainConfig, train_unet
from gbm_assets.lib.store.files import write_bytes_atomic
from gbm_assets.lib.store.paths import DataRoot
from gbm_assets.lib.store.tables import write_parquet_atomic
from gbm_assets.lib.store.tracking import (
    log_and_register,
    log_metric_history,
    log_run_artifacts,
)


def train_and_log(
    context: dg.AssetExecutionContext, data: SliceData, patients: pd.DataFrame, input_name: str,
    config: UNetSettings, root: DataRoot, mlflow_resource: MlflowResource, intensity: dict[str, str] | None = None,
    spacing_mm: float | None = None,
) -> dict:
    """Train on data's train/validation splits, log to MLflow, register; return unet_model's metadata.

    `intensity` (sequence -> scaling of the training patients' volumes) and `spacing_mm` (their in-plane voxel size,
    the grid inference resamples to) go into the checkpoint and the run's params.

    Raises:
        ValueError: a split too small, or no lesion pixels to train on.
    """
    import mlflow.pytorch
    import torch

    require_trainable(data)
    cfg = TrainConfig(base=config.base, epochs=config.epochs, batch_size=config.batch_size, lr=config.learning_rate,
                      seed=config.seed, augment=config.augment, progress=True, schedule=config.schedule,
                      compile=config.compile, channels_last=config.channels_last, threads=config.threads,
                      num_workers=config.num_workers, target=config.target, randomise=config.randomise,
                      spatial=config.spatial, dropout=config.dropout,
                      channel_scalings=tuple((intensity or {}).get(s, ZSCORE) for s in MODEL_INPUTS[input_name])
                      if config.randomise_keeps_scaling else ())  # fmt: skip
    in_channels = data.x["train"].shape[1]
    arch = architecture(in_channels, cfg.base, cfg.dropout, len(REGION_CHANNELS) if cfg.target == "regions" else 1, cfg.target)
    uri = mlflow_resource.store().tracking_uri
    model_name = registered_model_name(input_name)

    def on_epoch(row: dict) -> None:
        context.log.info(f"unet_model[{input_name}] epoch {row['epoch']}/{cfg.epochs}: train_loss {row['train_loss']:.4f} "
                         f"val_loss {row['val_loss']:.4f} val_dice {row['val_dice']:.4f} ({row['slices_per_s']:.0f} slices/s)")  # fmt: skip

    with mlflow_resource.run(context, run_name=f"unet-{input_name}") as run:
        run_id = run.info.run_id
        cohorts = sorted(set(patients["cohort"]))
        mlflow.log_params({**cfg.__dict__, "input": input_name, "in_channels": in_channels, "cohorts": ",".join(cohorts)[:500],
                           "train_slices": len(data.x["train"]), "validation_slices": len(data.x["validation"]),
                           "train_patients": int((patients["split"] == "train").sum()),
                           "intensity_scaling": describe(intensity or {}), "spacing_mm": spacing_mm})  # fmt: skip
        started = time.perf_counter()
        result = train_unet(data.x["train"], data.y["train"], data.x["validation"], data.y["validation"], cfg, on_epoch=on_epoch)
        seconds = time.perf_counter() - started
        log_metric_history(run_id, result.history, tracking_uri=uri)
        whole = float(result.history[result.best_epoch - 1]["val_dice_whole_tumor"])  # = best_val_dice for a binary model
        mlflow.log_metrics({CHAMPION_METRIC: result.best_val_dice, WHOLE_TUMOR_METRIC: whole, "best_epoch": result.best_epoch,
                            "train_seconds": seconds})  # fmt: skip
        folder = root.model_dir("unet") / input_name / run_id
        checkpoint = save_checkpoint(folder / CHECKPOINT_ARTIFACT / "model.pt", result.best_state, arch, input_name, intensity, spacing_mm)
        write_parquet_atomic(patients, folder / SPLITS_ARTIFACT / SPLITS_FILE)
        curves = training_curves_png(result.history)
        write_bytes_atomic(folder / "figures" / "training_curves.png", curves)
        for artifact in (CHECKPOINT_ARTIFACT, SPLITS_ARTIFACT, "figures"):
            log_run_artifacts(uri, run_id, folder / artifact, artifact_path=artifact)
        example = np.ascontiguousarray(data.x["validation"][:2])  # two slices keep the batch dimension dynamic in pt2
        version = log_and_register(mlflow.pytorch.log_model, result.model.to("cpu").eval(), model_name, input_example=example,
                                   pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"])  # fmt: skip
    slices_per_s = float(np.mean([h["slices_per_s"] for h in result.history]))
    still_improving = int(result.best_epoch) >= cfg.epochs  # the best epoch is the last one: more epochs may help
    if still_improving:
        context.log.warning(f"unet_model[{input_name}]: validation Dice was still improving at the last epoch "
                            f"({cfg.epochs}); more epochs may give a better model")
    return {
        "mlflow_run_id": run_id,
        "tracking_uri": uri,
        "registered_model": model_name,
        "model_version": version,
        "best_val_dice": float(result.best_val_dice),
        WHOLE_TUMOR_METRIC: whole,
        "best_epoch": int(result.best_epoch),
        "train_seconds": round(float(seconds), 1),
        "train_slices_per_s": round(slices_per_s, 1),
        "training_cohorts": dg.MetadataValue.json(cohorts),
        "training_patients": len(patients),
        "checkpoint": dg.MetadataValue.path(str(checkpoint)),
        "training_curves": image_metadata(curves, "training curves", url=artifact_url(run_id, "figures/training_curves.png")),
        "target": cfg.target,
        "intensity_scaling": describe(intensity or {}),
        "model_grid_mm": spacing_mm,
        "randomise": cfg.randomise,
        "randomise_keeps_scaling": bool(cfg.channel_scalings),
        "spatial": cfg.spatial,
        "dropout": cfg.dropout,
        "best_val_dice_definition": "per-slice hard Dice averaged over the validation slices (and over the regions of a "
        "region model), used to pick the best epoch; "
        "segmentation_metrics' dice_3d is the mean per-patient 3D Dice after post-processing, so the two differ",
        "still_improving_at_last_epoch": still_improving,
        **mlflow_links(uri, run.info.experiment_id, run_id, model_name, version),
    }
