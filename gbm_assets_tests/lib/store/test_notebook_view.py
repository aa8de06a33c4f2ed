"""`notebook_features`: the notebook's per-region table as a derived DuckDB view, answering through
`gbm-assets sql` (`warehouse.query`) on hand-written tables and on a real materialization."""

from __future__ import annotations

import dagster as dg
import duckdb
import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from gbm_assets.lib.contract import REGIONS, SEQUENCES
from gbm_assets.lib.store.paths import DataRoot
from gbm_assets.lib.store.tables import write_parquet_atomic
from gbm_assets.lib.store.views import DERIVED_VIEWS
from gbm_assets.lib.store.warehouse import (
    connect_readonly,
    describe_view,
    ensure_views,
    list_views,
    query,
)
from gbm_assets.lib.synth.phantom import SynthOptions, write_cohort
from gbm_assets_tests.conftest import materialize

NB = "select * from notebook_features"


def _features(cohort: str, pid: str, source: str, regions, base: float) -> list[dict]:
    rows = []
    for i, r in enumerate(regions):
        rows.append({"cohort": cohort, "patient_id": pid, "sequence": "any", "roi_source": source, "region": r, "feature_class": "shape",
                         "feature": "Maximum3DDiameter", "value": base + i})  # fmt: skip
        for j, s in enumerate(SEQUENCES):
            for fc, f, v in (("firstorder", "Mean", 100 * j + i), ("firstorder", "Variance", 7.0), ("glrlm", "GrayLevelNonUniformity", 3.0),
                             ("glszm", "GrayLevelNonUniformity", -1.0), ("firstorder", "Median", -1.0)):  # fmt: skip
                rows.append({"cohort": cohort, "patient_id": pid, "sequence": s, "roi_source": source, "region": r, "feature_class": fc, "feature": f, "value": float(v)})
    return rows


def _write_tables(root: DataRoot, cohort: str = "c1") -> None:
    feats = _features(cohort, "p1", "ground_truth", REGIONS, 10.0) + _features(cohort, "p1", "predicted", ["whole_tumor"], 50.0)
    write_parquet_atomic(pd.DataFrame(feats), root.table_file("radiomic_features", cohort))
    burden = [{"cohort": cohort, "patient_id": "p1", "roi_source": "ground_truth", "region": r, "volume_ml": float(k + 1)} for k, r in enumerate(REGIONS)]
    burden += [{"cohort": cohort, "patient_id": "p1", "roi_source": "predicted", "region": "whole_tumor", "volume_ml": 9.5},
               {"cohort": cohort, "patient_id": "p2", "roi_source": "ground_truth", "region": "whole_tumor", "volume_ml": 4.0}]  # fmt: skip
    write_parquet_atomic(pd.DataFrame(burden), root.table_file("tumor_burden", cohort))
    clinical = pd.DataFrame({"cohort": [cohort] * 2, "patient_id": ["p1", "p2"], "subtype": ["Classical", None],
                             "survival_months": [14.5, 3.0], "event": [1.0, np.nan], "idh_status": ["wildtype", "mutant"], "age": [60, 50]})  # fmt: skip
    write_parquet_atomic(clinical, root.table_file("clinical_records", cohort))


def test_pivots_regions_sequences_and_joins_survival(tmp_path):
    root = DataRoot(tmp_path)
    _write_tables(root)
    nb = query(root, f"{NB} order by patient_id, roi_source").set_index(["patient_id", "roi_source"])
    assert list(nb.index) == [("p1", "ground_truth"), ("p1", "predicted"), ("p2", "ground_truth")]
    gt = nb.loc[("p1", "ground_truth")]
    assert [gt[f"{r}_volume_ml"] for r in REGIONS] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert gt["enhancing_max_3d_diameter_mm"] == 12.0 and gt["necrosis_max_3d_diameter_mm"] == 14.0  # non-enhancing core
    assert gt["t1c_enhancing_mean"] == 102.0 and gt["flair_necrosis_mean"] == 304.0
    assert gt["t2_edema_variance"] == 7.0 and gt["t1_whole_tumor_glnu"] == 3.0  # GLRLM's, not GLSZM's
    assert (gt["survival_months"], gt["event"], gt["idh_status"], gt["subtype"]) == (14.5, 1.0, "wildtype", "Classical")
    pred = nb.loc[("p1", "predicted")]
    assert pred["whole_tumor_volume_ml"] == 9.5 and pred["whole_tumor_max_3d_diameter_mm"] == 50.0
    assert pd.isna(pred["enhancing_volume_ml"]) and pd.isna(pred["t1c_enhancing_mean"])  # a binary ROI: NULL, not 0
    p2 = nb.loc[("p2", "ground_truth")]  # burden only (e.g. every ROI excluded from radiomics): still a row
    assert p2["whole_tumor_volume_ml"] == 4.0 and pd.isna(p2["whole_tumor_max_3d_diameter_mm"]) and p2["idh_status"] == "mutant"
    assert len(nb.columns) == 1 + 5 * 2 + 4 * 5 * 3 + 4  # cohort, 5 regions x (volume, diameter), 4 x 5 x 3 stats, clinical
    assert set(describe_view(root, "notebook_features")["column"]) >= {"enhancing_volume_ml", "t1c_enhancing_glnu", "idh_status"}
    assert "notebook_features" in set(list_views(root)["view"])


