"""Column descriptions per table, for the `dagster/column_schema` the IO manager records on every
table output (see `resources.PartitionedParquetIOManager`).

`COMMON` describes columns shared by many tables; `TABLES[table]` adds or overrides per table;
`PATTERNS` describes families of columns by a regular expression (the wide radiomics tables).
Wide tables (more than `MAX_SCHEMA_COLUMNS` columns) list their named columns and one row per
matched pattern, so the event log does not carry thousands of column entries per event.
"""

from __future__ import annotations

import re

import dagster as dg
import pandas as pd

MAX_SCHEMA_COLUMNS = 120

COMMON: dict[str, str] = {
    "cohort": "Cohort name (the partition key).",
    "patient_id": "Patient identifier within the cohort (a folder name).",
    "subject_id": "The person behind the patient (several timepoints of one subject share it).",
    "status": "ok, or why the patient was excluded (see problems).",
    "problems": "What went wrong for this patient (empty when ok).",
    "problem": "What went wrong for this patient (empty when ok).",
    "roi_source": "Whose mask the numbers come from: predicted (the U-Net) or ground_truth.",
    "region": "Tumour region: whole_tumor, necrotic_core, edema or enhancing.",
    "sequence": "MRI sequence: t1, t1c, t2 or flair.",
    "mask_path": "The mask file (NIfTI) under the data root.",
    "model_version": "Registered MLflow model version used.",
    "model_name": "Registered MLflow model name.",
    "mlflow_run_id": "MLflow run id (open with `mlflow ui` on the data root's store).",
    "dagster_run_id": "The Dagster run that wrote the row.",
    "subtype": "Verhaak expression subtype from the clinical table (label).",
    "survival_months": "Months from diagnosis to death or last follow-up.",
    "event": "1 = death observed, 0 = censored, empty = unknown.",
    "shape_x": "Voxels along x.", "shape_y": "Voxels along y.", "shape_z": "Voxels along z.",
    "spacing_x_mm": "Voxel size along x (mm).", "spacing_y_mm": "Voxel size along y (mm).",
    "spacing_z_mm": "Voxel size along z (mm).",
    "has_labels": "Whether a ground-truth label volume exists.",
    "volume_ml": "Volume in millilitres.",
    "voxels": "Voxel count.",
    "split": "train, val or test (subject-level).",
}

