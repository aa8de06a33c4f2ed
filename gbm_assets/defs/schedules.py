"""Schedules: re-score every cohort nightly with the champion models; retrain weekly (off by default).

`nightly_rescore_schedule` (02:00 UTC, on by default) requests one `score_cohort_job` run per
registered cohort. A cohort whose ingest and preprocessing are already materialized re-runs
only the model-dependent assets (`RESCORE_ASSETS`); one that never got that far runs the whole
path. Cohorts whose folder is gone, or with a run in progress, are skipped and logged.

`weekly_retrain_schedule` (Sunday 03:00 UTC, off by default: turn it on in the UI, Automation
tab) requests `train_models_job`: one run per sequence partition for the U-Net assets and one
unpartitioned run for the classifier assets. Training never starts from the cohort inbox.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone

import dagster as dg

from gbm_assets.defs.jobs import (
    CLASSIFIER_ASSETS,
    SPLIT_ASSETS,
    RESCORE_ASSETS,
    SCORE_COHORT_ASSETS,
    SCORE_COHORT_JOB,
    TRAIN_MODELS_JOB,
    UNET_ASSETS,
)
from gbm_assets.defs.partitions import COHORTS, partitions_in_progress
from gbm_assets.defs.resources import DataRootResource


def _tick_label(context: dg.ScheduleEvaluationContext) -> str:
    when = context.scheduled_execution_time or datetime.now(timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M")


def _keys_in_repository(context: dg.ScheduleEvaluationContext, names: tuple[str, ...]) -> list[dg.AssetKey]:
    """The named keys that the code location defines, each followed by the other outputs of its
    multi-asset when that multi-asset cannot run them apart; in order, without repeats."""
    available = context.repository_def.assets_defs_by_key
    keys: dict[dg.AssetKey, None] = {}
    for key in (dg.AssetKey(name) for name in names):
        if key in available:
            keys[key] = None
            if not available[key].can_subset:
                keys.update(dict.fromkeys(sorted(available[key].keys, key=lambda k: k.to_user_string())))
    return list(keys)


@dg.schedule(
    cron_schedule="0 2 * * *",
    job_name=SCORE_COHORT_JOB,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every night, re-score every registered cohort with the current champion models.",
)
def nightly_rescore_schedule(
    context: dg.ScheduleEvaluationContext, data_root: DataRootResource
) -> Iterator[dg.RunRequest | dg.SkipReason]:
    cohorts = sorted(context.instance.get_dynamic_partitions(COHORTS))
    rescore = _keys_in_repository(context, RESCORE_ASSETS)
    inputs = _keys_in_repository(context, tuple(k for k in SCORE_COHORT_ASSETS if k not in RESCORE_ASSETS))
    ready = set(cohorts)
    for key in inputs:
        ready &= context.instance.get_materialized_partitions(key)
    busy = partitions_in_progress(context.instance)
    root, tick, requested = data_root.root(), _tick_label(context), 0
    for cohort in cohorts:
        if not root.cohort_dir(cohort).is_dir():
            context.log.info(f"cohort {cohort!r}: folder {root.cohort_dir(cohort)} is gone; not re-scored (partition kept)")
            continue
        if cohort in busy:
            context.log.info(f"cohort {cohort!r}: a run is in progress; not re-scored tonight")
            continue
        selection = rescore if rescore and cohort in ready else None  # None: the whole scoring path
        requested += 1
        yield dg.RunRequest(
            partition_key=cohort, run_key=f"{cohort}:{tick}", asset_selection=selection, tags={"gbm/trigger": "nightly_rescore"}
        )
    if not requested:
        yield dg.SkipReason(f"no cohort to re-score ({len(cohorts)} registered)")


@dg.schedule(
    cron_schedule="0 3 * * 0",
    job_name=TRAIN_MODELS_JOB,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Every Sunday (when turned on), retrain the per-sequence U-Nets and the subtype classifier.",
)
def weekly_retrain_schedule(context: dg.ScheduleEvaluationContext) -> Iterator[dg.RunRequest | dg.SkipReason]:
    tick = _tick_label(context)
    unet = _keys_in_repository(context, UNET_ASSETS)
    classifier = _keys_in_repository(context, CLASSIFIER_ASSETS)
    if unet:
        partitions_def = context.repository_def.assets_defs_by_key[unet[0]].partitions_def
        unet = _keys_in_repository(context, SPLIT_ASSETS) + unet  # the split check gates every U-Net run
        for sequence in partitions_def.get_partition_keys() if partitions_def else [None]:
            yield dg.RunRequest(
                partition_key=sequence,
                run_key=f"unet:{sequence or 'all'}:{tick}",
                asset_selection=unet,
                tags={"gbm/trigger": "weekly_retrain"},
            )
    if classifier:
        yield dg.RunRequest(run_key=f"classifier:{tick}", asset_selection=classifier, tags={"gbm/trigger": "weekly_retrain"})
    if not unet and not classifier:
        yield dg.SkipReason("no training assets are defined yet")
