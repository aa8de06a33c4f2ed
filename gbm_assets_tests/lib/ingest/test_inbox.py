"""The cohort inbox rule, without Dagster: READY marker, fingerprints, validation and the cursor."""

import os

import pytest

from gbm_assets.lib.ingest.inbox import READY, InboxCursor, fingerprint, plan_inbox
from gbm_assets_tests.factories import write_brats_cohort


def drop(cohorts_dir, name, patients=1, ready=True):
    folder = write_brats_cohort(cohorts_dir / name, patients=patients)
    if ready:
        (folder / READY).write_text("")
    return folder


@pytest.fixture
def inbox(tmp_path):
    folder = tmp_path / "cohorts"
    folder.mkdir()
    return folder


def test_new_cohort_is_planned_once_and_then_unchanged(inbox):
    drop(inbox, "alpha")
    first = plan_inbox(inbox, None)
    assert [c for c, _ in first.new_or_changed] == ["alpha"]
    assert first.next_cursor.seen == {"alpha": first.new_or_changed[0][1]}
    again = plan_inbox(inbox, InboxCursor.from_json(first.next_cursor.to_json()))
    assert again.new_or_changed == [] and again.next_cursor == first.next_cursor


def test_changed_content_is_planned_again_with_a_new_fingerprint(inbox):
    folder = drop(inbox, "alpha")
    first = plan_inbox(inbox)
    write_brats_cohort(folder, patients=2)  # adds P001, rewrites P000
    second = plan_inbox(inbox, first.next_cursor)
    assert [c for c, _ in second.new_or_changed] == ["alpha"]
    assert second.new_or_changed[0][1] != first.new_or_changed[0][1]


def test_touching_ready_or_hidden_files_does_not_change_the_fingerprint(inbox):
    folder = drop(inbox, "alpha")
    before = fingerprint(folder)
    os.utime(folder / READY, ns=(1, 1))
    (folder / ".DS_Store").write_text("x")
    (folder / "P000" / ".P000_t1.nii.gz.123.tmp").write_text("x")
    assert fingerprint(folder) == before
    os.utime(folder / "P000" / "P000_t1.nii.gz", ns=(1, 1))
    assert fingerprint(folder) != before


def test_folder_without_ready_is_incomplete_until_marked(inbox):
    folder = drop(inbox, "alpha", ready=False)
    plan = plan_inbox(inbox)
    assert plan.incomplete == ["alpha"] and plan.new_or_changed == [] and plan.next_cursor == InboxCursor()
    (folder / READY).write_text("")
    assert [c for c, _ in plan_inbox(inbox, plan.next_cursor).new_or_changed] == ["alpha"]


def test_unrecognised_layout_is_invalid_once_per_fingerprint(inbox):
    folder = inbox / "loose"
    folder.mkdir()
    (folder / "scan.dcm").write_text("not nifti")
    (folder / READY).write_text("")
    first = plan_inbox(inbox)
    assert first.new_or_changed == [] and [n for n, _ in first.invalid] == ["loose"]
    assert "matches no known layout" in first.invalid[0][1]
    second = plan_inbox(inbox, first.next_cursor)
    assert second.invalid == [] and second.new_or_changed == []  # not reported or retried again
    write_brats_cohort(folder, patients=1)  # fixed: now a BraTS cohort
    third = plan_inbox(inbox, second.next_cursor)
    assert [c for c, _ in third.new_or_changed] == ["loose"] and "loose" not in third.next_cursor.invalid


def test_ready_alone_is_invalid(inbox):
    (inbox / "hollow").mkdir()
    (inbox / "hollow" / READY).write_text("")
    assert [n for n, _ in plan_inbox(inbox).invalid] == ["hollow"]


@pytest.mark.parametrize("name", ["bad name", "-leading-dash", "x" * 129])
def test_invalid_cohort_name_is_reported_not_raised(inbox, name):
    drop(inbox, name)
    plan = plan_inbox(inbox)
    assert plan.new_or_changed == [] and plan.invalid[0][0] == name
    assert "invalid cohort name" in plan.invalid[0][1]
    assert plan_inbox(inbox, plan.next_cursor).invalid == []


def test_removed_cohort_is_reported_once_and_forgotten(inbox):
    import shutil

    drop(inbox, "alpha")
    drop(inbox, "beta")
    first = plan_inbox(inbox)
    shutil.rmtree(inbox / "alpha")
    second = plan_inbox(inbox, first.next_cursor)
    assert second.removed == ["alpha"] and set(second.next_cursor.seen) == {"beta"}
    assert plan_inbox(inbox, second.next_cursor).removed == []


def test_two_cohorts_at_once_are_both_planned(inbox):
    drop(inbox, "alpha")
    drop(inbox, "beta", patients=2)
    plan = plan_inbox(inbox)
    assert [c for c, _ in plan.new_or_changed] == ["alpha", "beta"]
    assert plan.new_or_changed[0][1] != plan.new_or_changed[1][1]


def test_busy_cohort_is_deferred_keeping_its_previous_fingerprint(inbox):
    folder = drop(inbox, "alpha")
    first = plan_inbox(inbox)
    write_brats_cohort(folder, patients=2)
    busy = plan_inbox(inbox, first.next_cursor, busy={"alpha"})
    assert busy.deferred == ["alpha"] and busy.new_or_changed == [] and busy.next_cursor == first.next_cursor
    assert [c for c, _ in plan_inbox(inbox, busy.next_cursor).new_or_changed] == ["alpha"]


def test_missing_inbox_and_stray_entries_are_ignored(tmp_path, inbox):
    assert plan_inbox(tmp_path / "absent").new_or_changed == []
    (inbox / "notes.txt").write_text("a file, not a cohort")
    (inbox / ".incoming").mkdir()
    plan = plan_inbox(inbox)
    assert (plan.new_or_changed, plan.invalid, plan.incomplete) == ([], [], [])


@pytest.mark.parametrize("text", ["{", "[]", '{"version": 99}', '{"version": 1, "seen": {"a": 1}}'])
def test_malformed_cursor_is_refused(text):
    with pytest.raises(ValueError, match="inbox cursor"):
        InboxCursor.from_json(text)
