"""The gbm_assets data contract: sequences, labels, regions and label converters.

Written once, used everywhere. Every mask that enters the platform is converted to the
canonical label scheme here, and every later stage speaks only this scheme.

Canonical labels (uint8):
    0 background
    1 necrotic / non-enhancing tumour core
    2 peritumoural edema
    3 enhancing tumour

Regions are unions of canonical labels:
    whole_tumor = {1, 2, 3}, tumor_core = {1, 3}, enhancing = {3}, edema = {2}, necrosis = {1}.

A source whose masks carry less detail (a binary whole-tumour mask, HD-GLIO's two labels)
is converted to the nearest canonical labels; `LabelScheme.regions` says which regions
such a mask can honestly answer for.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

import numpy as np

SEQUENCES: tuple[str, ...] = ("t1", "t1c", "t2", "flair")
"""Canonical MRI sequences, in the platform's channel order."""

SEQUENCE_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "t1": "t1",
        "t1w": "t1",
        "t1c": "t1c",
        "t1ce": "t1c",
        "t1gd": "t1c",
        "t1_gd": "t1c",
        "ct1": "t1c",
        "t1post": "t1c",
        "t2": "t2",
        "t2w": "t2",
        "flair": "flair",
        "t2flair": "flair",
        "t2_flair": "flair",
    }
)

BACKGROUND, NECROTIC_CORE, EDEMA, ENHANCING = 0, 1, 2, 3
LABEL_NAMES: Mapping[int, str] = MappingProxyType(
    {BACKGROUND: "background", NECROTIC_CORE: "necrotic_core", EDEMA: "edema", ENHANCING: "enhancing"}
)

REGIONS: Mapping[str, frozenset[int]] = MappingProxyType(
    {
        "whole_tumor": frozenset({NECROTIC_CORE, EDEMA, ENHANCING}),
        "tumor_core": frozenset({NECROTIC_CORE, ENHANCING}),
        "enhancing": frozenset({ENHANCING}),
        "edema": frozenset({EDEMA}),
        "necrosis": frozenset({NECROTIC_CORE}),
    }
)

MODEL_INPUTS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {"t1": ("t1",), "t2": ("t2",), "flair": ("flair",), "t1c": ("t1c",), "stack": ("t1", "t2", "flair"),
     "all": ("t1", "t1c", "t2", "flair")}
)
"""2D model input name -> its channels (sequences, in order); `stack` is the study's 3-channel T1/T2/FLAIR input,
`all` the four sequences (beyond the study: enhancement is only visible with contrast, T1c)."""

ROI_SOURCES: tuple[str, ...] = ("ground_truth", "predicted")
"""Whose masks an ROI comes from: the cohort's own labels, or `lesion_masks` (the champion U-Net's)."""

SUBTYPES: tuple[str, ...] = ("Classical", "Mesenchymal", "Proneural", "Neural")
"""Verhaak molecular subtypes, the classifier's classes."""


SUBTYPE_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        **{s.lower(): s for s in SUBTYPES},
        "cl": "Classical", "cla": "Classical", "class": "Classical",
        "mes": "Mesenchymal", "mesen": "Mesenchymal", "mesench": "Mesenchymal",
        "pn": "Proneural", "pro": "Proneural", "pron": "Proneural",
        "ne": "Neural", "neu": "Neural", "neur": "Neural",
    }
)  # fmt: skip
"""Lower-case subtype name or abbreviation -> its `SUBTYPES` spelling."""

MISSING_MARKERS: frozenset[str] = frozenset({"", "na", "n/a", "nan", "none", "null", "[not available]", "[not applicable]", "-"})
"""Lower-case cell texts that mean "no value" in clinical tables."""


def normalise_subtype(label: object) -> str | None:
    """Map a subtype name or alias (case- and space-insensitive) to its `SUBTYPES` spelling.

    Returns None for a missing value (None, NaN, pd.NA, or a text in `MISSING_MARKERS`).

    Raises:
        ValueError: any other label; the message names it and the known subtypes.
    """
    if label is None or (isinstance(label, float) and label != label) or str(label) == "<NA>":
        return None
    key = " ".join(str(label).split()).lower()
    if key in MISSING_MARKERS:
        return None
    if key in SUBTYPE_ALIASES:
        return SUBTYPE_ALIASES[key]
    raise ValueError(f"unknown subtype {label!r}; expected one of {', '.join(SUBTYPES)} (or an abbreviation)")


