"""BraTS 2021 naming: `<cohort>/<patient>/<patient>_{t1,t1ce,t2,flair,seg}.nii.gz`.

The mask (`_seg`) is optional (a cohort to score has none) and uses BraTS labels 1/2/4. A patient
is valid with the sequences it has, unless cohort.yaml's `expected_sequences` names more.
"""

from __future__ import annotations

from pathlib import Path

from gbm_assets.lib.ingest.layouts.base import CohortScan, LayoutReader, PatientFiles, register

BRATS_SUFFIXES = {"t1": "t1", "t1ce": "t1c", "t2": "t2", "flair": "flair"}


def _nifti(folder: Path, stem: str) -> Path | None:
    for ext in (".nii.gz", ".nii"):
        candidate = folder / f"{stem}{ext}"
        if candidate.is_file():
            return candidate
    return None


class SuffixLayout(LayoutReader):
    """Patient folders holding `<patient><separator><suffix>.nii[.gz]` per sequence and
    `<patient><separator>seg.nii[.gz]` (optional). Subclasses set the naming and the label scheme."""

    suffixes: dict[str, str] = {}
    """file suffix -> canonical sequence name."""
    separator: str = "_"
    label_scheme: str = "brats"
    described: str = "BraTS-named"

    def scan(self, cohort_dir: Path) -> CohortScan:
        patients = []
        sep = self.separator
        for folder in sorted(d for d in cohort_dir.iterdir() if d.is_dir() and not d.name.startswith(".")):
            pid = folder.name
            images = {seq: path for suffix, seq in self.suffixes.items() if (path := _nifti(folder, f"{pid}{sep}{suffix}"))}
            problems = tuple(
                f"missing sequence file: {seq} (no {pid}{sep}{suffix}.nii.gz or .nii in {folder})"
                for suffix, seq in self.suffixes.items()
                if seq in self.required_sequences and seq not in images
            )
            if not images:
                names = "|".join(self.suffixes)
                problems = (f"no {self.described} files ({pid}{sep}<{names}>.nii.gz) in {folder}",)
            patients.append(PatientFiles(pid, images, _nifti(folder, f"{pid}{sep}seg"), self.label_scheme, problems))
        return CohortScan(self.name, patients)


@register
class BratsLayout(SuffixLayout):
    name = "brats"
    suffixes = BRATS_SUFFIXES

    @classmethod
    def detect(cls, cohort_dir: Path) -> bool:
        return any(
            _nifti(d, f"{d.name}_flair") or _nifti(d, f"{d.name}_t1")
            for d in cohort_dir.iterdir()
            if d.is_dir()
        )
