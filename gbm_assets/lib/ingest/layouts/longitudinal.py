"""Longitudinal cohorts (LUMIERE's arrangement): one folder per subject, one sub-folder per time point.

    <cohort>/<subject>/week-000/<anything>_{t1,t1ce,t2,flair}.nii.gz   (+ optional <anything>_seg.nii.gz)
    <cohort>/<subject>/week-044/...
    <cohort>/<subject>/week-044-2/...     a second scan in the same week (LUMIERE's `-<n>` suffix)

Inside a time-point folder the files follow the BraTS 2021 suffixes (`_t1`, `_t1ce`, `_t2`, `_flair`,
`_seg`; `.nii.gz` or `.nii`); the part before the suffix is free. The mask uses BraTS labels 1/2/4.

Each time point becomes its own patient row with id `<subject>__<timepoint>` (e.g.
`Patient-001__week-044`), so every per-patient asset runs unchanged per time point; its
`subject_id` is the subject folder's name, so splits and cross-validation keep a subject's time
points together. `split_timepoint_id` recovers (subject, time point, week, repeat) from the id.

Time points are ordered by (week, repeat), never by folder-name order. Problems found here:
  * two folders naming the same time point (`week-44` and `week-044`): both excluded, each named;
  * a subject folder holding no `week-<n>` folder, or files beside the time-point folders: noted in
    the scan's cohort-level problems (the subject is skipped / the files ignored);
  * a subject with a single time point is valid and noted (no change can be measured).
Image consistency across a subject's time points (shape, spacing, identical scans) is checked on
the validated rows (`gbm_assets.lib.progression.timepoints.timepoint_problems`).
"""

from __future__ import annotations

import re
from pathlib import Path

from gbm_assets.lib.ingest.layouts.base import (
    CohortScan,
    LayoutReader,
    PatientFiles,
    register,
)

TIMEPOINT = re.compile(r"^week-(?P<week>\d{1,4})(?:-(?P<repeat>\d{1,3}))?$", re.IGNORECASE)
"""A time-point folder: `week-<weeks since baseline>[-<repeat>]`."""
SEPARATOR = "__"
"""Between subject and time point in a patient id."""
_SUFFIXES = {"t1": "t1", "t1ce": "t1c", "t2": "t2", "flair": "flair"}


def timepoint_id(subject: str, timepoint: str) -> str:
    """The patient id of one time point: `<subject>__<timepoint>`."""
    return f"{subject}{SEPARATOR}{timepoint}"


def split_timepoint_id(patient_id: str) -> tuple[str, str, int, int] | None:
    """(subject, timepoint, week, repeat) of a longitudinal patient id; None for any other id."""
    subject, sep, timepoint = str(patient_id).rpartition(SEPARATOR)
    m = TIMEPOINT.match(timepoint) if sep and subject else None
    if m is None:
        return None
    return subject, timepoint, int(m["week"]), int(m["repeat"] or 1)


def _find(folder: Path, suffix: str) -> tuple[Path | None, list[Path]]:
    hits = sorted(p for p in folder.iterdir() if p.is_file() and re.search(rf"_{suffix}\.nii(\.gz)?$", p.name, re.IGNORECASE))
    return (hits[0] if len(hits) == 1 else None), hits


@register
class LongitudinalLayout(LayoutReader):
    name = "longitudinal"

    @classmethod
    def detect(cls, cohort_dir: Path) -> bool:
        return any(
            TIMEPOINT.match(t.name) and t.is_dir()
            for d in cohort_dir.iterdir() if d.is_dir() and not d.name.startswith(".")
            for t in d.iterdir()
        )

    def scan(self, cohort_dir: Path) -> CohortScan:
        patients, notes = [], []
        for subject_dir in sorted(d for d in cohort_dir.iterdir() if d.is_dir() and not d.name.startswith(".")):
            subject = subject_dir.name
            folders = [t for t in subject_dir.iterdir() if t.is_dir() and TIMEPOINT.match(t.name)]
            if not folders:
                notes.append(f"subject folder {subject_dir} has no time-point folder (week-<n>); skipped")
                continue
            stray = sorted(p.name for p in subject_dir.iterdir() if not p.name.startswith(".") and p not in folders)
            if stray:
                notes.append(f"subject {subject}: ignored {stray[:5]} beside the time-point folders in {subject_dir}")
            keyed: dict[tuple[int, int], list[Path]] = {}
            for t in folders:
                m = TIMEPOINT.match(t.name)
                keyed.setdefault((int(m["week"]), int(m["repeat"] or 1)), []).append(t)
            if len(keyed) == 1:
                notes.append(f"subject {subject}: a single time point ({folders[0].name}); no change over time can be measured")
            for key in sorted(keyed):
                for folder in sorted(keyed[key]):
                    patients.append(self._timepoint(subject, folder, keyed[key]))
        return CohortScan(self.name, patients, notes)

    def _timepoint(self, subject: str, folder: Path, same_time: list[Path]) -> PatientFiles:
        images, problems = {}, []
        for suffix, seq in _SUFFIXES.items():
            path, hits = _find(folder, suffix)
            if path is not None:
                images[seq] = path
            elif len(hits) > 1:
                problems.append(f"{seq}: several files match *_{suffix}.nii[.gz] in {folder}: {[h.name for h in hits]}")
            elif seq in self.required_sequences:
                problems.append(f"missing sequence file: {seq} (no *_{suffix}.nii.gz or .nii in {folder})")
        if not images and not problems:
            problems.append(f"no BraTS-suffixed files (*_<t1|t1ce|t2|flair>.nii.gz) in {folder}")
        if len(same_time) > 1:
            problems.append(f"duplicated time point: folders {sorted(p.name for p in same_time)} of subject {subject} "
                            "name the same week; rename one (a second scan that week: week-<n>-2)")
        labels, hits = _find(folder, "seg")
        if labels is None and len(hits) > 1:
            problems.append(f"labels: several files match *_seg.nii[.gz] in {folder}: {[h.name for h in hits]}")
        return PatientFiles(timepoint_id(subject, folder.name), images, labels, "brats", tuple(problems), subject_id=subject)
