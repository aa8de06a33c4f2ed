"""What a layout reader returns, and the registry that picks a reader for a cohort folder.

A layout reader knows one way of arranging files on disk. It never opens a volume: it only
finds, for each patient, which file holds which sequence and which file (if any) holds the
tumour mask, plus the mask's label scheme. Validation of the files is done elsewhere.

Adding a layout is one new module with a `LayoutReader` subclass decorated `@register`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

from gbm_assets.lib.contract import SEQUENCES


@dataclass(frozen=True)
class PatientFiles:
    """The files of one patient as a layout found them.

    Attributes:
        patient_id: the patient's id within the cohort.
        images: canonical sequence -> file. A required sequence whose file is missing is
            absent here and named in `problems`.
        labels: the tumour mask file, or None when the cohort has no masks for this patient.
        label_scheme: the scheme of `labels` (a key of `contract.LABEL_SCHEMES`).
        problems: what the layout already knows is wrong (missing files, ambiguous matches).
    """

    patient_id: str
    images: dict[str, Path]
    labels: Path | None
    label_scheme: str
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class CohortScan:
    """Every patient a layout found in one cohort folder, plus cohort-level problems."""

    layout: str
    patients: list[PatientFiles]
    problems: list[str] = field(default_factory=list)


class LayoutError(ValueError):
    """The cohort folder cannot be read by any layout (empty, unknown arrangement)."""


class LayoutReader(ABC):
    """One way of arranging a cohort's files. Subclasses set `name` and implement both methods."""

    name: str = ""
    required_sequences: tuple[str, ...] = SEQUENCES

    @classmethod
    @abstractmethod
    def detect(cls, cohort_dir: Path) -> bool:
        """True when `cohort_dir` looks like this layout. Must be cheap (no volume reads)."""

    @abstractmethod
    def scan(self, cohort_dir: Path) -> CohortScan:
        """List the cohort's patients and their files."""

    def missing(self, found: dict[str, Path]) -> tuple[str, ...]:
        """Problems for required sequences absent from `found`."""
        return tuple(f"missing sequence file: {s}" for s in self.required_sequences if s not in found)


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
    """The first registered layout that recognises `cohort_dir`.

    Raises:
        LayoutError: the folder is missing, empty, or matches no layout.
    """
    if not cohort_dir.is_dir():
        raise LayoutError(f"cohort folder {cohort_dir} does not exist")
    if not any(p for p in cohort_dir.iterdir() if not p.name.startswith(".")):
        raise LayoutError(f"cohort folder {cohort_dir} is empty")
    for reader in _REGISTRY:
        if reader.detect(cohort_dir):
            return reader()
    raise LayoutError(
        f"cohort folder {cohort_dir} matches no known layout ({', '.join(registered_layouts())}); "
        "add a cohort.yaml describing its files"
    )
