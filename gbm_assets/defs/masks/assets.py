"""Predicted lesion masks: the champion U-Net segments every valid patient of a cohort."""

import dagster as dg
import numpy as np
import pandas as pd

from gbm_assets.defs.partitions import cohorts_partitions
from gbm_assets.defs.resources import DataRootResource, MlflowResource
from gbm_assets.defs.segment.config import MaskSettings
from gbm_assets.defs.segment.training import load_registered, postprocess_choice, registered_name
from gbm_assets.lib.preprocess.slices import INPUTS
from gbm_assets.lib.preprocess.volumes import load_preprocessed
from gbm_assets.lib.segment.inference import predict_volume
from gbm_assets.lib.segment.native import save_native_mask
from gbm_assets.lib.segment.postprocess import postprocess_mask

MASK_COLUMNS = [
    "cohort", "patient_id", "status", "problems", "mask_path", "roi_scheme",
    "model_name", "model_version", "voxels", "volume_ml", "empty",
]  # fmt: skip


def load_champion(mlflow_resource: MlflowResource, model_name: str):
    """(model, version, keep_largest) of the registry's `champion`; dg.Failure when there is none."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from gbm_assets.lib.tracking import CHAMPION

    uri = mlflow_resource.store().tracking_uri
    try:
        found = MlflowClient(uri).get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException as exc:
        raise dg.Failure(description=f"no {CHAMPION!r} version of {model_name} in {uri}; materialize unet_model first") from exc
    version = str(found.version)
    return load_registered(uri, model_name, version), version, postprocess_choice(uri, found.run_id)


@dg.asset(
    partitions_def=cohorts_partitions,
    group_name="masks",
    io_manager_key="table_io_manager",
    # the champion alias it reads is moved by unet_champion (after the blocking checks on unet_model)
    deps=[dg.AssetDep("unet_champion", partition_mapping=dg.AllPartitionMapping())],
    kinds={"nifti", "pytorch"},
    description="Whole-tumour masks from the champion U-Net, post-processed and written on each patient's native grid.",
)
def lesion_masks(
    context: dg.AssetExecutionContext,
    config: MaskSettings,
    preprocessed_volumes: pd.DataFrame,
    data_root: DataRootResource,
    mlflow: MlflowResource,
) -> dg.Output[pd.DataFrame]:
    cohort, root = context.partition_key, data_root.root()
    if config.sequence not in INPUTS:
        raise dg.Failure(description=f"unknown model input {config.sequence!r}; choose one of {', '.join(INPUTS)}")
    model_name = registered_name(config.sequence)
    model, version, keep_largest = load_champion(mlflow, model_name)
    context.log.info(f"cohort {cohort}: segmenting with {model_name} version {version} (keep largest component: {keep_largest})")
    rows = []
    for row in preprocessed_volumes[preprocessed_volumes["status"] == "ok"].itertuples():
        base = {"cohort": cohort, "patient_id": row.patient_id, "roi_scheme": "binary", "model_name": model_name, "model_version": version}
        path = root.volume_dir("lesion_masks", cohort, row.patient_id) / "mask.nii.gz"
        try:
            patient = load_preprocessed(row.dir)
            prob = predict_volume(model, patient, config.sequence, batch_size=config.batch_size)
            mask = postprocess_mask(prob, patient.spacing, config.threshold, config.min_component_mm3, keep_largest)
            native = save_native_mask(mask, patient.transform, path)
            voxel_ml = abs(np.linalg.det(np.asarray(patient.transform.native_affine)[:3, :3])) / 1000
            voxels = int(native.sum())
            rows.append(base | {"status": "ok", "problems": "", "mask_path": str(path), "voxels": voxels,
                                "volume_ml": voxels * voxel_ml, "empty": voxels == 0})  # fmt: skip
        except Exception as exc:  # one patient's failure is recorded; the others proceed
            message = f"segmentation failed: {type(exc).__name__}: {exc}"
            context.log.error(f"cohort {cohort}, patient {row.patient_id} ({row.dir}): {message}")
            rows.append(base | {"status": "excluded", "problems": message, "empty": True})
    table = pd.DataFrame(rows, columns=MASK_COLUMNS)
    if table.empty:
        raise dg.Failure(description=f"cohort {cohort!r}: no preprocessed patients to segment")
    ok = table[table["status"] == "ok"]
    return dg.Output(
        table,
        metadata={
            "model": f"{model_name} v{version}",
            "keep_largest_component": keep_largest,
            "patients": len(table),
            "segmented": len(ok),
            "failed": int((table["status"] != "ok").sum()),
            "empty_masks": int(ok["empty"].sum()),
            "volume_ml": dg.MetadataValue.md(ok["volume_ml"].describe().round(2).to_frame().to_markdown()),
            "masks_dir": dg.MetadataValue.path(str(root.volume_dir("lesion_masks", cohort))),
        },
    )
