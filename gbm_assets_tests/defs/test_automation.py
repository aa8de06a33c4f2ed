"""The cohort inbox sensor, the jobs and the schedules, evaluated against an ephemeral instance.

The jobs select assets by name, so a Definitions object that holds them must define every
named asset: the tests use the real ingest assets plus do-nothing stubs for the rest.
"""

import shutil
from datetime import datetime, timezone

import dagster as dg
import pytest

from gbm_assets.defs import conditions, jobs as automation_jobs, schedules, sensors
from gbm_assets.defs.ingest import assets as ingest_assets, checks as ingest_checks, sensors as ingest_sensors
from gbm_assets.defs.partitions import COHORTS, cohorts_partitions, model_inputs_partitions
from gbm_assets.defs.resources import DataRootResource
from gbm_assets.lib.ingest.inbox import READY, InboxCursor
from gbm_assets_tests.conftest import code_location, resources
from gbm_assets_tests.factories import write_brats_cohort

NIGHT = datetime(2026, 3, 4, 2, 0, tzinfo=timezone.utc)
INGEST_ASSETS = [ingest_assets.raw_cohort, ingest_assets.clinical_records]
INGEST_CHECKS = [v for v in vars(ingest_checks).values() if isinstance(v, dg.AssetChecksDefinition)]


def stub(name, partitions_def=cohorts_partitions, deps=()):
    @dg.asset(name=name, partitions_def=partitions_def, deps=list(deps))
    def _stub() -> None:
        return None

    return _stub


RADIOMICS_OUTPUTS = ("radiomic_features", "radiomic_features_wide", "radiomics_exclusions", "radiomics_provenance")


@dg.multi_asset(specs=[dg.AssetSpec(k, partitions_def=cohorts_partitions) for k in RADIOMICS_OUTPUTS], can_subset=False)
def radiomics_stub():
    for key in RADIOMICS_OUTPUTS:
        yield dg.MaterializeResult(asset_key=key)


def stubs_for_the_rest() -> list:
    """Stubs for every asset the jobs name besides the ingest assets."""
    cohort_stubs = [stub(n) for n in automation_jobs.SCORE_COHORT_ASSETS
                    if n not in automation_jobs.INGEST_ASSETS and n not in RADIOMICS_OUTPUTS]  # fmt: skip
    splits = [stub(n, None) for n in automation_jobs.SPLIT_ASSETS]
    unet = [stub(n, model_inputs_partitions) for n in automation_jobs.UNET_ASSETS]
    classifier = [stub(n, None) for n in automation_jobs.CLASSIFIER_ASSETS]
    return [*cohort_stubs, radiomics_stub, *splits, *unet, *classifier]


def build_defs(data_root, assets=None, checks=None):
    assets = list(INGEST_ASSETS + stubs_for_the_rest() if assets is None else assets)
    return dg.Definitions(
        assets=assets,
        asset_checks=list(INGEST_CHECKS if checks is None else checks),
        jobs=[automation_jobs.ingest_job, automation_jobs.score_cohort_job, automation_jobs.train_models_job],
        sensors=[ingest_sensors.new_cohort_sensor, sensors.automation_conditions_sensor],
        schedules=[schedules.nightly_rescore_schedule, schedules.weekly_retrain_schedule],
        resources=resources(data_root),
    )


def score(inbox, partition, **kwargs):
    """Run the ingest part of `score_cohort_job` (the other assets are stubs here)."""
    return inbox.defs.resolve_job_def("score_cohort_job").execute_in_process(
        partition_key=partition, instance=inbox.instance, asset_selection=[dg.AssetKey(k) for k in automation_jobs.INGEST_ASSETS], **kwargs
    )


class Inbox:
    """A data root, an instance and the sensor's cursor, ticked like the daemon does."""

    def __init__(self, data_root, instance):
        self.root = data_root
        self.defs = build_defs(data_root)
        self.instance = instance
        self.cursor = None

    def drop(self, name, patients=1, ready=True):
        folder = write_brats_cohort(self.root / "cohorts" / name, patients=patients)
        if ready:
            (folder / READY).write_text("")
        return folder

    def tick(self):
        with dg.build_sensor_context(  # closing it releases its resources and instance context
            instance=self.instance,
            instance_ref=self.instance.get_ref(),
            cursor=self.cursor,
            definitions=self.defs,
            resources={"data_root": DataRootResource(path=str(self.root))},
        ) as context:
            result = self.defs.resolve_sensor_def("new_cohort_sensor").evaluate_tick(context)
        for request in result.dynamic_partitions_requests or []:  # what the daemon does first
            self.instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        self.cursor = result.cursor
        return result


