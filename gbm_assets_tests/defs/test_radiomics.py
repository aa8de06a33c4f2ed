"""The radiomics assets and checks through Dagster, on tiny synthetic cohorts in a temp data root.

The heavy chain (raw cohort -> preprocessed volumes -> training slices -> a real 1-epoch U-Net in a
temp MLflow store -> lesion_masks -> features and burden) is materialized once per module. Other
tests reuse its data root: a crafted cohort with hand-made predicted masks, a bad parameter file,
and the checks called directly on good and bad tables.
"""

import importlib
import os
from types import SimpleNamespace

import dagster as dg
import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from gbm_assets.defs.masks.checks import lesion_masks_empty_rate_below_threshold
from gbm_assets.defs.masks.config import EmptyMaskRateSettings
from gbm_assets.defs.radiomics.checks import (
    radiomic_features_nan_rate_below_threshold,
    tumor_burden_predicted_volume_agrees_with_truth,
)
from gbm_assets.defs.radiomics.config import NanRateSettings, VolumeAgreementSettings
from gbm_assets.lib.masks.native import save_native_mask
from gbm_assets.lib.preprocess.volumes import (
    PreprocessConfig,
    preprocess_patient,
    read_case,
)
from gbm_assets.lib.radiomics import load_params
from gbm_assets.lib.store.paths import DataRoot, resolve_paths
from gbm_assets.lib.store.tables import write_parquet_atomic
from gbm_assets.lib.store.warehouse import query
from gbm_assets.lib.synth.phantom import (
    SynthOptions,
    synth_affine,
    synth_patient,
    write_cohort,
)
from gbm_assets_tests.conftest import failure_message
from gbm_assets_tests.conftest import materialize as _materialize

TINY = SynthOptions(shape=(48, 48, 24), spacing=(3.0, 3.0, 6.0))
VOXEL_ML = 3.0 * 3.0 * 6.0 / 1000
RADIOMICS = ["radiomic_features", "radiomic_features_wide", "radiomics_exclusions", "radiomics_provenance", "tumor_burden"]
RADIOMICS_CHECKS = {"radiomic_features_nan_rate_below_threshold", "tumor_burden_predicted_volume_agrees_with_truth"}
ONE_WORKER = {"radiomic_features": {"config": {"workers": 1}}}
radiomics_assets = importlib.import_module("gbm_assets.defs.radiomics.assets")


def materialize(instance, selection, partition, run_config=None, raise_on_error=True):
    """conftest's `materialize` on the data root of $GBM_DATA_ROOT (set by the fixtures)."""
    return _materialize(os.environ["GBM_DATA_ROOT"], selection, partition, instance=instance, run_config=run_config,
                        raise_on_error=raise_on_error)


def sql(root, text: str) -> pd.DataFrame:
    return resolve_paths(query(DataRoot(root), text), root)  # paths are stored relative to the data root


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """Cohort "tiny" (4 patients) from raw files to features and burden, with a real 1-epoch U-Net."""
    root = tmp_path_factory.mktemp("radiomics") / "data"
    root.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GBM_DATA_ROOT", str(root))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)  # the temp store under the data root, never a real server
        write_cohort(DataRoot(root).cohorts_dir, "tiny", 4, seed=3, options=TINY)
        instance = dg.DagsterInstance.ephemeral()
        instance.add_dynamic_partitions("cohorts", ["tiny"])
        prep = {"preprocessed_volumes": {"config": {"target_spacing_mm": 3.0, "size": 48}}}
        materialize(instance, ["raw_cohort", "clinical_records", "preprocessed_volumes", "training_slices"], "tiny", prep)
        materialize(instance, ["training_splits"], None)
        materialize(instance, ["unet_model", "unet_champion", "segmentation_metrics"], "stack", {"unet_model": {"config": {"base": 4, "epochs": 1}}})
        result = materialize(instance, ["lesion_masks", *RADIOMICS], "tiny", ONE_WORKER)
        yield SimpleNamespace(root=root, instance=instance, result=result)
        import mlflow

        mlflow.set_tracking_uri(None)  # mlflow exports the URI to the environment; do not leak it


