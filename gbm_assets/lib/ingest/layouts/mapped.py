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
    label_scheme: hd_glio               # a key of contract.LABEL_SCHEMES, or a label_map (see spec.py)
    expected_sequences: [t1, t1c, t2, flair]   # optional: a patient missing one is excluded
    clinical: {...}                     # optional, read by clinical_records (see clinical.py)
    subject_ids: {TCGA-06-1802: TCGA-06-1802}   # optional: patient id -> declared subject id

Globs may name NIfTI or any file SimpleITK reads (NRRD `.nrrd`/`.nhdr`, MetaImage `.mha`/`.mhd`);
non-NIfTI files are converted to NIfTI when the cohort is validated. Each glob must match at most
one file: several are ambiguous; none means the patient lacks that sequence (a problem only when
the sequence is expected, or for the labels glob).
Every glob must be relative to the cohort (patients) or patient folder and free of `..`
(see `gbm_assets.lib.ingest.confine`): an absolute or escaping glob fails the whole cohort.
"""

from __future__ import annotations

from pathlib import Path

from gbm_assets.lib.contract import canonical_sequence
from gbm_assets.lib.ingest.confine import OutsideCohortError, check_pattern
from gbm_assets.lib.ingest.layouts.base import CohortScan, LayoutError, LayoutReader, PatientFiles, register
from gbm_assets.lib.ingest.layouts.spec import COHORT_YAML, label_scheme_of, read_cohort_yaml

__all__ = ["COHORT_YAML", "MappedLayout", "read_cohort_yaml"]


def _checked(pattern: object, where: Path, what: str) -> str:
    try:
        return check_pattern(str(pattern), str(where), what)
    except OutsideCohortError as exc:
        raise LayoutError(str(exc)) from None


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
            globs = {canonical_sequence(str(k)): _checked(v, where, f"sequence glob {k!r}") for k, v in spec["sequences"].items()}
        except (AttributeError, KeyError) as exc:
            raise LayoutError(f"{where}: 'sequences' must map sequence names to globs ({exc})") from None
        labels_glob = _checked(spec["labels"], where, "labels glob") if spec.get("labels") else None
        patients_glob = _checked(spec.get("patients", "*"), where, "patients glob")
        scheme = label_scheme_of(spec, "brats", where)
        patients = []
        for folder in sorted(p for p in cohort_dir.glob(patients_glob) if p.is_dir() and not p.name.startswith(".")):
            images, problems = {}, []
            for seq, pattern in globs.items():
                path, problem = _one(folder, pattern, seq)
                if path:
                    images[seq] = path
                elif problem and (seq in self.required_sequences or problem.startswith("ambiguous")):
                    problems.append(problem)
            labels = None
            if labels_glob:
                labels, problem = _one(folder, labels_glob, "labels")
                if problem:
                    problems.append(problem)
            problems += [f"missing sequence file: {s} ({COHORT_YAML} maps no glob for it)" for s in self.required_sequences if s not in globs]
            if not images and not problems:
                problems.append(f"no image files in {folder} (no match for {', '.join(map(repr, globs.values()))})")
            patients.append(PatientFiles(folder.name, images, labels, scheme, tuple(problems)))
        return CohortScan(self.name, patients)
