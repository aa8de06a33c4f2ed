"""Assemble the real cases shipped in ../shared/data into a cohort the platform reads as any other.

TCGA-06-1802 (ELMED219): native-resolution T1, T1c, T2, FLAIR registered to T1 (LAS, 5 mm slices)
and an HD-GLIO prediction as labels; its clinical row (Verhaak subtype Mesenchymal, survival
239 days, G-CIMP status) comes from the UCSC Xena TCGA-GBM clinical matrix through cohort.yaml.
Files are linked, never copied, and the source folder is never written.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from gbm_assets.lib.paths import validate_cohort_name

TCGA_CASE = "tcga-gbm-06-1802-elmed219"
XENA = "tcga-gbm-clinical-subtypes/TCGA.GBM.sampleMap-GBM_clinicalMatrix"
TCGA_FILES = {
    "t1": "T1_reorient_bet.nii.gz",
    "t1c": "CT1_reorient_bet_reg.nii.gz",
    "t2": "T2_reorient_bet_reg.nii.gz",
    "flair": "FLAIR_reorient_bet_reg.nii.gz",
}
TCGA_LABELS = "tcga_06_1802_hd_glio_predict.nii.gz"


def tcga_cohort_yaml(xena_matrix: Path) -> dict:
    """The cohort.yaml mapping for the TCGA case folder and the Xena clinical matrix."""
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
    """Link the TCGA-06-1802 case into `<cohorts_dir>/<cohort>/TCGA-06-1802/` and write cohort.yaml.

    Raises:
        FileNotFoundError: a needed file is absent from `shared_data` (the message names it).
    """
    source = Path(shared_data).resolve() / TCGA_CASE
    xena = Path(shared_data).resolve() / XENA
    for needed in [*(source / f for f in (*TCGA_FILES.values(), TCGA_LABELS)), xena]:
        if not needed.is_file():
            raise FileNotFoundError(f"real data file {needed} is missing")
    folder = Path(cohorts_dir) / validate_cohort_name(cohort)
    patient = folder / "TCGA-06-1802"
    patient.mkdir(parents=True, exist_ok=True)
    for name in (*TCGA_FILES.values(), TCGA_LABELS):
        link = patient / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(source / name)
    (folder / "cohort.yaml").write_text(yaml.safe_dump(tcga_cohort_yaml(xena), sort_keys=False))
    return folder