@pytest.mark.slow
def test_masks_to_features_tables_views_and_checks(chain):
    root, result = chain.root, chain.result
    assert result.success
    raw = sql(root, "select * from raw_cohort where cohort = 'tiny'")
    patients = set(raw["patient_id"])
    assert len(patients) == 4 and set(raw["status"]) == {"ok"}

    features = sql(root, "select * from radiomic_features where cohort = 'tiny'")
    truth = features[features["roi_source"] == "ground_truth"]
    assert set(truth.loc[truth["region"] == "whole_tumor", "patient_id"]) == patients
    assert set(features.loc[features["feature_class"] == "shape", "sequence"]) == {"any"}
    assert set(features.loc[features["roi_source"] == "predicted", "region"]) <= {"whole_tumor"}  # binary masks

    exclusions = sql(root, "select * from radiomics_exclusions where cohort = 'tiny'")
    assert exclusions["reason"].str.len().gt(10).all()
    masks_table = sql(root, "select * from lesion_masks where cohort = 'tiny'")
    for pid in masks_table.loc[masks_table["status"] == "ok", "patient_id"]:  # empty, full or partial: never silent
        predicted = (features["roi_source"] == "predicted") & (features["patient_id"] == pid)
        excluded = (exclusions["roi_source"] == "predicted") & (exclusions["patient_id"] == pid)
        assert predicted.any() or excluded.any(), pid

    by_region = sql(root, "select region, count(*) n from radiomic_features where cohort = 'tiny' group by 1")
    assert {"whole_tumor", "edema"} <= set(by_region["region"])
    wide = sql(root, "select * from radiomic_features_wide where cohort = 'tiny'")
    assert len(wide) == len(features.groupby(["patient_id", "roi_source"]))
    assert {"t1c__whole_tumor__firstorder_mean", "shape__whole_tumor__shape_meshvolume"} <= set(wide.columns)
    provenance = sql(root, "select * from radiomics_provenance where cohort = 'tiny'")
    assert len(provenance) == 1 and provenance["params_sha256"].iloc[0] == load_params().sha256
    assert provenance["patients"].iloc[0] == 4 and provenance["seconds_per_patient_mean"].iloc[0] > 0
    assert '"normalize": true' in provenance["settings_json"].iloc[0]
    assert len(sql(root, "select reason, count(*) from radiomics_exclusions where cohort = 'tiny' group by 1")) == exclusions["reason"].nunique()

    burden = sql(root, "select * from tumor_burden where cohort = 'tiny'")
    gt = burden[(burden["roi_source"] == "ground_truth") & (burden["region"] == "whole_tumor")].set_index("patient_id")
    labelled = raw.set_index("patient_id")[["voxels_necrotic_core", "voxels_edema", "voxels_enhancing"]].sum(axis=1)
    assert gt["volume_ml"].to_dict() == pytest.approx((labelled * VOXEL_ML).to_dict())  # spacing respected
    assert gt["hemisphere"].isin(["left", "right", "midline"]).all() and gt["dice"].isna().all()
    predicted = burden[burden["roi_source"] == "predicted"]
    assert set(predicted["patient_id"]) == set(masks_table.loc[masks_table["status"] == "ok", "patient_id"])
    assert predicted["dice"].between(0, 1).all() and predicted["truth_volume_ml"].notna().all()

    meta = result.asset_materializations_for_node("radiomic_features")
    meta = {m.asset_key.to_user_string(): m.metadata for m in meta}["radiomic_features"]
    assert meta["rows"].value == len(features) and meta["exclusions"].value == len(exclusions)
    assert meta["params_sha256"].value == load_params().sha256 and meta["seconds_per_patient_mean"].value > 0
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(checks) >= RADIOMICS_CHECKS
    for name in ("lesion_masks_empty_rate_below_threshold", "radiomic_features_nan_rate_below_threshold"):
        assert {"expected_max_rate", "actual_rate"} <= set(checks[name].metadata)


README_QUERIES = {  # the README's examples, verbatim
    "volume": "select cohort, roi_source, count(*) as patients, round(avg(volume_ml), 1) as mean_volume_ml, "
              "round(avg(dice), 3) as mean_dice from tumor_burden where region = 'whole_tumor' group by all order by all",
    "modelling": "select c.subtype, w.* exclude (roi_source) from radiomic_features_wide w "
                 "join clinical_records c using (cohort, patient_id) where w.roi_source = 'ground_truth'",
    "exclusions": "select roi_source, region, trim(regexp_extract(reason, '^[^:(]+')) as why, count(*) as n "
                  "from radiomics_exclusions group by all order by n desc",
}  # fmt: skip


