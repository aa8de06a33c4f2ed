import dagster as dg
import numpy as np
import pandas as pd

from gbm_assets.lib.store.paths import DataRoot
from gbm_assets_tests.conftest import add_cohort, materialize


def _write(root: DataRoot, n: int, events: bool) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4))
    ids = [f"P{i:02d}" for i in range(n)]
    wide = pd.DataFrame(x, columns=[f"original_firstorder_f{i}" for i in range(4)]).assign(
        cohort="c", patient_id=ids, roi_source="ground_truth")
    clin = pd.DataFrame({"cohort": "c", "patient_id": ids, "subtype": "Classical",
                         "survival_months": np.exp(1 - 0.8 * x[:, 0] + 0.3 * rng.normal(size=n)) * 10,
                         "event": events, "idh_status": rng.choice(["mutant", "wildtype"], n), "age": rng.normal(60, 10, n)})
    for name, table in (("radiomic_features_wide", wide), ("clinical_records", clin)):
        (root.table_dir(name)).mkdir(parents=True, exist_ok=True)
        table.to_parquet(root.table_dir(name) / "c.parquet")


def _instance() -> dg.DagsterInstance:
    """Cohort "c" registered: survival_model reads every cohort's partition as one input."""
    instance = dg.DagsterInstance.ephemeral()
    add_cohort(instance, "c", "unscored")  # "unscored" has no tables: left out, not an error
    return instance


def test_survival_model_cross_validates_both_models(data_root):
    root = DataRoot(data_root)
    _write(root, 30, events=True)
    materialize(data_root, ["survival_model"], instance=_instance())
    out = pd.read_parquet(root.table_dir("survival_model") / "survival_model.parquet") if (root.table_dir("survival_model") / "survival_model.parquet").exists() else pd.read_parquet(next(root.table_dir("survival_model").rglob("*.parquet")))
    assert list(out["model"]) == ["radiomics_age", "clinical"]
    assert (out["status"] == "ok").all()
    assert out.set_index("model").loc["radiomics_age", "harrell_c"] > 0.6
    assert out["mlflow_run_id"].str.len().gt(0).all()


def test_survival_model_without_events_is_skipped_with_a_reason(data_root):
    root = DataRoot(data_root)
    _write(root, 30, events=False)
    materialize(data_root, ["survival_model"], instance=_instance())
    out = pd.read_parquet(next(root.table_dir("survival_model").rglob("*.parquet")))
    assert (out["status"] == "skipped").all()
    assert out["reason"].str.contains("no events").all()
