"""The ingest assets and checks, materialized through Dagster on tiny cohorts in a temp data root."""

import dagster as dg
import pandas as pd
import pytest

from gbm_assets.defs import ingest
from gbm_assets.defs.resources import DataRootResource, PartitionedParquetIOManager
from gbm_assets.lib.paths import DataRoot
from gbm_assets.lib.warehouse import query
from gbm_assets_tests.factories import write_brats_cohort, write_clinical


def materialize(cohort: str, data_root, *, raise_on_error=True):
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("cohorts", [cohort])
    return dg.materialize(
        [*ingest.assets, *ingest.checks],
        partition_key=cohort,
        instance=instance,
        resources={"data_root": DataRootResource(path=str(data_root)), "table_io_manager": PartitionedParquetIOManager(data_root=str(data_root))},
        raise_on_error=raise_on_error,
    )


def checks_by_name(result):
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_raw_assets_materialize_with_checks_and_sql_views(data_root):
    cohort_dir = write_brats_cohort(DataRoot(data_root).cohorts_dir / "small", patients=3)
    (cohort_dir / "P001" / "P001_t2.nii.gz").unlink()
    write_clinical(cohort_dir, [{"patient_id": "P000", "subtype": "MES"}, {"patient_id": "P001", "subtype": "PN"}])

    result = materialize("small", data_root)
    assert result.success
    raw = pd.read_parquet(data_root / "tables" / "raw_cohort" / "small.parquet")
    assert raw.set_index("patient_id")["status"].to_dict() == {"P000": "ok", "P001": "excluded", "P002": "ok"}
    meta = result.asset_materializations_for_node("raw_cohort")[0].metadata
    assert meta["excluded_patients"].value == 1 and meta["valid_patients"].value == 2
    assert "missing sequence file: t2" in meta["problems"].value

    checks = checks_by_name(result)
    assert checks["raw_cohort_patient_ids_unique"].passed
    assert not checks["raw_cohort_patients_complete"].passed  # P001 lacks T2
    assert not checks["clinical_records_cover_imaged_patients"].passed  # P002 has no clinical row
    assert checks["clinical_records_cover_imaged_patients"].metadata["without_clinical_row"].value == ["P002"]

    counts = query(DataRoot(data_root), "select r.status, count(*) n, count(c.subtype) labelled from raw_cohort r "
                   "left join clinical_records c using (cohort, patient_id) group by 1 order by 1")  # fmt: skip
    assert counts.to_dict("records") == [{"status": "excluded", "n": 1, "labelled": 1}, {"status": "ok", "n": 2, "labelled": 1}]


def test_complete_cohort_passes_every_check(data_root):
    cohort_dir = write_brats_cohort(DataRoot(data_root).cohorts_dir / "good", patients=2)
    write_clinical(cohort_dir, [{"patient_id": f"P00{i}", "subtype": "Neural", "survival_months": 9} for i in range(2)])
    checks = checks_by_name(materialize("good", data_root))
    assert all(c.passed for c in checks.values()), checks


def test_empty_cohort_folder_fails_with_a_clear_message(data_root):
    (data_root / "cohorts" / "hollow").mkdir(parents=True)
    result = materialize("hollow", data_root, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure and e.step_key.startswith("raw_cohort"))
    assert "cohort 'hollow'" in str(failure.event_specific_data.error) and "empty" in str(failure.event_specific_data.error)


def test_unknown_subtype_fails_clinical_records_only(data_root):
    cohort_dir = write_brats_cohort(DataRoot(data_root).cohorts_dir / "oddsub", patients=1)
    write_clinical(cohort_dir, [{"patient_id": "P000", "subtype": "Astro"}])
    result = materialize("oddsub", data_root, raise_on_error=False)
    assert result.is_node_success("raw_cohort")
    assert result.is_node_failed("clinical_records")
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "unknown subtype ['Astro']" in str(failure.event_specific_data.error)


def test_cohort_name_with_path_separator_is_refused(data_root):
    with pytest.raises(Exception, match="invalid cohort name"):
        materialize("..", data_root)
