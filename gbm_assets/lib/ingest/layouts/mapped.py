"""A `cohort.yaml` that maps file globs to sequences, for any other arrangement.

Example (the TCGA-06-1802 folder in ../shared/data, one folder per patient)::

    layout: mapped            # optional; a cohort.yaml always selects this reader
    patients: "TCGA-*"        # glob of patient folders inside the cohort folder (default "*")
    sequences:                # glob per canonical sequence, relative to the patient folder
      t1: "T1_reorient_bet.nii.gz"
      t1c: "CT1_*.nii.gz"
      t2: "T2_*.nii.gz"
      flair: "FLAIR_*.nii.gz"
    labels: "*hd_glio_predict.nii.gz"   # optional
    label_scheme: hd_glio               # a key of contract.LABEL_SCHEMES
    clinical: {...}                     # optional, read by clinical_records (see clinical.py)

Each glob must match exactly one file: none is a missing sequence, several are ambiguous.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from gbm_assets.lib.contract import LABEL_SCHEMES, canonical_sequence
from gbm_assets.lib.layouts.base import CohortScan, LayoutError, LayoutReader, PatientFiles, register

COHORT_YAML = "cohort.yaml"


def read_cohort_yaml(cohort_dir: Path) -> dict[str, Any]:
    """The cohort's `cohort.yaml` as a dict ({} when absent).

    Raises:
        LayoutError: unreadable YAML, or not a mapping.
    """
    path = cohort_dir / COHORT_YAML
    if not path.is_file():
        return {}
    try:
        spec = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise LayoutError(f"{path}: cannot read ({exc})") from exc
    if not isinstance(spec, dict):
        raise LayoutError(f"{path}: expected a mapping at the top level")
    return spec


def _one(folder: Path, pattern: str, what: str) -> tuple[Path | None, str | None]:
    matches = sorted(p for p in folder.glob(pattern) if p.is_file())
    if not matches:
        return None, f"missing {what} file: no match for {pattern!r} in {folder}"
    if len(matches) > 1:
        return None, f"ambiguous {what} file: {pattern!r} matches {', '.join(p.name for p in matches)}"
    return matches[0], None


@register
class MappedLayout(LayoutReader):
    name = "mapped"

    @classmethod
    def detect(cls, cohort_dir: Path) -> bool:
        return bool(read_cohort_yaml(cohort_dir).get("sequences"))

    def scan(self, cohort_dir: Path) -> CohortScan:
        spec = read_cohort_yaml(cohort_dir)
        where = cohort_dir / COHORT_YAML
        try:
            globs = {canonical_sequence(k): str(v) for k, v in spec["sequences"].items()}
        except (AttributeError, KeyError) as exc:
            raise LayoutError(f"{where}: 'sequences' must map sequence names to globs ({exc})") from None
        scheme = str(spec.get("label_scheme", "brats"))
        if scheme not in LABEL_SCHEMES:
            raise LayoutError(f"{where}: unknown label_scheme {scheme!r}; known: {', '.join(LABEL_SCHEMES)}")
        patients = []
        for folder in sorted(p for p in cohort_dir.glob(str(spec.get("patients", "*"))) if p.is_dir()):
            images, problems = {}, []
            for seq, pattern in globs.items():
                path, problem = _one(folder, pattern, seq)
                if path:
                    images[seq] = path
                elif problem:
                    problems.append(problem)
            labels = None
            if spec.get("labels"):
                labels, problem = _one(folder, str(spec["labels"]), "labels")
                if problem:
                    problems.append(problem)
            problems += [f"missing sequence file: {s} ({COHORT_YAML} maps no glob for it)" for s in self.required_sequences if s not in globs]
            patients.append(PatientFiles(folder.name, images, labels, scheme, tuple(problems)))
        return CohortScan(self.name, patients)