@pytest.fixture
def instance():
    """A temporary on-disk instance: sensors resolve dynamic partitions through its ref."""
    with dg.instance_for_test() as instance:
        yield instance


@pytest.fixture
def inbox(data_root, instance):
    return Inbox(data_root, instance)


def test_new_cohort_registers_its_partition_and_requests_one_scoring_run(inbox):
    inbox.drop("alpha")
    result = inbox.tick()
    [request] = result.run_requests
    fp = InboxCursor.from_json(result.cursor).seen["alpha"]
    assert request.partition_key == "alpha" and request.run_key == f"alpha:{fp}"
    assert request.tags["gbm/cohort_fingerprint"] == fp
    [add] = result.dynamic_partitions_requests
    assert add.partitions_def_name == COHORTS and list(add.partition_keys) == ["alpha"]
    assert inbox.instance.get_dynamic_partitions(COHORTS) == ["alpha"]


def test_unchanged_cohort_requests_nothing_more(inbox):
    inbox.drop("alpha")
    inbox.tick()
    again = inbox.tick()
    assert again.run_requests == [] and not again.dynamic_partitions_requests
    assert "1 new or changed" not in again.skip_message and "0 new or changed" in again.skip_message


def test_changed_cohort_requests_a_new_run_without_re_registering(inbox):
    folder = inbox.drop("alpha")
    first = inbox.tick().run_requests[0]
    write_brats_cohort(folder, patients=2)
    changed = inbox.tick()
    [request] = changed.run_requests
    assert request.partition_key == "alpha" and request.run_key != first.run_key
    assert not changed.dynamic_partitions_requests


def test_incomplete_cohort_waits_for_ready(inbox):
    folder = inbox.drop("alpha", ready=False)
    result = inbox.tick()
    assert result.run_requests == [] and "1 incomplete" in result.skip_message
    assert inbox.instance.get_dynamic_partitions(COHORTS) == []
    (folder / READY).write_text("")
    assert [r.partition_key for r in inbox.tick().run_requests] == ["alpha"]


def _drop_invalid(inbox, name):
    folder = inbox.root / "cohorts" / name
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("no volumes here")
    (folder / READY).write_text("")
    return folder


def test_invalid_name_is_logged_once_and_never_run(inbox, capsys):
    _drop_invalid(inbox, "bad name")
    result = inbox.tick()
    assert result.run_requests == [] and not result.dynamic_partitions_requests
    assert "cohort folder 'bad name' is not scored" in capsys.readouterr().err  # the tick's log
    again = inbox.tick()
    assert again.run_requests == [] and "is not scored" not in capsys.readouterr().err
    assert InboxCursor.from_json(again.cursor).invalid == InboxCursor.from_json(result.cursor).invalid


def test_invalid_layout_gets_one_run_that_records_the_problem_and_is_not_retried(inbox, capsys):
    folder = _drop_invalid(inbox, "unknown_layout")
    result = inbox.tick()
    [request] = result.run_requests
    assert request.partition_key == "unknown_layout" and "matches no known layout" in request.tags["gbm/inbox_problem"]
    assert "cohort folder 'unknown_layout' is not scored" in capsys.readouterr().err
    again = inbox.tick()
    assert again.run_requests == [] and "is not scored" not in capsys.readouterr().err
    (folder / "more.txt").write_text("changed")  # a change is checked again
    assert [r.partition_key for r in inbox.tick().run_requests] == ["unknown_layout"]


def test_two_cohorts_at_once_get_two_runs_with_distinct_keys(inbox):
    inbox.drop("alpha")
    inbox.drop("beta", patients=2)
    result = inbox.tick()
    assert sorted(r.partition_key for r in result.run_requests) == ["alpha", "beta"]
    assert len({r.run_key for r in result.run_requests}) == 2
    assert sorted(result.dynamic_partitions_requests[0].partition_keys) == ["alpha", "beta"]


def test_change_while_a_run_is_in_progress_is_deferred_not_duplicated(inbox):
    folder = inbox.drop("alpha")
    inbox.tick()
    job = inbox.defs.resolve_job_def("score_cohort_job")
    run = inbox.instance.create_run_for_job(job, tags={"dagster/partition": "alpha"}, status=dg.DagsterRunStatus.STARTED)
    write_brats_cohort(folder, patients=2)
    assert inbox.tick().run_requests == []
    inbox.instance.report_run_failed(run)
    assert [r.partition_key for r in inbox.tick().run_requests] == ["alpha"]


