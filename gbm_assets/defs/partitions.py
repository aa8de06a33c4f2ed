"""Partitions: every cohort is one dynamic partition (registered by the CLI or the inbox sensor);
every 2D model input is one static partition. Also: which partitions have a run in flight."""

import dagster as dg

from gbm_assets.lib.contract import MODEL_INPUTS

COHORTS = "cohorts"
cohorts_partitions = dg.DynamicPartitionsDefinition(name=COHORTS)

model_inputs_partitions = dg.StaticPartitionsDefinition(list(MODEL_INPUTS))
"""The 2D model inputs: t1, t1c, t2, flair, the 3-channel stack and the 4-channel all."""

IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]
PARTITION_TAG = "dagster/partition"


def partitions_in_progress(instance: dg.DagsterInstance) -> set[str]:
    """Partition keys of every queued or running run (any job)."""
    runs = instance.get_runs(filters=dg.RunsFilter(statuses=IN_PROGRESS))
    return {run.tags[PARTITION_TAG] for run in runs if PARTITION_TAG in run.tags}
