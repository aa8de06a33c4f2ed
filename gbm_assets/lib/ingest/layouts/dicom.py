"""DICOM series, one folder per series (as scanners and TCIA deliver them), chosen by rules in cohort.yaml.

Example::

    layout: dicom
    patients: "*"                  # glob of patient folders (default "*"); series folders anywhere below
    series:                        # sequence -> regular expression on SeriesDescription (0008,103E),
      flair: "flair"               #   case-insensitive, tried in this order, the first that matches wins
      t1c: "t1.*(post|gd|\\+c)"
      t1: "t1"
      t2: "t2"
    skip_series: "localizer|scout" # optional: series to ignore
    labels: "seg.nii.gz"           # optional glob per patient (NIfTI or NRRD on the series' grid)
    label_scheme: msd

A series that no rule (and not `skip_series`) matches excludes its patient, naming the folder and
the description; so do two series matched to one sequence. Reading a series' header is the only
file access here; validation reads the series with SimpleITK's ImageSeriesReader and writes NIfTI.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from gbm_assets.lib.contract import canonical_sequence
from gbm_assets.lib.ingest.layouts.base import CohortScan, DicomSeries, LayoutError, LayoutReader, PatientFiles, register
from gbm_assets.lib.ingest.layouts.mapped import _checked, _one
from gbm_assets.lib.ingest.layouts.spec import COHORT_YAML, label_scheme_of, read_cohort_yaml

SERIES_DESCRIPTION = "0008|103e"


def find_series(folder: Path) -> list[DicomSeries]:
    """Every DICOM series under `folder` (any depth), with its description; [] when there is none."""
    import SimpleITK as sitk

    found = []
    for here, dirs, _ in sorted(os.walk(folder)):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for uid in sitk.ImageSeriesReader.GetGDCMSeriesIDs(here) or ():
            files = tuple(Path(f) for f in sitk.ImageSeriesReader.GetGDCMSeriesFileNames(here, uid))
            if not files:
                continue
            reader = sitk.ImageFileReader()
            reader.SetFileName(str(files[0]))
            try:
                reader.ReadImageInformation()
                description = reader.GetMetaData(SERIES_DESCRIPTION).strip() if reader.HasMetaDataKey(SERIES_DESCRIPTION) else ""
            except RuntimeError:
                description = ""
            found.append(DicomSeries(Path(here), uid, description, files))
    return found


def _rules(spec: dict, where: Path) -> list[tuple[str, re.Pattern]]:
    rules = spec.get("series")
    if not isinstance(rules, dict) or not rules:
        raise LayoutError(f"{where}: layout dicom needs 'series': sequence -> regular expression on SeriesDescription")
    try:
        return [(canonical_sequence(str(k)), re.compile(str(v), re.IGNORECASE)) for k, v in rules.items()]
    except KeyError as exc:
        raise LayoutError(f"{where}: series: {exc.args[0]}") from None
    except re.error as exc:
        raise LayoutError(f"{where}: series: bad regular expression ({exc})") from None


@register
class DicomLayout(LayoutReader):
    name = "dicom"

    @classmethod
    def detect(cls, cohort_dir: Path) -> bool:
        spec = read_cohort_yaml(cohort_dir)
        return spec.get("layout") == "dicom" or "series" in spec

    def scan(self, cohort_dir: Path) -> CohortScan:
        spec = read_cohort_yaml(cohort_dir)
        where = cohort_dir / COHORT_YAML
        rules = _rules(spec, where)
        try:
            skip = re.compile(str(spec["skip_series"]), re.IGNORECASE) if spec.get("skip_series") else None
        except re.error as exc:
            raise LayoutError(f"{where}: skip_series: bad regular expression ({exc})") from None
        labels_glob = _checked(spec["labels"], where, "labels glob") if spec.get("labels") else None
        patients_glob = _checked(spec.get("patients", "*"), where, "patients glob")
        scheme = label_scheme_of(spec, "canonical", where)
        patients = []
        for folder in sorted(p for p in cohort_dir.glob(patients_glob) if p.is_dir() and not p.name.startswith(".")):
            images: dict[str, DicomSeries] = {}
            problems: list[str] = []
            for series in find_series(folder):
                if skip and skip.search(series.description):
                    continue
                seq = next((s for s, rule in rules if rule.search(series.description)), None)
                if seq is None:
                    problems.append(f"DICOM series in {series.folder} (SeriesDescription {series.description!r}, "
                                    f"{series.files[0].name}) matches no sequence rule in {COHORT_YAML} 'series'")  # fmt: skip
                elif seq in images:
                    problems.append(f"ambiguous {seq} series: {images[seq].folder} and {series.folder} both match")
                else:
                    images[seq] = series
            labels = None
            if labels_glob:
                labels, problem = _one(folder, labels_glob, "labels")
                if problem and "ambiguous" in problem:
                    problems.append(problem)
            patients.append(PatientFiles(folder.name, images, labels, scheme, (*self.missing(images, folder), *problems)))
        return CohortScan(self.name, patients)
