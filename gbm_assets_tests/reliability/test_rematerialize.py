"""The same partition materialized twice gives identical rows and no duplicates, in the Parquet
tables and in the DuckDB views over them."""

from __future__ import annotations

import pandas.testing as pdt
import pytest

from gbm_assets.lib.store.paths import DataRoot
from gbm_assets.lib.store.warehouse import query
from gbm_assets.lib.synth.phantom import SynthOptions, write_cohort
from gbm_assets_tests.conftest import add_cohort, materialize
from gbm_assets_tests.reliability.procs import visible_tables

COHORT = "twice"
PATIENTS = 3
TINY = SynthOptions(shape=(48, 48, 24), spacing=(3.0, 3.0, 6.0))
ASSETS = ["raw_cohort", "clinical_records", "preprocessed_volumes"]
PREPROCESS = {"preprocessed_volumes": {"config": {"target_spacing_mm": 3.0, "size": 48}}}


@pytest.mark.slow
def test_materializing_a_partition_twice_gives_the_same_rows_once(data_root, instance):
    write_cohort(data_root / "cohorts", COHORT, PATIENTS, seed=2, options=TINY)
    add_cohort(instance, COHORT)
    materialize(data_root, ASSETS, COHORT, instance=instance, run_config=PREPROCESS)
    first = visible_tables(data_root)
    first_views = {a: query(DataRoot.at(data_root), f'select * from "{a}" order by patient_id') for a in ASSETS}

    materialize(data_root, ASSETS, COHORT, instance=instance, run_config=PREPROCESS)
    second = visible_tables(data_root)

    assert set(second) == set(first) == {f"{a}/{COHORT}.parquet" for a in ASSETS}
    patients = {f"{COHORT}-{i:03d}" for i in range(PATIENTS)}
    for name, table in first.items():
        pdt.assert_frame_equal(second[name], table, check_exact=True, obj=name)
    for asset in ASSETS:
        view = query(DataRoot.at(data_root), f'select * from "{asset}" order by patient_id')
        assert sorted(view["patient_id"]) == sorted(patients), f"{asset}: view rows {list(view['patient_id'])}"
        pdt.assert_frame_equal(view, first_views[asset], check_exact=True, obj=f"view {asset}")
        dupes = query(DataRoot.at(data_root),
                      f'select patient_id, count(*) as n from "{asset}" group by all having count(*) > 1')  # fmt: skip
        assert dupes.empty, f"{asset}: duplicate patients in the DuckDB view:\n{dupes}"