class LabelError(ValueError):
    """A mask holds label values its scheme does not define."""


def canonical_sequence(name: str) -> str:
    """Map a sequence name or alias (case-insensitive) to its canonical name.

    Raises:
        KeyError: the name is not a known sequence or alias.
    """
    key = name.strip().lower().replace("-", "_")
    if key in SEQUENCE_ALIASES:
        return SEQUENCE_ALIASES[key]
    key = key.replace("_", "")
    if key in SEQUENCE_ALIASES:
        return SEQUENCE_ALIASES[key]
    raise KeyError(f"unknown sequence {name!r}; known: {', '.join(SEQUENCES)} (and aliases)")


@dataclass(frozen=True)
class LabelScheme:
    """How one source numbers its labels, and how that maps to canonical labels.

    Attributes:
        name: the scheme's name as written in tables and `cohort.yaml`.
        mapping: source value -> canonical label. Background (0) must map to 0.
        regions: the canonical regions this scheme can represent faithfully.
        description: one line for the README and error messages.
    """

    name: str
    mapping: Mapping[int, int]
    regions: tuple[str, ...]
    description: str

    def to_canonical(self, mask: np.ndarray, source: str = "<array>") -> np.ndarray:
        """Convert a source-scheme mask to canonical labels (uint8, same shape).

        Args:
            mask: integer or float array of label values, any shape.
            source: the file the mask came from, named in errors.

        Raises:
            LabelError: the mask holds a value this scheme does not define (or a
                non-integer value); the message names `source` and the values found.
        """
        values = np.unique(mask)
        if values.size and not np.all(np.isfinite(values)):
            raise LabelError(f"{source}: non-finite label values found; scheme {self.name!r}")
        int_values = values.astype(np.int64)
        unknown = sorted({float(v) for v, i in zip(values, int_values) if v != i or int(i) not in self.mapping})
        if unknown:
            shown = ", ".join(f"{v:g}" for v in unknown[:10])
            raise LabelError(
                f"{source}: unexpected label values [{shown}] for label scheme {self.name!r} "
                f"(expects {sorted(self.mapping)}; found {[f'{v:g}' for v in values[:20].tolist()]})"
            )
        lut = np.zeros(max(self.mapping) + 1, dtype=np.uint8)
        for src, dst in self.mapping.items():
            lut[src] = dst
        return lut[np.asarray(mask).astype(np.int64)]


LABEL_SCHEMES: Mapping[str, LabelScheme] = MappingProxyType(
    {
        s.name: s
        for s in (
            LabelScheme(
                "canonical",
                {0: 0, 1: 1, 2: 2, 3: 3},
                tuple(REGIONS),
                "gbm_assets' own: 1 necrotic/non-enhancing core, 2 edema, 3 enhancing",
            ),
            LabelScheme(
                "brats",
                {0: 0, 1: NECROTIC_CORE, 2: EDEMA, 4: ENHANCING},
                tuple(REGIONS),
                "BraTS 2017-2021: 1 necrotic/non-enhancing core, 2 edema, 4 enhancing",
            ),
            LabelScheme(
                "brats2023",
                {0: 0, 1: NECROTIC_CORE, 2: EDEMA, 3: ENHANCING},
                tuple(REGIONS),
                "BraTS 2023-2024 (GLI, MEN, MET, PED, SSA): 1 NETC non-enhancing core, 2 SNFH edema, 3 ET enhancing",
            ),
            LabelScheme(
                "brats2013",
                {0: 0, 1: NECROTIC_CORE, 2: EDEMA, 3: NECROTIC_CORE, 4: ENHANCING},
                tuple(REGIONS),
                "BraTS 2013-2016: 1 necrosis, 2 edema, 3 non-enhancing tumour, 4 enhancing (3 joins the core)",
            ),
            LabelScheme(
                "msd",
                {0: 0, 1: EDEMA, 2: NECROTIC_CORE, 3: ENHANCING},
                tuple(REGIONS),
                "MSD Task01: 1 edema, 2 non-enhancing tumour, 3 enhancing tumour",
            ),
            LabelScheme(
                "hd_glio",
                # HD-GLIO's "non-enhancing T2/FLAIR abnormality" covers edema and non-enhancing
                # tumour alike; edema is its nearest canonical label.
                {0: 0, 1: EDEMA, 2: ENHANCING},
                ("whole_tumor", "enhancing"),
                "HD-GLIO: 1 non-enhancing T2/FLAIR abnormality, 2 contrast-enhancing tumour",
            ),
            LabelScheme(
                "binary",
                {0: 0, 1: EDEMA, 255: EDEMA},
                ("whole_tumor",),
                "binary whole-tumour mask, 0/1 or 0/255 (only whole_tumor is meaningful)",
            ),
        )
    }
)