def test_follows_its_upstream_tables_and_needs_all_of_them(tmp_path):
    root = DataRoot(tmp_path)
    _write_tables(root)
    write_parquet_atomic(pd.DataFrame([{"cohort": "c2", "patient_id": "q", "roi_source": "ground_truth", "region": "enhancing", "volume_ml": 2.0}]),
                         root.table_file("tumor_burden", "c2"))  # fmt: skip
    out = query(root, "select cohort, patient_id, enhancing_volume_ml from notebook_features where cohort = 'c2'")
    assert out.to_dict("records") == [{"cohort": "c2", "patient_id": "q", "enhancing_volume_ml": 2.0}]  # new cohort, no step
    (root.table_file("clinical_records", "c1")).unlink()
    with pytest.raises(duckdb.CatalogException, match="notebook_features"):
        query(root, NB)  # an upstream table without files: no view (DuckDB names it)


def test_warehouse_file_gets_the_view_and_a_misfit_upstream_names_why(tmp_path):
    root = DataRoot(tmp_path)
    _write_tables(root)
    made = ensure_views(root)
    assert "notebook_features" in made and ensure_views(root) == []  # once, then no write
    assert set(ensure_views(root, ["tumor_burden"], refresh=True)) == {"tumor_burden", "notebook_features"}
    with connect_readonly(root) as con:
        assert con.execute("select count(*) from notebook_features").fetchone()[0] == 3
    write_parquet_atomic(pd.DataFrame({"cohort": ["c1"], "patient_id": ["p1"]}), root.table_file("clinical_records", "c1"))
    with pytest.raises(duckdb.Error, match="notebook_features is unavailable.*clinical_records"):
        query(root, NB)  # clinical_records without survival columns
    assert len(query(root, "select * from tumor_burden")) == 7  # every other view still answers


@pytest.mark.slow
def test_answers_on_a_real_materialization(data_root):
    """Synthetic cohort -> raw_cohort, clinical_records; hand-made lesion_masks (patient 1: the canonical
    labels themselves, so the predicted ROI has every region; patient 0: binary) -> radiomics and burden.
    (Patient 0's enhancing tumour is below PyRadiomics' minimum ROI, patient 1's is not.)"""
    cohort, root = "nb", DataRoot(data_root)
    write_cohort(root.cohorts_dir, cohort, 2, seed=4, options=SynthOptions(shape=(40, 40, 20), spacing=(3.0, 3.0, 6.0)))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("cohorts", [cohort])
    materialize(data_root, ["raw_cohort", "clinical_records"], cohort, instance=instance)
    raw = query(root, f"select * from raw_cohort where cohort = '{cohort}' order by patient_id")
    masks = []
    for i, row in enumerate(raw.itertuples()):
        labels = nib.load(root.root / row.labels_path)  # stored relative to the data root (or absolute, in older tables)
        canonical = np.asarray(labels.dataobj).astype(np.uint8)
        canonical[canonical == 4] = 3  # BraTS 4 -> canonical 3
        path = root.volume_dir("lesion_masks", cohort, row.patient_id) / "mask.nii.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(canonical if i == 1 else (canonical > 0).astype(np.uint8), labels.affine), path)
        masks.append({"cohort": cohort, "patient_id": row.patient_id, "status": "ok", "problems": "", "mask_path": str(path),
                      "roi_scheme": "canonical" if i == 1 else "binary", "model_name": "hand", "model_version": "0",
                      "voxels": 0, "volume_ml": 0.0, "empty": False})  # fmt: skip
    write_parquet_atomic(pd.DataFrame(masks), root.table_file("lesion_masks", cohort))
    config = {"radiomic_features": {"config": {"workers": 1}}}
    radiomics = ["radiomic_features", "radiomic_features_wide", "radiomics_exclusions", "radiomics_provenance", "tumor_burden"]
    assert materialize(data_root, radiomics, cohort, instance=instance, run_config=config).success

    nb = query(root, f"{NB} where cohort = '{cohort}' order by patient_id, roi_source")
    second, first = raw["patient_id"]  # first: the fully labelled predicted ROI
    assert list(zip(nb["patient_id"], nb["roi_source"])) == [(second, "ground_truth"), (second, "predicted"),
                                                           (first, "ground_truth"), (first, "predicted")]  # fmt: skip
    by = nb.set_index(["patient_id", "roi_source"])
    burden = query(root, f"select * from tumor_burden where cohort = '{cohort}' and region = 'enhancing' and roi_source = 'ground_truth'")
    assert by.loc[(first, "ground_truth"), "enhancing_volume_ml"] == burden.set_index("patient_id").loc[first, "volume_ml"] > 0
    diameter = query(root, f"select value from radiomic_features where cohort = '{cohort}' and patient_id = '{first}' and "
                           "roi_source = 'ground_truth' and region = 'enhancing' and feature = 'Maximum3DDiameter'")["value"]  # fmt: skip
    assert by.loc[(first, "ground_truth"), "enhancing_max_3d_diameter_mm"] == diameter.iloc[0] > 0
    gt, pred = by.loc[(first, "ground_truth")], by.loc[(first, "predicted")]
    assert pred[["enhancing_volume_ml", "t1c_enhancing_mean", "necrosis_max_3d_diameter_mm"]].tolist() == pytest.approx(
        gt[["enhancing_volume_ml", "t1c_enhancing_mean", "necrosis_max_3d_diameter_mm"]].tolist())  # same ROI, same numbers
    binary = by.loc[(second, "predicted")]
    assert binary["whole_tumor_volume_ml"] > 0 and pd.isna(binary["enhancing_volume_ml"]) and pd.isna(binary["t1c_enhancing_mean"])
    clinical = pd.read_csv(root.cohorts_dir / cohort / "clinical.csv").set_index("patient_id")
    assert gt["idh_status"] == clinical.loc[first, "idh_status"] and gt["survival_months"] == clinical.loc[first, "survival_months"]
    assert set(DERIVED_VIEWS) <= set(list_views(root)["view"])
