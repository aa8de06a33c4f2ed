"""How each sequence's intensities are scaled, and the record of it that travels with volumes and models.

Two scalings, chosen per sequence by `PreprocessConfig.percentile_scaled` (by default FLAIR and T2 percentile-scaled,
T1 and T1c z-scored; an empty setting z-scores every sequence, as the study did):
- `zscore`: clip to percentiles inside the brain, then mean 0, SD 1;
- `percentile`: clip likewise, then the brain's median to 0 and its 99th percentile to 2.5. A
  lesion's brightness is then read against the brain's brightest voxels rather than its spread,
  which a large edema inflates less than z-scoring does (scanners and cohorts differ in how bright
  FLAIR and T2 edema are relative to normal brain; see the README's transfer section). On T1c the 99th
  percentile is the enhancing rim itself, so T1 and T1c stay z-scored by default.

A U-Net learns the scale it was trained on: fed volumes scaled the other way it fails without any
error. So each preprocessed patient's folder holds `intensity.json` (sequence -> scaling), each
checkpoint the scaling of its training patients, and `intensity_mismatches` compares the two.
Folders and checkpoints written before the record existed are z-scored throughout.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from gbm_assets.lib.contract import SEQUENCES

ZSCORE, PERCENTILE = "zscore", "percentile"
INTENSITY_SCALINGS: tuple[str, ...] = (ZSCORE, PERCENTILE)
PERCENTILE_POINTS: tuple[float, float] = (50.0, 99.0)
"""The brain percentiles mapped to 0 and to `PERCENTILE_TOP` by the percentile scaling."""
PERCENTILE_TOP = 2.5
"""Where the brain's 99th percentile lands: about where a z-scored normal brain's does, so a healthy
brain looks alike under both scalings and only a lesion-heavy one differs."""
INTENSITY_FILE = "intensity.json"
DEFAULT_PERCENTILE_SCALED: tuple[str, ...] = ("t2", "flair")
"""The sequences percentile-scaled by default (the platform's and the demo's models are trained so)."""


def _clipped_brain(image: np.ndarray, brain: np.ndarray, clip_percentiles) -> np.ndarray:
    """The brain's voxels (float64), clipped to their percentiles; empty for an empty brain."""
    values = image[brain].astype(np.float64)
    return np.clip(values, *np.percentile(values, clip_percentiles)) if values.size else values


def normalize(image: np.ndarray, brain: np.ndarray, clip_percentiles=(0.5, 99.5)) -> np.ndarray:
    """Clip to percentiles inside `brain`, z-score inside `brain`, 0 outside (float32, same shape).

    An empty brain gives all zeros; a constant brain gives zeros inside.
    """
    out = np.zeros(image.shape, np.float32)
    values = _clipped_brain(image, brain, clip_percentiles)
    if values.size:
        std = values.std()
        out[brain] = (values - values.mean()) / std if std > 0 else 0.0
    return out


def normalize_percentile(image: np.ndarray, brain: np.ndarray, clip_percentiles=(0.5, 99.5)) -> np.ndarray:
    """Clip to percentiles inside `brain`, then median -> 0 and 99th percentile -> `PERCENTILE_TOP`
    inside `brain`, 0 outside (float32, same shape). An empty or flat brain gives zeros."""
    out = np.zeros(image.shape, np.float32)
    values = _clipped_brain(image, brain, clip_percentiles)
    if values.size:
        median, top = np.percentile(values, PERCENTILE_POINTS)
        out[brain] = PERCENTILE_TOP * (values - median) / (top - median) if top > median else 0.0
    return out


SCALERS = {ZSCORE: normalize, PERCENTILE: normalize_percentile}
"""scaling -> the function that applies it (image, brain, clip_percentiles)."""


def scalings(sequences: Iterable[str], percentile_scaled: Iterable[str]) -> dict[str, str]:
    """sequence -> its scaling, for `sequences` in order."""
    chosen = set(percentile_scaled)
    return {s: PERCENTILE if s in chosen else ZSCORE for s in sequences}


def intensity_text(record: Mapping[str, str]) -> str:
    """The text of a folder's `intensity.json` (the caller writes it atomically)."""
    return json.dumps(dict(record), indent=1, sort_keys=True)


def read_intensity(folder: str | Path) -> dict[str, str]:
    """sequence -> scaling of a preprocessed patient's folder; z-scored for every sequence file when the
    folder has no `intensity.json` (written before the setting existed).

    Raises:
        ValueError: a record naming an unknown scaling (the message names the file).
    """
    folder = Path(folder)
    path = folder / INTENSITY_FILE
    if not path.is_file():
        return {s: ZSCORE for s in SEQUENCES if (folder / f"{s}.nii.gz").exists()}
    record = json.loads(path.read_text())
    bad = {s: v for s, v in record.items() if v not in INTENSITY_SCALINGS}
    if bad:
        raise ValueError(f"{path}: unknown intensity scaling {bad}; expected one of {', '.join(INTENSITY_SCALINGS)}")
    return record


def describe(record: Mapping[str, str]) -> str:
    """`flair=percentile, t1=zscore` (sorted): the form runs, tags and messages show."""
    return ", ".join(f"{s}={v}" for s, v in sorted(record.items()))


def common_intensity(records: Mapping[str, Mapping[str, str]], sequences: Sequence[str]) -> dict[str, str]:
    """The one scaling of `sequences` shared by every record (name -> record, e.g. "cohort a, patient p").

    Raises:
        ValueError: records that disagree, naming one patient of each scaling.
    """
    seen: dict[tuple, str] = {}
    for name, record in records.items():
        seen.setdefault(tuple(record.get(s, ZSCORE) for s in sequences), name)
    if len(seen) > 1:
        kinds = "; ".join(f"{name}: {describe(dict(zip(sequences, key)))}" for key, name in seen.items())
        raise ValueError(f"patients preprocessed with different intensity scalings of {', '.join(sequences)} ({kinds}); "
                         f"re-materialize preprocessed_volumes with one percentile_scaled setting for every cohort")  # fmt: skip
    key = next(iter(seen), tuple(ZSCORE for _ in sequences))
    return dict(zip(sequences, key))


def intensity_mismatches(model: Mapping[str, str], patients: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """patient -> what differs (`flair: zscore, the model percentile`) for each patient whose scaling of
    the model's sequences is not the model's; empty when every patient matches."""
    found = {}
    for name, record in patients.items():
        diff = [f"{s}: {record.get(s, 'missing')}, the model {v}" for s, v in model.items() if record.get(s) != v]
        if diff:
            found[name] = "; ".join(diff)
    return found


def intensity_problem(model: Mapping[str, str], folders: Mapping[str, str | Path], shown: int = 3) -> str | None:
    """Why preprocessed patients (name -> folder) cannot be fed to a model trained on `model`'s scaling,
    naming the first `shown` patients and their folders; None when they all match."""
    records = {name: read_intensity(folder) for name, folder in folders.items()}
    found = intensity_mismatches(model, records)
    if not found:
        return None
    listed = "; ".join(f"{name} ({folders[name]}): {what}" for name, what in list(found.items())[:shown])
    wanted = [s for s, v in model.items() if v == PERCENTILE]
    return (f"{len(found)} of {len(folders)} patients were preprocessed with another intensity scaling than the model was "
            f"trained on ({describe(model)}): {listed}{' ...' if len(found) > shown else ''}; re-materialize "
            f"preprocessed_volumes with percentile_scaled: [{', '.join(wanted)}]")  # fmt: skip