def test_removed_cohort_keeps_its_partition_and_its_run_fails_clearly(inbox):
    inbox.drop("alpha")
    inbox.tick()
    shutil.rmtree(inbox.root / "cohorts" / "alpha")
    assert inbox.tick().run_requests == []
    assert inbox.instance.get_dynamic_partitions(COHORTS) == ["alpha"]
    result = score(inbox, "alpha", raise_on_error=False)
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "does not exist" in str(failure.event_specific_data.error)


def test_requested_run_scores_the_cohort(inbox):
    inbox.drop("alpha", patients=2)
    [request] = inbox.tick().run_requests
    result = score(inbox, request.partition_key, tags=request.tags)
    assert result.success
    assert result.asset_materializations_for_node("raw_cohort")[0].metadata["valid_patients"].value == 2


def test_jobs_select_their_assets_in_the_code_location():
    defs = code_location()
    score_job = defs.resolve_job_def("score_cohort_job")
    assert score_job.partitions_def == cohorts_partitions
    assert {k.to_user_string() for k in score_job.asset_layer.selected_asset_keys} >= set(automation_jobs.SCORE_COHORT_ASSETS)
    assert {k.to_user_string() for k in defs.resolve_job_def("ingest_job").asset_layer.selected_asset_keys} == {"raw_cohort", "clinical_records"}
    assert defs.resolve_job_def("train_models_job").partitions_def == model_inputs_partitions
    assert all(k in automation_jobs.SCORE_COHORT_ASSETS for k in automation_jobs.RESCORE_ASSETS)


def test_sensors_and_rescore_are_on_by_default_and_retraining_is_off():
    defs = code_location()
    assert defs.resolve_sensor_def("new_cohort_sensor").default_status == dg.DefaultSensorStatus.RUNNING
    assert defs.resolve_sensor_def("automation_conditions_sensor").default_status == dg.DefaultSensorStatus.RUNNING
    assert defs.resolve_schedule_def("nightly_rescore_schedule").default_status == dg.DefaultScheduleStatus.RUNNING
    assert defs.resolve_schedule_def("weekly_retrain_schedule").default_status == dg.DefaultScheduleStatus.STOPPED
    assert defs.resolve_sensor_def("new_cohort_sensor").job_name == "score_cohort_job"


# Schedules ------------------------------------------------------------------------------------


def evaluate(defs, name, instance, data_root):
    with dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=NIGHT,
        repository_def=defs.get_repository_def(),
        resources={"data_root": DataRootResource(path=str(data_root))},
    ) as context:
        return defs.resolve_schedule_def(name).evaluate_tick(context)


def test_nightly_rescore_requests_one_run_per_registered_cohort(inbox):
    for name in ("alpha", "beta"):
        inbox.drop(name, ready=False)
    inbox.instance.add_dynamic_partitions(COHORTS, ["alpha", "beta", "gone"])  # "gone" has no folder
    result = evaluate(inbox.defs, "nightly_rescore_schedule", inbox.instance, inbox.root)
    assert sorted(r.partition_key for r in result.run_requests) == ["alpha", "beta"]  # "gone" is skipped
    assert {r.run_key for r in result.run_requests} == {"alpha:2026-03-04T02:00", "beta:2026-03-04T02:00"}
    assert all(r.asset_selection is None for r in result.run_requests)  # nothing materialized yet: whole path


def test_nightly_rescore_with_no_cohorts_skips(inbox):
    result = evaluate(inbox.defs, "nightly_rescore_schedule", inbox.instance, inbox.root)
    assert result.run_requests == [] and "no cohort" in result.skip_message


def test_nightly_rescore_reruns_only_model_assets_where_inputs_exist(data_root, instance):
    names = automation_jobs.SCORE_COHORT_ASSETS
    assets = stubs_for_the_rest() + [stub(n) for n in automation_jobs.INGEST_ASSETS]
    defs = build_defs(data_root, assets=assets, checks=[])
    score_keys = defs.resolve_job_def("score_cohort_job").asset_layer.selected_asset_keys
    assert dg.AssetKey("radiomic_features_wide") in score_keys  # a multi-asset runs whole
    for cohort in ("scored", "fresh"):
        write_brats_cohort(data_root / "cohorts" / cohort, patients=1)
    instance.add_dynamic_partitions(COHORTS, ["scored", "fresh"])
    for name in names:
        if name not in automation_jobs.RESCORE_ASSETS:
            instance.report_runless_asset_event(dg.AssetMaterialization(name, partition="scored"))
    requests = {r.partition_key: r for r in evaluate(defs, "nightly_rescore_schedule", instance, data_root).run_requests}
    selected = [k.to_user_string() for k in requests["scored"].asset_selection]
    assert set(selected) == {*automation_jobs.RESCORE_ASSETS, "radiomic_features_wide"} and len(selected) == len(set(selected))
    assert requests["fresh"].asset_selection is None


