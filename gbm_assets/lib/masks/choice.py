"""Which champion U-Net segments a cohort: the one with the best validation Dice among those whose
input sequences every valid patient has."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from gbm_assets.lib.contract import MODEL_INPUTS, SEQUENCES

AUTO = ("", "auto")
"""`model_input` values that ask for the automatic choice."""


class NoMatchingChampion(ValueError):
    """No champion's input sequences are available for every valid patient of the cohort."""


def preprocessed_sequences(folder: str | Path) -> frozenset[str]:
    """The sequences preprocessing wrote for one patient (`<seq>.nii.gz` in its folder)."""
    return frozenset(s for s in SEQUENCES if (Path(folder) / f"{s}.nii.gz").exists())


def common_sequences(per_patient: Iterable[Iterable[str]]) -> tuple[str, ...]:
    """Sequences every patient has, in `SEQUENCES` order (() for no patients)."""
    sets = [set(s) for s in per_patient]
    common = set.intersection(*sets) if sets else set()
    return tuple(s for s in SEQUENCES if s in common)


def choose_model_input(cohort: str, available: Iterable[str], champions: Mapping[str, float | None]) -> str:
    """The model input to segment a cohort with.

    Args:
        available: the sequences every valid patient of the cohort has.
        champions: model input (a `MODEL_INPUTS` key) -> its champion's validation Dice; only
            inputs that have a champion are listed (Dice None: recorded without a value, ranked last).

    Returns:
        the eligible input (all its sequences available) with the highest Dice; ties go to the
        earlier input in `MODEL_INPUTS`.

    Raises:
        NoMatchingChampion: none is eligible; the message names the cohort, its sequences and the champions.
    """
    have = set(available)
    order = list(MODEL_INPUTS)
    eligible = [i for i in champions if i in MODEL_INPUTS and set(MODEL_INPUTS[i]) <= have]
    if not eligible:
        listed = ", ".join(f"{i} ({'+'.join(MODEL_INPUTS[i])})" for i in order if i in champions) or "none"
        raise NoMatchingChampion(
            f"cohort {cohort!r}: its valid patients all have the sequences [{', '.join(s for s in SEQUENCES if s in have)}], "
            f"which match no champion U-Net's inputs (champions: {listed}); train a model on those sequences "
            "or set lesion_masks' model_input"
        )
    score = lambda i: (champions[i] if champions[i] is not None else float("-inf"), -order.index(i))  # noqa: E731
    return max(eligible, key=score)
