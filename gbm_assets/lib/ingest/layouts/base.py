"""What a layout reader returns, and the registry that picks a reader for a cohort folder.

A layout reader knows one way of arranging files on disk. It never decodes a volume (DICOM
headers and 2D slices excepted where a layout says so): it only finds, for each patient, which
source holds which sequence and which source (if any) holds the tumour mask, plus the mask's
label scheme. A source is a file (NIfTI, or NRRD/MHA that SimpleITK reads), a `DicomSeries` or a
`SliceStack`; validation reads and checks them, converting non-NIfTI sources to NIfTI.

A patient is valid with the sequences it has; a layout reports a missing sequence only when the
cohort expects it (`expected_sequences` in cohort.yaml, passed to the reader).

Adding a layout is one new module with a `LayoutReader` subclass decorated `@register`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Union

from gbm_assets.lib.ingest.layouts.spec import (  # noqa: F401  (LayoutError is re-exported)
    COHORT_YAML,
    LayoutError,
    expected_sequences,
    label_scheme_of,
    read_cohort_yaml,
)


@dataclass(frozen=True)
class SliceStack:
    """A 3D volume stored as 2D image files (one slice each, in Z order).

    Attributes:
        files: the slice files, inferior to superior.
        channel: which channel of a multi-channel slice (RGB .tif) holds this volume; None: a one-channel image.
        spacing_mm: the stated (X, Y, Z) voxel size.
    """

    files: tuple[Path, ...]
    channel: int | None
    spacing_mm: tuple[float, float, float]

    def __str__(self) -> str:
        where = self.files[0].parent if self.files else "?"
        channel = "" if self.channel is None else f" channel {self.channel}"
        return f"{where}/{self.files[0].name if self.files else ''}..{self.files[-1].name if self.files else ''} ({len(self.files)} slices{channel})"


@dataclass(frozen=True)
class DicomSeries:
    """One DICOM series: its folder, series instance UID, description and files (in GDCM's order)."""

    folder: Path
    series_uid: str
    description: str
    files: tuple[Path, ...]

    def __str__(self) -> str:
        return f"{self.folder} (DICOM series {self.description!r}, {len(self.files)} files)"


Source = Union[Path, SliceStack, DicomSeries]
"""Where one volume comes from."""


def source_files(source: Source) -> tuple[Path, ...]:
    """Every file a source reads."""
    return tuple(source.files) if isinstance(source, (SliceStack, DicomSeries)) else (Path(source),)


@dataclass(frozen=True)
class PatientFiles:
    """The files of one patient as a layout found them.

    Attributes:
        patient_id: the patient's id within the cohort.
        images: canonical sequence -> source, for the sequences the patient has. An expected
            sequence whose file is missing is absent here and named in `problems`.
        labels: the tumour mask source, or None when the cohort has no masks for this patient.
        label_scheme: the scheme of `labels` (a key of `contract.LABEL_SCHEMES`).
        problems: what the layout already knows is wrong (missing files, ambiguous matches).
        subject_id: the subject the layout knows this patient belongs to (a longitudinal layout's
            subject folder); None: unknown (validation derives one from the images).
    """

    patient_id: str
    images: dict[str, Source]
    labels: Source | None
    label_scheme: str
    problems: tuple[str, ...] = ()
    subject_id: str | None = None


@dataclass(frozen=True)
class CohortScan:
    """Every patient a layout found in one cohort folder, plus cohort-level problems."""

    layout: str
    patients: list[PatientFiles]
    problems: list[str] = field(default_factory=list)


class LayoutReader(ABC):
    """One way of arranging a cohort's files. Subclasses set `name` and implement both methods."""

    name: str = ""

    def __init__(self, required_sequences: tuple[str, ...] = ()) -> None:
        self.required_sequences = tuple(required_sequences)
        """The sequences every patient must have (cohort.yaml's `expected_sequences`; default none)."""

    @classmethod
    @abstractmethod
    def detect(cls, cohort_dir: Path) -> bool:
        """True when `cohort_dir` looks like this layout. Must be cheap (no volume reads)."""

    @abstractmethod
    def scan(self, cohort_dir: Path) -> CohortScan:
        """List the cohort's patients and their files."""

    def missing(self, found: dict[str, Source], where: Path | None = None) -> tuple[str, ...]:
        """Problems for required sequences absent from `found`, and for a patient with no image at all."""
        place = f" in {where}" if where else ""
        if not found:
            return (f"no image files{place}",)
        return tuple(f"missing sequence file: {s}{place}" for s in self.required_sequences if s not in found)


_REGISTRY: list[type[LayoutReader]] = []


def register(reader: type[LayoutReader]) -> type[LayoutReader]:
    """Class decorator: make a layout reader available to `reader_for`. Order is priority."""
    if not reader.name:
        raise TypeError(f"{reader.__name__} must set a layout name")
    _REGISTRY.append(reader)
    return reader


def registered_layouts() -> list[str]:
    return [r.name for r in _REGISTRY]


def reader_for(cohort_dir: Path) -> LayoutReader:
    """The first registered layout that recognises `cohort_dir`, expecting cohort.yaml's `expected_sequences`.

    Raises:
        LayoutError: the folder is missing, empty, or matches no layout.
    """
    if not cohort_dir.is_dir():
        raise LayoutError(f"cohort folder {cohort_dir} does not exist")
    if not any(p for p in cohort_dir.iterdir() if not p.name.startswith(".")):
        raise LayoutError(f"cohort folder {cohort_dir} is empty")

    expected = expected_sequences(read_cohort_yaml(cohort_dir), cohort_dir / COHORT_YAML)
    for reader in _REGISTRY:
        if reader.detect(cohort_dir):
            return reader(expected)
    raise LayoutError(
        f"cohort folder {cohort_dir} matches no known layout ({', '.join(registered_layouts())}); "
        "add a cohort.yaml describing its files"
    )


def scan_cohort(cohort_dir: Path) -> CohortScan:
    """Scan `cohort_dir` with the layout that recognises it; cohort.yaml's `label_scheme` or
    `label_map` (when given) replaces the layout's own scheme for every patient.

    Raises:
        LayoutError: see `reader_for`; a malformed cohort.yaml key (names the file).
    """

    spec = read_cohort_yaml(cohort_dir)
    scan = reader_for(cohort_dir).scan(cohort_dir)
    if spec.get("label_scheme") is None and spec.get("label_map") is None:
        return scan
    scheme = label_scheme_of(spec, "canonical", cohort_dir / COHORT_YAML)
    return replace(scan, patients=[replace(p, label_scheme=scheme) for p in scan.patients])