def test_weekly_retrain_requests_one_run_per_sequence_and_one_for_the_classifier(data_root, instance):
    sequences = dg.StaticPartitionsDefinition(["t1", "t1c", "t2", "flair", "stack"])
    assets = [
        *INGEST_ASSETS,
        *(stub(n) for n in automation_jobs.SCORE_COHORT_ASSETS if n not in automation_jobs.INGEST_ASSETS and n not in RADIOMICS_OUTPUTS),
        radiomics_stub,
        stub("training_splits", None),
        stub("unet_model", sequences, deps=["training_splits"]),
        stub("unet_champion", sequences, deps=["unet_model"]),
        stub("segmentation_metrics", sequences, deps=["unet_model"]),
        stub("subtype_training_table", None),
        stub("subtype_classifier", None, deps=["subtype_training_table"]),
        stub("subtype_champion", None, deps=["subtype_classifier"]),
        stub("survival_model", None),
        *(stub(n, None) for n in automation_jobs.CLASSIFIER_ASSETS if not n.startswith(("subtype_", "survival_"))),
    ]
    defs = build_defs(data_root, assets=assets)
    assert defs.resolve_job_def("train_models_job").partitions_def == sequences
    result = evaluate(defs, "weekly_retrain_schedule", instance, data_root)
    by_key = {r.run_key: r for r in result.run_requests}
    assert sorted(r.partition_key for r in result.run_requests if r.partition_key) == sorted(sequences.get_partition_keys())
    classifier = by_key["classifier:2026-03-04T02:00"]
    assert classifier.partition_key is None
    assert [k.to_user_string() for k in classifier.asset_selection] == list(automation_jobs.CLASSIFIER_ASSETS)
    unet_t1 = by_key["unet:t1:2026-03-04T02:00"]
    assert [k.to_user_string() for k in unet_t1.asset_selection] == ["training_splits", "unet_model", "unet_champion", "segmentation_metrics"]


def test_weekly_retrain_without_training_assets_skips(data_root, instance):
    @dg.op
    def nothing() -> None:
        return None

    @dg.job(name="train_models_job")
    def placeholder():  # the schedule's target exists; no training asset does
        nothing()

    defs = dg.Definitions(assets=INGEST_ASSETS, jobs=[placeholder], schedules=[schedules.weekly_retrain_schedule], resources=resources(data_root))
    result = evaluate(defs, "weekly_retrain_schedule", instance, data_root)
    assert result.run_requests == [] and "no training assets" in result.skip_message


# Declarative automation ----------------------------------------------------------------------


def test_eager_except_models_follows_cohort_inputs_but_not_a_retrained_model(instance):
    cohort_input = stub("cohort_input")
    model = stub("subtype_classifier", None)

    @dg.asset(partitions_def=cohorts_partitions, deps=[cohort_input, model], automation_condition=conditions.EAGER_EXCEPT_MODELS)
    def follower() -> None:
        return None

    defs = dg.Definitions(assets=[cohort_input, model, follower])
    instance.add_dynamic_partitions(COHORTS, ["c1"])
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    dg.materialize([cohort_input, model, follower], partition_key="c1", instance=instance, selection=[cohort_input, follower])
    dg.materialize([model], instance=instance)
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
    assert result.total_requested == 0  # same run as its input; a new model is ignored
    dg.materialize([cohort_input], partition_key="c1", instance=instance)
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
    assert result.get_requested_partitions(dg.AssetKey("follower")) == {"c1"}


def test_escaping_cohort_yaml_is_not_ingested_silently(inbox, capsys):
    folder = inbox.drop("escape")
    (folder / "cohort.yaml").write_text('patients: "../other_cohort/*"\nsequences: {t1: "*_t1.nii.gz"}\n')
    [request] = inbox.tick().run_requests
    assert "leaves the cohort folder" in request.tags["gbm/inbox_problem"]
    assert "cohort folder 'escape' is not scored" in capsys.readouterr().err
    result = score(inbox, "escape", raise_on_error=False, tags=request.tags)
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "cohort 'escape'" in str(failure.event_specific_data.error) and "patients glob '../other_cohort/*'" in str(failure.event_specific_data.error)
