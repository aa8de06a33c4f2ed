"""The cohort inbox sensor.

`new_cohort_sensor` watches `<data root>/cohorts/` (the rule is in `gbm_assets.lib.ingest.inbox`:
a folder counts once it holds a `READY` file, written last). Each tick it registers new complete
cohorts as `cohorts` partitions and requests one `score_cohort_job` run per new or changed
cohort, with run key `<cohort>:<fingerprint>`. The cursor and the run key together make each
content version run once; a cohort whose run is still queued or going is deferred to a later
tick instead of being requested again. Invalid folders are logged once per fingerprint. A
cohort folder removed after registration keeps its partition (its lineage stays); a later run
of it fails in `raw_cohort` naming the missing folder. On by default.
"""

from __future__ import annotations

import dagster as dg

from gbm_assets.defs.jobs import SCORE_COHORT_JOB
from gbm_assets.defs.partitions import (
    COHORTS,
    cohorts_partitions,
    partitions_in_progress,
)
from gbm_assets.defs.resources import DataRootResource
from gbm_assets.lib.ingest.inbox import READY, InboxCursor, plan_inbox
from gbm_assets.lib.store.paths import CohortNameError, validate_cohort_name

FINGERPRINT_TAG = "gbm/cohort_fingerprint"
PROBLEM_TAG = "gbm/inbox_problem"

def _valid_name(name: str) -> bool:
    try:
        validate_cohort_name(name)
    except CohortNameError:
        return False
    return True


def _read_cursor(context: dg.SensorEvaluationContext) -> InboxCursor:
    try:
        return InboxCursor.from_json(context.cursor)
    except ValueError as exc:
        context.log.warning(f"{exc}; starting from an empty cursor (run keys still prevent duplicate runs)")
        return InboxCursor()


@dg.sensor(
    job_name=SCORE_COHORT_JOB,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=f"Registers each complete cohort folder (holding a {READY} file) under $GBM_DATA_ROOT/cohorts "
    f"as a partition and scores it once per content version with {SCORE_COHORT_JOB}.",
)
def new_cohort_sensor(context: dg.SensorEvaluationContext, data_root: DataRootResource) -> dg.SensorResult:
    cohorts_dir = data_root.root().cohorts_dir
    plan = plan_inbox(cohorts_dir, _read_cursor(context), busy=partitions_in_progress(context.instance),
                      allowed=data_root.allowed_inputs())
    recorded = []  # invalid folders that can still be partitions: one run records the problem
    for name, reason in plan.invalid:
        context.log.warning(f"cohort folder {name!r} is not scored: {reason}. It is checked again once its files change.")
        if _valid_name(name):
            recorded.append((name, plan.next_cursor.invalid[name], reason))
    for name in plan.removed:
        context.log.info(f"cohort folder {name!r} was removed; its partition and lineage are kept")
    for name in plan.deferred:
        context.log.info(f"cohort {name!r} changed while a run for it is in progress; it is requested after that run")
    registered = set(context.instance.get_dynamic_partitions(COHORTS))
    names = [name for name, _ in plan.new_or_changed] + [name for name, _, _ in recorded]
    to_register = [name for name in names if name not in registered]
    run_requests = [
        dg.RunRequest(partition_key=name, run_key=f"{name}:{fp}", tags={FINGERPRINT_TAG: fp})
        for name, fp in plan.new_or_changed
    ] + [
        # raw_cohort fails in this run with the layout error, so the problem is in the run's record
        dg.RunRequest(partition_key=name, run_key=f"{name}:{fp}", tags={FINGERPRINT_TAG: fp, PROBLEM_TAG: reason[:500]})
        for name, fp, reason in recorded
    ]
    return dg.SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=[cohorts_partitions.build_add_request(to_register)] if to_register else [],
        cursor=plan.next_cursor.to_json(),
        skip_reason=None if run_requests else plan.summary(),
    )