TABLES: dict[str, dict[str, str]] = {
    "raw_cohort": {"image_sha256": "sha256 of the image files (change detection).",
                   "layout": "Folder layout recognised.", "label_scheme": "Label convention of the truth volume.",
                   "orientation": "Axis orientation code (e.g. RAS).", "labels_empty": "Truth volume has no lesion."},
    "clinical_records": {"idh_status": "IDH mutation status.", "age": "Age at diagnosis (years)."},
    "preprocessed_volumes": {"dir": "Folder of the preprocessed (resampled, normalised) volumes."},
    "lesion_masks": {"roi_scheme": "Label scheme of the mask (binary: whole tumour).",
                     "empty": "The predicted mask has no voxel.", "voxels": "Mask voxels on the native grid.",
                     "volume_ml": "Predicted whole-tumour volume (ml)."},
    "radiomic_features": {"feature_class": "PyRadiomics feature class (firstorder, glcm, shape, ...).",
                          "feature": "PyRadiomics feature name.", "value": "Feature value."},
    "tumor_burden": {"max_diameter_mm": "Largest 3D diameter (mm).", "hemisphere": "left, right or bilateral.",
                     "truth_volume_ml": "Ground-truth volume of the region (ml), where truth exists.",
                     "volume_diff_ml": "Predicted minus truth volume (ml).",
                     "dice": "3D Dice of predicted vs truth mask (per patient, whole volume)."},
    "segmentation_metrics": {"metric": "Metric name (3D Dice per patient volume unless named per-slice).",
                             "value": "Metric value.", "split": "Evaluation split.",
                             "region": "Scored region: whole_tumor (every model; the only one of a binary model), "
                                       "tumor_core and enhancing (region models)."},
    "training_slices": {"slice": "Axial slice index.", "row": "Row in the slice array file.",
                        "lesion_area_mm2": "Lesion area on the slice (mm^2).",
                        "label_regions": "Regions the patient's truth labels carry (comma-separated; a binary mask: "
                                         "whole_tumor only). Region models train and are scored on these only."},
    "subtype_predictions": {"predicted_subtype": "Most probable subtype.",
                            "subtypes_multilabel": "Subtypes whose one-vs-rest threshold the patient passes.",
                            "in_training_set": "True: the champion was fitted on this patient, so the prediction is "
                                               "in-sample (optimistic); empty: unknown."},
    "subtype_classifier": {"model": "Model kind (mlp is registered; others are baselines).",
                           "balanced_accuracy": "Cross-validated balanced accuracy, mean over folds and repeats.",
                           "accuracy": "Cross-validated accuracy, mean over folds and repeats.",
                           "macro_f1": "Cross-validated macro F1, mean over folds and repeats.",
                           "registered": "This row's model was registered in MLflow.",
                           "folds_sha256": "Fingerprint of the CV folds (equal: paired scores).",
                           "fold_balanced_accuracy": "JSON list of per-fold balanced accuracy."},
    "subtype_champion": {"champion_version": "Version the champion alias points at.",
                         "previous_version": "Version it pointed at before (empty: none).",
                         "cv_balanced_accuracy": "The champion's cross-validated balanced accuracy."},
    "idh_predictions": {"predicted_idh": "More probable IDH status: mutant or wildtype.",
                        "p_mutant": "Predicted probability of IDH mutant.", "p_wildtype": "Predicted probability of IDH wildtype.",
                        "in_training_set": "True: the champion was fitted on this patient (in-sample); empty: unknown."},
    "short_survival_predictions": {"predicted_short_survival": "short (<= 5 months) or long.",
                                   "p_short": "Predicted probability of survival <= 5 months.",
                                   "p_long": "Predicted probability of survival > 5 months.",
                                   "in_training_set": "True: the champion was fitted on this patient (in-sample); empty: unknown."},
    **{f"{t}_classifier": {"model": "Model kind (mlp is registered; others are baselines).",
                           "balanced_accuracy": "Cross-validated balanced accuracy, mean over folds and repeats.",
                           "status": "ok, or skipped (one class or too few patients per class: see skip_reason).",
                           "skip_reason": "Why the target was not trained (empty when ok).",
                           "fold_balanced_accuracy": "JSON list of per-fold balanced accuracy."} for t in ("idh", "short_survival")},
    **{f"{t}_champion": {"champion_version": "Version the champion alias points at (empty: none).",
                         "promoted": "False when the classifier was skipped and the alias did not move.",
                         "skip_reason": "Why nothing was promoted (empty when promoted)."} for t in ("idh", "short_survival")},
    "survival_view": {"grouping": "all, true_subtype or predicted_subtype.", "group": "Group label.",
                      "n": "Patients in the curve (known events only, unless note says otherwise).",
                      "n_events": "Observed deaths (unknown events are never counted).",
                      "n_events_unknown": "Patients whose event is unknown.",
                      "median_months": "Kaplan-Meier median survival (empty: not reached).",
                      "logrank_p": "Log-rank p across the grouping's groups.",
                      "note": "How to read the row: unknown events, in-sample predictions."},
}

PATTERNS: list[tuple[str, str, str]] = [
    # (regex, schema name shown, description)
    (r"^p_[a-z]+$", "p_<subtype>", "Predicted probability of the subtype."),
    (r"^auc_[a-z]+$", "auc_<subtype>", "One-vs-rest ROC AUC, pooled out-of-fold per repeat, averaged over repeats."),
    (r"^[a-z0-9_]+_std$", "<metric>_std", "Standard deviation of the metric over folds and repeats."),
    (r"^[a-z0-9]+__[a-z_]+__[a-z]+_.+$", "<sequence>__<region>__<class>_<feature>",
     "PyRadiomics feature of one sequence and region (e.g. flair__whole_tumor__firstorder_mean)."),
]


def describe(table: str, column: str) -> str | None:
    """The description of `table`'s `column` (table-specific, then common, then pattern); None: unknown."""
    found = TABLES.get(table, {}).get(column) or COMMON.get(column)
    if found:
        return found
    for regex, _, text in PATTERNS:
        if re.match(regex, column):
            return text
    return None


def _type(dtype) -> str:
    return "string" if pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype) else str(dtype)


def column_schema(table: str, df: pd.DataFrame) -> dg.TableSchema:
    """A `dg.TableSchema` of `df` (types from its dtypes, descriptions from this module).

    More than `MAX_SCHEMA_COLUMNS` columns: the columns no pattern covers, then one entry per
    pattern with its column count.
    """
    if len(df.columns) <= MAX_SCHEMA_COLUMNS:
        return dg.TableSchema(columns=[dg.TableColumn(str(c), _type(t), description=describe(table, str(c)))
                                       for c, t in df.dtypes.items()])
    columns, families = [], {}
    for c, t in df.dtypes.items():
        name = str(c)
        hit = next((p for p in PATTERNS if re.match(p[0], name)), None)
        if hit is None:
            columns.append(dg.TableColumn(name, _type(t), description=describe(table, name)))
        else:
            families.setdefault(hit, []).append(_type(t))
    for (_, shown, text), types in families.items():
        columns.append(dg.TableColumn(shown, types[0], description=f"{len(types)} columns. {text}"))
    return dg.TableSchema(columns=columns)
