"""Glue between the U-Net assets, the pure trainer and MLflow: checkpoints, registry, pictures.

Each trained model is a checkpoint file under `<data root>/models/unet/<input>/` with a JSON
record (`latest.json`) of its MLflow run, registered version and training cohorts, so later
assets find the model without asking the registry.
"""

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from gbm_assets.lib.paths import DataRoot
from gbm_assets.lib.segment.dataset import SliceData
from gbm_assets.lib.preprocess.volumes import load_preprocessed
from gbm_assets.lib.segment.evaluate import PATIENT_COLUMNS, patient_volume_row, pixel_metric_rows, volume_metric_rows
from gbm_assets.lib.segment.inference import predict_volume
from gbm_assets.lib.segment.postprocess import DEFAULT_MIN_COMPONENT_MM3, postprocess_mask
from gbm_assets.lib.segment.figures import markdown_image, overlay_grid_png, slices_gif, training_curves_png
from gbm_assets.lib.segment.train import TrainConfig, predict_slices, train_unet
from gbm_assets.lib.segment.unet import UNet
from gbm_assets.lib.tracking import champion_metric, log_metric_history, promote_if_better, should_promote

CHAMPION_METRIC = "best_val_dice"
KEEP_LARGEST_TAG = "postprocess.keep_largest_component"


def registered_name(input_name: str) -> str:
    return f"gbm-unet-{input_name}"


def _record_path(root: DataRoot, input_name: str):
    return root.model_dir("unet") / input_name / "latest.json"


def latest_record(root: DataRoot, input_name: str) -> dict:
    path = _record_path(root, input_name)
    if not path.is_file():
        raise FileNotFoundError(f"no trained model for {input_name!r} ({path}); materialize unet_model[{input_name}] first")
    return json.loads(path.read_text())


