"""BraTS 2021 naming: `<cohort>/<patient>/<patient>_{t1,t1ce,t2,flair,seg}.nii.gz`.

The mask (`_seg`) is optional (a cohort to score has none) and uses BraTS labels 1/2/4.
"""

from __future__ import annotations

from pathlib import Path

from gbm_assets.lib.layouts.base import CohortScan, LayoutReader, PatientFiles, register

BRATS_SUFFIXES = {"t1": "t1", "t1ce": "t1c", "t2": "t2", "flair": "flair"}


def _nifti(folder: Path, stem: str) -> Path | None:
    for ext in (".nii.gz", ".nii"):
        candidate = folder / f"{stem}{ext}"
        if candidate.is_file():
            return candidate
    return None


@register
class BratsLayout(LayoutReader):
    name = "brats"

    @classmethod
    def detect(cls, cohort_dir: Path) -> bool:
        return any(
            _nifti(d, f"{d.name}_flair") or _nifti(d, f"{d.name}_t1")
            for d in cohort_dir.iterdir()
            if d.is_dir()
        )

    def scan(self, cohort_dir: Path) -> CohortScan:
        patients = []
        for folder in sorted(d for d in cohort_dir.iterdir() if d.is_dir() and not d.name.startswith(".")):
            pid = folder.name
            images = {seq: path for suffix, seq in BRATS_SUFFIXES.items() if (path := _nifti(folder, f"{pid}_{suffix}"))}
            problems = self.missing(images)
            if not images:
                problems = (f"no BraTS-named files ({pid}_<t1|t1ce|t2|flair>.nii.gz) in {folder}",)
            patients.append(PatientFiles(pid, images, _nifti(folder, f"{pid}_seg"), "brats", problems))
        return CohortScan(self.name, patients)
