"""Which U-Net version a segment step works on: the one `unet_model` produced, read from Dagster's
event log (no pointer file). Everything else about it (checkpoint, architecture, training
patients) comes from its MLflow run.

In a run that materialized `unet_model[<input>]`, checks and downstream assets use THAT
materialization, so two overlapping runs for one input never see each other's version; in a
run without it (a later `segmentation_metrics`), the latest materialization of the partition.

The MLflow store is the caller's (`MlflowResource`), never the URI a materialization recorded: a data root copied
or moved elsewhere then reads its own store, not the old root's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pandas as pd

from gbm_assets.defs.resources import MlflowResource
from gbm_assets.lib.segment.checkpoint import logged_checkpoint
from gbm_assets.lib.store.tables import read_parquet
from gbm_assets.lib.store.tracking import download_run_artifacts, run_data

UNET_MODEL = dg.AssetKey("unet_model")
CHAMPION_METRIC = "best_val_dice"
WHOLE_TUMOR_METRIC = "best_val_dice_whole_tumor"
"""The best epoch's per-slice validation Dice on whole tumour alone: equal to CHAMPION_METRIC for a binary model,
comparable across binary and region models (whose CHAMPION_METRIC averages their regions)."""
VALIDATION_DICE_3D = "validation_dice_3d"
"""The mean 3D whole-tumour Dice over the validation patients, post-processed as lesion_masks does, that
segmentation_metrics logs on the version's run: what lesion_masks' "auto" ranks on (WHOLE_TUMOR_METRIC, then
CHAMPION_METRIC, for a version not yet evaluated). A per-slice mean scores a speck on a lesion-free slice like a
missed tumour, and ranked a region model below single-sequence ones that it beat on every volume."""
SPLITS_ARTIFACT = "data"
SPLITS_FILE = "training_splits.parquet"


@dataclass(frozen=True)
class UnetVersion:
    """A registered U-Net version and the MLflow run (in `tracking_uri`) that made it."""

    input_name: str
    model_name: str
    version: str
    run_id: str
    tracking_uri: str

    def label(self) -> str:
        return f"{self.model_name} v{self.version}"

    def checkpoint(self, dst: str | Path) -> Path:
        """The run's checkpoint file, downloaded into `dst`."""
        return logged_checkpoint(self.tracking_uri, self.run_id, dst)

    def training_patients(self, dst: str | Path) -> pd.DataFrame:
        """The (cohort, patient_id, subject_id, split) rows the run trained and is evaluated on."""
        folder = download_run_artifacts(self.tracking_uri, self.run_id, SPLITS_ARTIFACT, dst)
        return read_parquet(folder / SPLITS_FILE)

    def metric(self, name: str) -> float | None:
        return run_data(self.tracking_uri, self.run_id)[1].get(name)


def _from_materialization(materialization: dg.AssetMaterialization, partition: str, tracking_uri: str) -> UnetVersion:
    meta = {k: v.value for k, v in materialization.metadata.items()}
    missing = [k for k in ("registered_model", "model_version", "mlflow_run_id") if k not in meta]
    if missing:
        raise dg.Failure(description=f"unet_model[{partition}]'s materialization lacks {missing}; re-materialize unet_model[{partition}]")
    return UnetVersion(partition, str(meta["registered_model"]), str(meta["model_version"]), str(meta["mlflow_run_id"]), tracking_uri)


def unet_version(instance: dg.DagsterInstance, run_id: str, partition: str, tracking_uri: str) -> UnetVersion:
    """The version `unet_model[partition]` produced in run `run_id`, else its latest materialization, in the MLflow
    store at `tracking_uri`.

    Raises:
        dg.Failure: unet_model[partition] was never materialized.
    """
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
    for record in reversed(records):
        found = record.event_log_entry.asset_materialization
        if found is not None and found.asset_key == UNET_MODEL and found.partition == partition:
            return _from_materialization(found, partition, tracking_uri)
    latest = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=UNET_MODEL, asset_partitions=[partition]), limit=1).records
    if not latest:
        raise dg.Failure(description=f"no trained model for {partition!r}; materialize unet_model[{partition}] first")
    return _from_materialization(latest[0].asset_materialization, partition, tracking_uri)


def produced_version(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext, mlflow: MlflowResource) -> UnetVersion:
    """`unet_version` for the step's run and partition, in the step's MLflow store."""
    return unet_version(context.instance, context.run.run_id, context.partition_key, mlflow.store().tracking_uri)