def load_checkpoint(path: str) -> UNet:
    """Rebuild a U-Net from a checkpoint written by `train_and_register` (eval mode, CPU)."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    arch = blob["architecture"]
    model = UNet(in_channels=arch["in_channels"], base=arch["base"], p=arch["dropout"])
    model.load_state_dict(blob["state_dict"])
    return model.eval()


def load_registered(tracking_uri: str, model_name: str, version: str) -> UNet:
    """Rebuild a registered U-Net from the checkpoint artifact of the run that made `version`."""
    import mlflow
    from mlflow import MlflowClient

    run_id = MlflowClient(tracking_uri).get_model_version(model_name, version).run_id
    folder = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="checkpoint", tracking_uri=tracking_uri))
    checkpoints = sorted(folder.glob("*.pt"))
    if not checkpoints:
        raise FileNotFoundError(f"{model_name} v{version}: run {run_id} has no checkpoint artifact")
    return load_checkpoint(str(checkpoints[0]))


def train_and_register(context, data: SliceData, input_name: str, config, root: DataRoot, mlflow_resource) -> dict:
    """Train on data's train/validation splits, log to MLflow, register, move `champion` if better."""
    import mlflow
    import mlflow.pytorch

    for split in ("train", "validation"):
        if split not in data.x or len(data.x[split]) < 2:
            raise ValueError(f"the {split} split has {len(data.x.get(split, []))} slices; need at least 2")
    if not data.y["train"].any():
        raise ValueError("the training slices contain no lesion pixels")
    cfg = TrainConfig(base=config.base, epochs=config.epochs, batch_size=config.batch_size, lr=config.learning_rate,
                      seed=config.seed, augment=config.augment, progress=True)  # fmt: skip
    in_channels = data.x["train"].shape[1]

    def on_epoch(row: dict) -> None:
        context.log.info(f"unet_model[{input_name}] epoch {row['epoch']}/{cfg.epochs}: train_loss {row['train_loss']:.4f} "
                         f"val_loss {row['val_loss']:.4f} val_dice {row['val_dice']:.4f} ({row['slices_per_s']:.0f} slices/s)")  # fmt: skip

    with mlflow_resource.run(context, run_name=f"unet-{input_name}") as run:
        run_id = run.info.run_id
        cohorts = sorted(set(data.index["train"]["cohort"]))
        mlflow.log_params({**cfg.__dict__, "input": input_name, "in_channels": in_channels, "cohorts": ",".join(cohorts),
                           "train_slices": len(data.x["train"]), "validation_slices": len(data.x["validation"])})  # fmt: skip
        started = time.perf_counter()
        result = train_unet(data.x["train"], data.y["train"], data.x["validation"], data.y["validation"], cfg, on_epoch=on_epoch)
        seconds = time.perf_counter() - started
        log_metric_history(run_id, result.history)
        mlflow.log_metrics({CHAMPION_METRIC: result.best_val_dice, "best_epoch": result.best_epoch, "train_seconds": seconds})
        folder = root.model_dir("unet") / input_name
        folder.mkdir(parents=True, exist_ok=True)
        checkpoint = folder / f"{run_id}.pt"
        arch = {"in_channels": in_channels, "base": cfg.base, "dropout": cfg.dropout}
        torch.save({"architecture": arch, "state_dict": result.best_state, "input": input_name}, checkpoint)
        mlflow.log_artifact(str(checkpoint), artifact_path="checkpoint")
        curves = training_curves_png(result.history)
        (folder / "training_curves.png").write_bytes(curves)
        mlflow.log_artifact(str(folder / "training_curves.png"), artifact_path="figures")
        example = np.ascontiguousarray(data.x["validation"][:2])  # two slices keep the batch dimension dynamic in pt2
        model = result.model.to("cpu").eval()
        info = mlflow.pytorch.log_model(model, name="model", registered_model_name=registered_name(input_name),
                                        input_example=example, pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"])  # fmt: skip
        version = str(info.registered_model_version)
    record = {
        "input": input_name, "run_id": run_id, "model_name": registered_name(input_name), "model_version": version,
        "checkpoint": str(checkpoint), "cohorts": cohorts, "best_val_dice": result.best_val_dice,
        "best_epoch": result.best_epoch, "train_seconds": seconds, "history": result.history, "architecture": arch,
        "tracking_uri": mlflow_resource.store().tracking_uri,
    }  # fmt: skip
    _record_path(root, input_name).write_text(json.dumps(record, indent=1, default=float))
    return record


def champion_comparison(record: dict) -> dict:
    """How the recorded candidate compares with the registry's current champion."""
    version, value = champion_metric(record["model_name"], CHAMPION_METRIC, record["tracking_uri"])
    is_champion = version == record["model_version"]
    return {
        "champion_version": version,
        "champion_val_dice": value,
        "candidate_val_dice": record["best_val_dice"],
        "beats_champion": is_champion or should_promote(record["best_val_dice"], value),
    }


def promote(record: dict) -> dict:
    """Move `champion` to the recorded version only if it beats the current champion."""
    return promote_if_better(record["model_name"], record["model_version"], CHAMPION_METRIC, record["best_val_dice"],
                             tracking_uri=record["tracking_uri"])  # fmt: skip


def weights_finite(record: dict) -> tuple[bool, list[str]]:
    """(all finite, names of tensors holding NaN or inf) for the recorded checkpoint."""
    state = torch.load(record["checkpoint"], map_location="cpu", weights_only=True)["state_dict"]
    bad = [name for name, t in state.items() if t.is_floating_point() and not torch.isfinite(t).all()]
    return not bad, bad


def model_metadata(record: dict) -> dict:
    import dagster as dg

    slices_per_s = np.mean([h["slices_per_s"] for h in record["history"]])
    return {
        "mlflow_run_id": record["run_id"],
        "tracking_uri": record["tracking_uri"],
        "registered_model": record["model_name"],
        "model_version": record["model_version"],
        "best_val_dice": float(record["best_val_dice"]),
        "best_epoch": int(record["best_epoch"]),
        "train_seconds": round(float(record["train_seconds"]), 1),
        "train_slices_per_s": round(float(slices_per_s), 1),
        "training_cohorts": dg.MetadataValue.json(record["cohorts"]),
        "checkpoint": dg.MetadataValue.path(record["checkpoint"]),
        "training_curves": dg.MetadataValue.md(markdown_image(training_curves_png(record["history"]), "training curves")),
    }


def _pictures(split: str, data: SliceData, prob: np.ndarray, channel: int = 0) -> dict:
    index, x, truth, pred = data.index[split], data.x[split], data.y[split], prob > 0.5
    order = index.sort_values("lesion_area_mm2", ascending=False).drop_duplicates("patient_id").head(4).index.to_numpy()
    grid = overlay_grid_png(x[order, channel], truth[order], pred[order], [f"{index.patient_id[i]} z{index.slice[i]}" for i in order])
    first = index.patient_id.iloc[order[0]] if len(order) else index.patient_id.iloc[0]
    rows = index[index.patient_id == first].sort_values("slice").index.to_numpy()
    gif = slices_gif(x[rows, channel], truth[rows], pred[rows])
    return {"grid": grid, "gif": gif}


def _volume_rows(model, input_name: str, split: str, patients, root: DataRoot, keep_largest: bool, min_component_mm3: float) -> list[tuple]:
    rows = []
    for cohort, pid, patient, prob in patients:
        pred = postprocess_mask(prob, patient.spacing, min_component_mm3=min_component_mm3, keep_largest=keep_largest)
        rows.append(patient_volume_row(input_name, split, cohort, pid, pred, patient.labels > 0, patient.spacing))
    return rows


def evaluate_model(record: dict, data: SliceData, root: DataRoot, min_component_mm3: float = DEFAULT_MIN_COMPONENT_MM3) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Metrics of the recorded model on every split present, plus pictures per split.

    Pixel metrics use the split's training slices; 3D metrics predict each split patient's whole
    preprocessed volume and post-process it as `lesion_masks` does. Whether to keep only the
    largest component is decided on the validation patients (never on test) and returned in
    `pictures["postprocess"]`.
    """
    model, input_name = load_checkpoint(record["checkpoint"]), record["input"]
    pixel, predicted, pictures = [], {}, {"files": {}, "markdown": {}}
    for split in data.x:
        prob = predict_slices(model, data.x[split])
        pixel.append(pixel_metric_rows(input_name, prob, data.y[split], data.index[split]))
        predicted[split] = []
        for cohort, pid in data.index[split][["cohort", "patient_id"]].drop_duplicates().itertuples(index=False):
            patient = load_preprocessed(root.volume_dir("preprocessed", cohort, pid))
            predicted[split].append((cohort, pid, patient, predict_volume(model, patient, input_name)))
        pics = _pictures(split, data, prob)
        pictures["files"][f"{split}_overlay.png"] = pics["grid"]
        pictures["files"][f"{split}_slices.gif"] = pics["gif"]
        if split == "test":
            pictures["markdown"]["test_overlay"] = markdown_image(pics["grid"], "test slices: image / truth / prediction")
            pictures["markdown"]["test_slices_gif"] = markdown_image(pics["gif"], "test patient across slices", "image/gif")
    choice = {"keep_largest": False, "val_dice_all_components": float("nan"), "val_dice_largest_component": float("nan")}
    if predicted.get("validation"):
        dice = {k: np.mean([r[4] for r in _volume_rows(model, input_name, "validation", predicted["validation"], root, k, min_component_mm3)]) for k in (False, True)}
        choice = {"keep_largest": bool(dice[True] > dice[False]), "val_dice_all_components": float(dice[False]), "val_dice_largest_component": float(dice[True])}
    patients = [row for split, items in predicted.items() for row in _volume_rows(model, input_name, split, items, root, choice["keep_largest"], min_component_mm3)]
    pictures["postprocess"] = choice
    per_patient = pd.DataFrame(patients, columns=PATIENT_COLUMNS)
    metrics = pd.concat([*pixel, volume_metric_rows(per_patient)], ignore_index=True)
    return metrics.sort_values(["split", "metric"], ignore_index=True), per_patient, pictures


def postprocess_choice(tracking_uri: str, run_id: str) -> bool:
    """The keep-largest-component decision `segmentation_metrics` recorded on a model's run (False if none)."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri).get_run(run_id).data.tags.get(KEEP_LARGEST_TAG) == "true"


def log_evaluation(record: dict, metrics: pd.DataFrame, pictures: dict) -> None:
    """Write pictures beside the checkpoint and log metrics + pictures to the model's MLflow run."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    folder = Path(record["checkpoint"]).parent / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    for name, blob in pictures["files"].items():
        (folder / name).write_bytes(blob)
    client = MlflowClient(record["tracking_uri"])
    now = int(time.time() * 1000)
    client.log_batch(record["run_id"], metrics=[Metric(f"{r.split}_{r.metric}", float(r.value), now, 0) for r in metrics.itertuples()])
    client.log_artifacts(record["run_id"], str(folder), artifact_path="figures")
    client.set_tag(record["run_id"], KEEP_LARGEST_TAG, str(pictures["postprocess"]["keep_largest"]).lower())