@pytest.mark.slow
def test_readme_queries_answer(chain):
    volume = sql(chain.root, README_QUERIES["volume"]).query("cohort == 'tiny'")
    assert volume["roi_source"].tolist() == ["ground_truth", "predicted"] and (volume["patients"] == 4).all()
    modelling = sql(chain.root, README_QUERIES["modelling"]).query("cohort == 'tiny'")
    assert len(modelling) == 4 and modelling["subtype"].notna().all() and "t1__edema__glcm_contrast" in modelling
    why = sql(chain.root, README_QUERIES["exclusions"])
    assert why["n"].sum() == len(sql(chain.root, "select * from radiomics_exclusions")) and why["why"].str.len().gt(0).all()


@pytest.mark.slow
def test_lesion_masks_overlay_their_source_images(chain):
    raw = sql(chain.root, "select * from raw_cohort where cohort = 'tiny'").set_index("patient_id")
    masks_table = sql(chain.root, "select * from lesion_masks where cohort = 'tiny' and status = 'ok'")
    assert len(masks_table) == 4
    for row in masks_table.itertuples():
        mask, image = nib.load(row.mask_path), nib.load(raw.loc[row.patient_id, "t1_path"])
        assert mask.shape == image.shape and np.allclose(mask.affine, image.affine, atol=1e-6)
        assert mask.get_data_dtype() == np.uint8 and set(np.unique(np.asarray(mask.dataobj))) <= {0, 1}


def test_native_round_trip_overlays_an_oblique_lps_patient(tmp_path):
    """Preprocess (RAS, resample, crop) and write the preprocessed ground truth back: same grid, same voxels."""
    options = SynthOptions(shape=(40, 44, 20), spacing=(2.5, 2.0, 5.0), orientation="LPS", oblique_deg=12.0)
    patient = synth_patient(5, "Classical", options)
    affine = synth_affine(options)
    paths = {}
    for name, array in {**patient.images, "labels": patient.labels}.items():
        paths[name] = tmp_path / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(array, affine), paths[name])
    images, labels = read_case({s: paths[s] for s in patient.images}, paths["labels"])
    pre = preprocess_patient(images, labels, PreprocessConfig(target_spacing_mm=2.0, slice_thickness_mm=5.0, size=64))
    native = save_native_mask(pre.labels > 0, pre.transform, tmp_path / "mask.nii.gz")
    written = nib.load(tmp_path / "mask.nii.gz")
    assert written.shape == patient.labels.shape and np.allclose(written.affine, affine, atol=1e-6)
    assert np.array_equal(np.asarray(written.dataobj), native)
    truth = patient.labels > 0
    assert 2 * (native.astype(bool) & truth).sum() / (native.sum() + truth.sum()) > 0.9


def _upstream_only(root) -> dg.DagsterInstance:
    """Cohort "stub": one-row raw_cohort and lesion_masks tables, enough to reach the asset's body."""
    row = {"cohort": "stub", "patient_id": "p0", "status": "ok", "problems": ""}
    write_parquet_atomic(pd.DataFrame([row]), DataRoot(root).table_file("raw_cohort", "stub"))
    write_parquet_atomic(pd.DataFrame([row]), DataRoot(root).table_file("lesion_masks", "stub"))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("cohorts", ["stub"])
    return instance


def test_unknown_setting_fails_before_any_extraction(data_root, tmp_path, monkeypatch):
    bad = tmp_path / "params.yaml"
    bad.write_text("setting:\n  binWidht: 10\n")
    called = []
    monkeypatch.setattr(radiomics_assets, "radiomics_tasks", lambda *a, **k: called.append("tasks"))
    monkeypatch.setattr(radiomics_assets, "extract_cohort", lambda *a, **k: called.append("extract"))
    config = {"radiomic_features": {"config": {"params_path": str(bad)}}}
    result = materialize(_upstream_only(data_root), RADIOMICS[:4], "stub", config, raise_on_error=False)
    assert not result.success and called == []
    message = failure_message(result)
    assert "cohort 'stub'" in message and str(bad) in message and "binWidht" in message
    assert not DataRoot(data_root).table_dir("radiomic_features").exists()


def test_unknown_roi_source_is_refused(data_root):
    config = {"radiomic_features": {"config": {"roi_sources": ["manual"]}}}
    result = materialize(_upstream_only(data_root), RADIOMICS[:4], "stub", config, raise_on_error=False)
    assert not result.success and "roi_sources ['manual']" in failure_message(result)


