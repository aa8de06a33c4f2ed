"""`cohort.yaml`: the optional file that describes a cohort folder, read by every layout.

Keys any layout honours (all optional)::

    expected_sequences: [t1c, flair]   # a patient missing one of these is excluded; default: none,
                                       # a patient is valid with the sequences it has (at least one)
    label_scheme: brats2013            # a key of contract.LABEL_SCHEMES (overrides the layout's own)
    label_map: {1: edema, 2: 1, 4: enhancing}   # any other coding: source value -> canonical label
                                                # (0-3 or necrotic_core/edema/enhancing); not with label_scheme
    spacing_mm: [1.0, 1.0, 3.0]        # voxel size of 2D slice stacks (Kaggle LGG), X Y Z in mm
    subject_ids: {...}                 # see validate.declared_subject_ids
    clinical: {...}                    # see clinical.py

The `sequences`/`labels`/`patients` globs are the mapped layout's (mapped.py); `layout: dicom`
with `series` rules is the DICOM layout's (dicom.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from gbm_assets.lib.contract import (
    LABEL_SCHEMES,
    SEQUENCES,
    canonical_sequence,
    label_map_scheme,
)

COHORT_YAML = "cohort.yaml"


class LayoutError(ValueError):
    """The cohort folder cannot be read by any layout (empty, unknown arrangement)."""


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


def expected_sequences(spec: dict[str, Any], where: Path) -> tuple[str, ...]:
    """`expected_sequences` as canonical names in `SEQUENCES` order; () when not declared.

    Raises:
        LayoutError: not a list of known sequence names (the message names `where`).
    """
    declared = spec.get("expected_sequences") or []
    if isinstance(declared, str):
        declared = [declared]
    if not isinstance(declared, list):
        raise LayoutError(f"{where}: expected_sequences must be a list of sequence names")
    try:
        named = {canonical_sequence(str(s)) for s in declared}
    except KeyError as exc:
        raise LayoutError(f"{where}: expected_sequences: {exc.args[0]}") from None
    return tuple(s for s in SEQUENCES if s in named)


def label_scheme_of(spec: dict[str, Any], default: str, where: Path) -> str:
    """The label scheme a cohort declares (`label_scheme` or `label_map`), else `default`.

    Raises:
        LayoutError: an unknown scheme, a malformed map, or both keys at once (names `where`).
    """
    if spec.get("label_map") is not None:
        if spec.get("label_scheme") is not None:
            raise LayoutError(f"{where}: give label_scheme or label_map, not both")
        if not isinstance(spec["label_map"], dict) or not spec["label_map"]:
            raise LayoutError(f"{where}: label_map must map source label values to canonical labels")
        try:
            return label_map_scheme(spec["label_map"])
        except ValueError as exc:
            raise LayoutError(f"{where}: {exc}") from None
    scheme = str(spec.get("label_scheme") or default)
    if scheme not in LABEL_SCHEMES:
        raise LayoutError(f"{where}: unknown label_scheme {scheme!r}; known: {', '.join(LABEL_SCHEMES)} (or give a label_map)")
    return scheme


def spacing_of(spec: dict[str, Any], default: tuple[float, float, float], where: Path) -> tuple[float, float, float]:
    """`spacing_mm` (three positive numbers, X Y Z) or `default`.

    Raises:
        LayoutError: not three positive numbers (names `where`).
    """
    value = spec.get("spacing_mm")
    if value is None:
        return default
    try:
        spacing = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        spacing = ()
    if len(spacing) != 3 or not all(v > 0 for v in spacing):
        raise LayoutError(f"{where}: spacing_mm must be three positive numbers (X Y Z, mm), got {value!r}")
    return spacing  # type: ignore[return-value]
