"""One per-patient runner for every stage: try each patient, record the problem, carry on; the
fan-out of that runner on the compute resource; and content-keyed reuse of unchanged patients.

A patient whose step raises becomes a failure row naming the cohort, the patient and the file
involved; the error is logged, and the other patients proceed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from gbm_assets.lib.store.keyed import KeyedCompute, ResultStore
from gbm_assets.lib.store.paths import DataRoot


@dataclass
class PatientOutcome:
    """What `for_each_patient` returns: the results of patients that worked and the failures."""

    results: list[Any] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)
    """One {"patient_id", "file", "problem"} per patient that raised."""


def for_each_patient(
    context,
    cohort: str,
    items: Iterable[Any],
    step: Callable[[Any], Any],
    *,
    what: str,
    patient_of: Callable[[Any], str] = lambda item: item.patient_id,
    file_of: Callable[[Any], str] = lambda item: "",
) -> PatientOutcome:
    """Run `step(item)` for each item (one patient each); collect results, record failures.

    Args:
        context: a Dagster execution context (for the log).
        cohort: the cohort partition, named in every message.
        items: one per patient (rows of an upstream table).
        step: the per-patient work; its return value is appended to `results`.
        what: the stage's verb for messages ("preprocessing", "segmentation", ...).
        patient_of: the patient id of an item.
        file_of: the file (or folder) an item's problem is most likely about, named in the message.
    """
    outcome = PatientOutcome()
    for item in items:
        try:
            outcome.results.append(step(item))
        except Exception as exc:  # one patient's failure is recorded; the others proceed
            patient, file = patient_of(item), file_of(item)
            problem = f"{what} failed: {type(exc).__name__}: {exc}"
            where = f" ({file})" if file else ""
            context.log.error(f"cohort {cohort}, patient {patient}{where}: {problem}")
            outcome.failures.append({"patient_id": patient, "file": str(file), "problem": problem})
    return outcome


def map_each_patient(
    context,
    cohort: str,
    compute,
    fn: Callable[[Any], Any],
    items: list[Any],
    *,
    what: str,
    patient_of: Callable[[Any], str] = lambda item: item.patient_id,
    file_of: Callable[[Any], str] = lambda item: "",
    initializer: Callable[[], None] | None = None,
) -> PatientOutcome:
    """`for_each_patient` with the work fanned out on a `Compute` (`compute.map_patients`): results in
    the order of `items`, each failure (an exception, a lost worker) recorded and logged the same way.
    `fn`, `items` and `initializer` must be picklable (module-level functions, plain data)."""
    done = {id(item): result for item, result in compute.map_patients(fn, items, initializer=initializer)}

    def step(item):  # the backend's result, or its exception re-raised for the record
        result = done[id(item)]
        if isinstance(result, BaseException):
            raise result
        return result

    return for_each_patient(context, cohort, items, step, what=what, patient_of=patient_of, file_of=file_of)


def keyed(compute, root: DataRoot, stage: str, cohort: str, key_of, outputs_of=None) -> KeyedCompute:
    """`compute` answering unchanged patients from their content-keyed records under
    `results/<stage>/<cohort>/` (see `lib/store/keyed.py`); `.reused` / `.computed` count them."""
    return KeyedCompute(compute, ResultStore(root.results_dir(stage, cohort), root.root), key_of, outputs_of)
