from pathlib import Path

from gbm_assets.lib.ingest.layouts import reader_for, scan_cohort
from gbm_assets.lib.ingest.layouts.longitudinal import split_timepoint_id, timepoint_id
from gbm_assets.lib.ingest.validate import validate_cohort
from gbm_assets.lib.synth.longitudinal import write_longitudinal_cohort
from gbm_assets.lib.synth.phantom import SynthOptions

TINY = SynthOptions(shape=(40, 40, 20), spacing=(4.0, 4.5, 6.5))


def test_ids_round_trip():
    assert split_timepoint_id(timepoint_id("Patient-001", "week-044-2")) == ("Patient-001", "week-044-2", 44, 2)
    assert split_timepoint_id("BRATS_001") is None
    assert split_timepoint_id("__week-001") is None


def test_synthetic_cohort_is_reproducible_and_reads_as_time_points(tmp_path: Path):
    m1 = write_longitudinal_cohort(tmp_path / "a", "lon", 3, seed=4, options=TINY)
    m2 = write_longitudinal_cohort(tmp_path / "b", "lon", 3, seed=4, options=TINY)
    assert m1.equals(m2)
    one = sorted((tmp_path / "a/lon").rglob("*.nii.gz"))
    assert [p.read_bytes() for p in one] == [(tmp_path / "b" / p.relative_to(tmp_path / "a")).read_bytes() for p in one]
    assert set(m1["trajectory"]) == {"growth", "response", "stable"}
    assert m1.groupby("subject").size().between(3, 5).all()
    assert reader_for(tmp_path / "a/lon").name == "longitudinal"
    table = validate_cohort("lon", tmp_path / "a/lon")
    assert (table["status"] == "ok").all(), table["problems"].tolist()
    assert list(table["patient_id"]) == list(m1["patient_id"])
    assert list(table["subject_id"]) == list(m1["subject"])
    growth = m1[m1["trajectory"] == "growth"]["whole_tumor_ml"].to_numpy()
    assert growth[-1] > 1.4 * growth.min()


def _timepoint(folder: Path, source: Path) -> None:
    folder.mkdir(parents=True)
    for f in source.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())


def test_duplicated_and_single_time_points(tmp_path: Path):
    write_longitudinal_cohort(tmp_path, "lon", 1, seed=1, options=TINY, timepoints=(3, 3))
    subject = tmp_path / "lon/lon-000"
    first = min(subject.iterdir())
    _timepoint(subject / "week-0", first)  # same week as week-000
    _timepoint(tmp_path / "lon/Solo/week-000", first)
    scan = scan_cohort(tmp_path / "lon")
    by_id = {p.patient_id: p for p in scan.patients}
    assert any("duplicated time point" in q for q in by_id["lon-000__week-0"].problems)
    assert any("duplicated time point" in q for q in by_id["lon-000__week-000"].problems)
    assert any("Solo" in n and "single time point" in n for n in scan.problems)
    # order is by week number, not by folder name
    weeks = [split_timepoint_id(p.patient_id)[2] for p in scan.patients if p.subject_id == "lon-000"]
    assert weeks == sorted(weeks)