LABEL_MAP_PREFIX = "map:"
"""A scheme name `map:<src>=<dst>,...` is an explicit label map (cohort.yaml's `label_map`)."""


def label_map_scheme(mapping: Mapping[object, object]) -> str:
    """The scheme name of an explicit label map: source value -> canonical label (0-3 or a `LABEL_NAMES` name).

    Background 0 -> 0 is added when absent. The name (`map:0=0,1=2,4=3`) travels in tables like
    any scheme name, and `label_scheme` turns it back into a `LabelScheme`.

    Raises:
        ValueError: a key that is not a non-negative integer, or a value that is not a canonical label.
    """
    by_name = {v: k for k, v in LABEL_NAMES.items()}
    pairs: dict[int, int] = {0: 0}
    for src, dst in mapping.items():
        try:
            key = int(str(src))
        except ValueError:
            raise ValueError(f"label_map key {src!r} is not an integer label value") from None
        target = by_name.get(str(dst).strip().lower(), dst)
        if key < 0 or isinstance(target, bool) or not isinstance(target, int) or target not in LABEL_NAMES:
            raise ValueError(f"label_map {src!r}: {dst!r} is not a canonical label "
                             f"(0-3 or one of {', '.join(LABEL_NAMES.values())})")  # fmt: skip
        pairs[key] = target
    return LABEL_MAP_PREFIX + ",".join(f"{k}={v}" for k, v in sorted(pairs.items()))


def _parse_map(name: str) -> LabelScheme:
    try:
        mapping = {int(k): int(v) for k, v in (p.split("=") for p in name[len(LABEL_MAP_PREFIX):].split(","))}
    except ValueError:
        raise KeyError(f"malformed label map scheme {name!r}; expected 'map:<value>=<label>,...'") from None
    if any(v not in LABEL_NAMES for v in mapping.values()) or any(k < 0 for k in mapping):
        raise KeyError(f"label map scheme {name!r} maps to a value outside the canonical labels 0-3")
    present = set(mapping.values())
    regions = tuple(r for r, labels in REGIONS.items() if labels & present)
    return LabelScheme(name, MappingProxyType(mapping), regions, f"explicit label map {name[len(LABEL_MAP_PREFIX):]}")


def label_scheme(name: str) -> LabelScheme:
    """Look up a label scheme by name (a key of `LABEL_SCHEMES`, or an explicit `map:...` name).

    Raises:
        KeyError: unknown scheme; the message lists the known ones.
    """
    if name.startswith(LABEL_MAP_PREFIX):
        return _parse_map(name)
    try:
        return LABEL_SCHEMES[name]
    except KeyError:
        raise KeyError(f"unknown label scheme {name!r}; known: {', '.join(LABEL_SCHEMES)} (or a label_map)") from None


def to_canonical(mask: np.ndarray, scheme: str, source: str = "<array>") -> np.ndarray:
    """Convert `mask` from the named scheme to canonical labels. See `LabelScheme.to_canonical`."""
    return label_scheme(scheme).to_canonical(mask, source)


def region_mask(labels: np.ndarray, region: str) -> np.ndarray:
    """Boolean mask of a named region in a canonical label array (same shape).

    Raises:
        KeyError: unknown region.
    """
    if region not in REGIONS:
        raise KeyError(f"unknown region {region!r}; known: {', '.join(REGIONS)}")
    return np.isin(labels, list(REGIONS[region]))


def label_counts(labels: np.ndarray) -> dict[int, int]:
    """Voxel count per canonical label (0..3), zeros included."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64).ravel(), minlength=4)
    return {k: int(counts[k]) for k in LABEL_NAMES}