def _crafted_masks(root, cohort: str) -> pd.DataFrame:
    """lesion_masks rows whose masks are the ground truth's whole tumour (0/1) on the native grid, except:
    patient 0's mask has its origin shifted 5 mm (geometry mismatch) and patient 1's file is missing."""
    raw = sql(root, f"select * from raw_cohort where cohort = '{cohort}' order by patient_id")
    rows = []
    for i, row in enumerate(raw.itertuples()):
        labels = nib.load(row.labels_path)
        affine = labels.affine.copy()
        if i == 0:
            affine[0, 3] += 5.0
        path = DataRoot(root).volume_dir("lesion_masks", cohort, row.patient_id) / "mask.nii.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        if i != 1:
            nib.save(nib.Nifti1Image((np.asarray(labels.dataobj) > 0).astype(np.uint8), affine), path)
        rows.append({"cohort": cohort, "patient_id": row.patient_id, "status": "ok", "problems": "", "mask_path": str(path),
                     "roi_scheme": "binary", "model_name": "hand", "model_version": "0", "voxels": 0, "volume_ml": 0.0, "empty": False})  # fmt: skip
    return pd.DataFrame(rows)


@pytest.mark.slow
@pytest.mark.slow
def test_a_rerun_reuses_every_patient_and_a_changed_mask_recomputes_only_its_patient(chain):
    """Content keys: the same inputs give the recorded rows (tables unchanged); one patient's
    predicted mask rewritten with other voxels recomputes that patient alone (features and burden)."""
    root = chain.root
    tables = ["radiomic_features", "radiomics_exclusions", "tumor_burden"]
    before = {t: sql(root, f"select * from {t} where cohort = 'tiny' order by all") for t in tables}
    result = materialize(chain.instance, RADIOMICS, "tiny", ONE_WORKER)
    for node, asset in (("radiomic_features", "radiomic_features"), ("tumor_burden", "tumor_burden")):
        meta = {m.asset_key.to_user_string(): m.metadata for m in result.asset_materializations_for_node(node)}[asset]
        assert (meta["patients_reused"].value, meta["patients_computed"].value) == (4, 0), asset
    for t in tables:
        pd.testing.assert_frame_equal(sql(root, f"select * from {t} where cohort = 'tiny' order by all"), before[t], obj=t)
    masks = sql(root, "select * from lesion_masks where cohort = 'tiny' and status = 'ok' order by patient_id")
    path = DataRoot(root).root / masks["mask_path"].iloc[0]  # stored relative to the data root
    original, img = path.read_bytes(), nib.load(path)
    data = np.asanyarray(img.dataobj).copy()
    data[tuple(s // 2 for s in data.shape)] ^= 1
    nib.save(nib.Nifti1Image(data, img.affine, img.header), path)
    result = materialize(chain.instance, RADIOMICS, "tiny", ONE_WORKER)
    for node, asset in (("radiomic_features", "radiomic_features"), ("tumor_burden", "tumor_burden")):
        meta = {m.asset_key.to_user_string(): m.metadata for m in result.asset_materializations_for_node(node)}[asset]
        assert (meta["patients_reused"].value, meta["patients_computed"].value) == (3, 1), asset
    path.write_bytes(original)  # the module's other tests see the chain's own mask


def test_bad_masks_become_exclusions_and_the_others_proceed(chain):
    root, cohort = chain.root, "crafted"
    write_cohort(DataRoot(root).cohorts_dir, cohort, 4, seed=11, options=TINY)
    chain.instance.add_dynamic_partitions("cohorts", [cohort])
    materialize(chain.instance, ["raw_cohort"], cohort)
    write_parquet_atomic(_crafted_masks(root, cohort), DataRoot(root).table_file("lesion_masks", cohort))
    result = materialize(chain.instance, RADIOMICS, cohort, ONE_WORKER)
    assert result.success
    ids = sorted(sql(root, f"select patient_id from raw_cohort where cohort = '{cohort}'")["patient_id"])
    where = f"where cohort = '{cohort}' and roi_source = 'predicted'"

    exclusions = sql(root, f"select * from radiomics_exclusions {where}")
    shifted = exclusions[exclusions["patient_id"] == ids[0]]
    assert set(shifted["sequence"]) == {"t1", "t1c", "t2", "flair"}
    assert shifted["reason"].str.contains("geometry mismatch").all() and shifted["reason"].str.contains("origin").all()
    assert exclusions.loc[exclusions["patient_id"] == ids[1], "reason"].str.contains("unreadable mask").all()
    features = sql(root, f"select * from radiomic_features where cohort = '{cohort}'")
    assert sorted(features.loc[features["roi_source"] == "predicted", "patient_id"].unique()) == ids[2:]
    assert sorted(features.loc[features["roi_source"] == "ground_truth", "patient_id"].unique()) == ids
    volume = features[(features["feature"] == "VoxelVolume") & (features["region"] == "whole_tumor")]
    volume = volume.pivot(index="patient_id", columns="roi_source", values="value").dropna()
    assert len(volume) == 2 and np.allclose(volume["predicted"], volume["ground_truth"])  # same ROI, same shape

    burden = sql(root, f"select * from tumor_burden {where}").set_index("patient_id")
    assert sorted(burden.index) == [ids[0], *ids[2:]]  # patient 1 skipped (missing file), the others proceed
    assert np.isnan(burden.loc[ids[0], "dice"])  # not on the truth's grid: no agreement
    assert burden.loc[ids[2:], "dice"].tolist() == [1.0, 1.0] and (burden.loc[ids[2:], "volume_diff_ml"] == 0).all()
    meta = result.asset_materializations_for_node("tumor_burden")[0].metadata
    assert [s["patient_id"] for s in meta["skipped_patients"].value] == [ids[1]]
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["tumor_burden_predicted_volume_agrees_with_truth"].passed
    assert checks["radiomic_features_nan_rate_below_threshold"].passed


def _masks(empty: list[bool]) -> pd.DataFrame:
    return pd.DataFrame({"patient_id": [f"p{i}" for i in range(len(empty))], "status": "ok", "empty": empty})


def _features(values: list[float]) -> pd.DataFrame:
    n = len(values)
    return pd.DataFrame({"cohort": "c", "patient_id": "p", "sequence": "t1", "roi_source": "ground_truth", "region": "edema",
                         "feature_class": "glcm", "feature": [f"f{i}" for i in range(n)], "value": values})  # fmt: skip


def _burden(pred_ml: list[float], truth_ml: list[float]) -> pd.DataFrame:
    pred, truth = np.asarray(pred_ml, float), np.asarray(truth_ml, float)
    return pd.DataFrame({"patient_id": [f"p{i}" for i in range(len(pred))], "roi_source": "predicted", "region": "whole_tumor",
                         "volume_ml": pred, "truth_volume_ml": truth, "volume_diff_ml": pred - truth, "dice": 0.8})  # fmt: skip


@pytest.mark.parametrize(
    "check, settings, table, passed",
    [
        (lesion_masks_empty_rate_below_threshold, EmptyMaskRateSettings(), _masks([False] * 9 + [True]), True),
        (lesion_masks_empty_rate_below_threshold, EmptyMaskRateSettings(), _masks([False] * 3 + [True] * 2), False),
        (radiomic_features_nan_rate_below_threshold, NanRateSettings(), _features([1.0] * 99 + [np.nan]), True),
        (radiomic_features_nan_rate_below_threshold, NanRateSettings(), _features([1.0] * 9 + [np.inf]), False),
        (tumor_burden_predicted_volume_agrees_with_truth, VolumeAgreementSettings(), _burden([10, 22, 31], [11, 20, 30]), True),
        (tumor_burden_predicted_volume_agrees_with_truth, VolumeAgreementSettings(), _burden([1, 2, 31], [11, 20, 30]), False),
        (tumor_burden_predicted_volume_agrees_with_truth, VolumeAgreementSettings(), _burden([5], [np.nan]), True),
    ],
)
def test_checks_fail_on_bad_tables_and_pass_on_good_ones(check, settings, table, passed):
    result = check(settings, table)
    assert result.passed is passed
    meta = {k: v.value for k, v in result.metadata.items()}
    assert any(k.startswith("expected") for k in meta)
    if "patients_compared" in meta and meta["patients_compared"] == 0:
        assert meta["skipped"] == "no ground-truth volumes to compare"
        assert result.severity == dg.AssetCheckSeverity.WARN  # visible as a warning, not a silent pass
    else:
        assert any(k.startswith("actual") for k in meta)


def test_no_segmented_patient_fails_the_empty_rate_check():
    masks_table = pd.DataFrame({"patient_id": ["p0"], "status": ["excluded"], "empty": [True]})
    assert not lesion_masks_empty_rate_below_threshold(EmptyMaskRateSettings(), masks_table).passed


def test_radiomics_outputs_carry_the_parameter_file_as_code_version():
    from gbm_assets.lib.radiomics import default_params_path
    from gbm_assets.lib.radiomics.params import file_sha256
    from gbm_assets_tests.conftest import code_location

    graph = code_location().resolve_asset_graph()
    expected = file_sha256(default_params_path())[:12]
    assert {graph.get(dg.AssetKey(k)).code_version for k in RADIOMICS[:4]} == {expected}
