"""Assemble the real cases shipped in ../shared/data into a cohort the platform reads as any other.

TCGA-06-1802 (ELMED219): native-resolution T1, T1c, T2, FLAIR registered to T1 (LAS, 5 mm slices)
and an HD-GLIO prediction as labels; its clinical row (Verhaak subtype Mesenchymal, survival
239 days, G-CIMP status) comes from the UCSC Xena TCGA-GBM clinical matrix through cohort.yaml.

The files are COPIED into the cohort folder (about 11 MB), and so is the case's row of the Xena
matrix (as `clinical.tsv`): a cohort may only name files inside its own folder (see
`gbm_assets.lib.ingest.confine`), so the assembled cohort needs no operator allowance and
keeps working when ../shared/data moves. The source folder is never written.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import yaml

from gbm_assets.lib.store.paths import validate_cohort_name

TCGA_CASE = "tcga-gbm-06-1802-elmed219"
XENA = "tcga-gbm-clinical-subtypes/TCGA.GBM.sampleMap-GBM_clinicalMatrix"
TCGA_FILES = {
    "t1": "T1_reorient_bet.nii.gz",
    "t1c": "CT1_reorient_bet_reg.nii.gz",
    "t2": "T2_reorient_bet_reg.nii.gz",
    "flair": "FLAIR_reorient_bet_reg.nii.gz",
}
TCGA_LABELS = "tcga_06_1802_hd_glio_predict.nii.gz"
TCGA_PATIENT = "TCGA-06-1802"
CLINICAL_FILE = "clinical.tsv"


def tcga_cohort_yaml(xena_matrix: Path | str = CLINICAL_FILE) -> dict:
    """The cohort.yaml mapping for the TCGA case folder and (rows of) the Xena clinical matrix,
    by default the `clinical.tsv` inside the cohort folder."""
    return {
        "patients": "TCGA-*",
        "sequences": dict(TCGA_FILES),
        "labels": TCGA_LABELS,
        "label_scheme": "hd_glio",
        "clinical": {
            "path": str(xena_matrix),
            "patient_id_pattern": r"^(TCGA-\d\d-\d{4})",
            "survival_unit": "days",
            "columns": {
                "patient_id": "sampleID",
                "subtype": "GeneExp_Subtype",
                "survival": "CDE_survival_time",
                "idh_status": "G_CIMP_STATUS",
                "age": "CDE_DxAge",
                "vital_status": "vital_status",
            },
        },
    }


def assemble_real_cohort(shared_data: Path, cohorts_dir: Path, cohort: str = "tcga-real") -> Path:
    """Copy the TCGA-06-1802 case into `<cohorts_dir>/<cohort>/TCGA-06-1802/`, its Xena row into
    `<cohort>/clinical.tsv`, and write cohort.yaml. Idempotent (files are replaced).

    Raises:
        FileNotFoundError: a needed file is absent from `shared_data` (the message names it).
    """
    source = Path(shared_data).resolve() / TCGA_CASE
    xena = Path(shared_data).resolve() / XENA
    for needed in [*(source / f for f in (*TCGA_FILES.values(), TCGA_LABELS)), xena]:
        if not needed.is_file():
            raise FileNotFoundError(f"real data file {needed} is missing")
    folder = Path(cohorts_dir) / validate_cohort_name(cohort)
    patient = folder / TCGA_PATIENT
    patient.mkdir(parents=True, exist_ok=True)
    for name in (*TCGA_FILES.values(), TCGA_LABELS):
        target = patient / name
        if target.is_symlink() or target.exists():
            target.unlink()  # an earlier version linked; a copy replaces the link
        shutil.copyfile(source / name, target)
    matrix = pd.read_csv(xena, sep="\t", dtype=str, keep_default_na=False)
    rows = matrix[matrix["sampleID"].str.startswith(TCGA_PATIENT)]
    if rows.empty:
        raise FileNotFoundError(f"{xena} has no row for {TCGA_PATIENT}")
    rows.to_csv(folder / CLINICAL_FILE, sep="\t", index=False)
    (folder / "cohort.yaml").write_text(yaml.safe_dump(tcga_cohort_yaml(), sort_keys=False))
    return folder
