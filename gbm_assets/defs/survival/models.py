"""`survival_model` (unpartitioned): penalised Cox on radiomic features plus age beside a clinical-only Cox
(age, IDH where known), subject-grouped K-fold CV, out-of-fold C-indices; tracked in MLflow
(experiment `gbm-survival`). A model with too few patients or no events is skipped with a reason.

The computation lives in `gbm_assets.lib.survival.cox`.
"""

import math

import dagster as dg
import pandas as pd

from gbm_assets.defs.classify.config import check_roi_source
from gbm_assets.defs.metadata import table_metadata
from gbm_assets.defs.resources import MlflowResource
from gbm_assets.lib.survival.cox import (
    CLINICAL_FEATURES,
    ID_COLUMNS,
    cross_validated_cox,
    survival_table,
)


class SurvivalModelSettings(dg.Config):
    roi_source: str = "ground_truth"
    n_splits: int = 5
    penalizer: float = 0.5
    l1_ratio: float = 0.0
    top_k: int = 20
    """Radiomic features kept per fold (strongest univariate concordance on the training fold)."""
    min_patients: int = 10
    min_events: int = 3
    seed: int = 0


@dg.asset(
    group_name="survival",
    io_manager_key="table_io_manager",
    kinds={"lifelines", "mlflow", "parquet"},
    ins={
        "radiomic_features_wide": dg.AssetIn(partition_mapping=dg.AllPartitionMapping()),
        "clinical_records": dg.AssetIn(partition_mapping=dg.AllPartitionMapping()),
    },
    description="Penalised Cox models, subject-grouped CV: radiomics + age vs clinical only (age, IDH). One row per "
    "model: status (ok/skipped, reason), patients, events, Harrell's C (and Uno's C, mean AUC, integrated Brier).",
)
def survival_model(
    context: dg.AssetExecutionContext, config: SurvivalModelSettings, mlflow: MlflowResource,
    radiomic_features_wide: pd.DataFrame, clinical_records: pd.DataFrame,
) -> dg.Output[pd.DataFrame]:
    """Every cohort's radiomic_features_wide and clinical_records as inputs (the IO manager loads the cohorts
    that materialized them; a cohort with only one of the two is left out)."""
    roi_source = check_roi_source(config.roi_source)
    has = [set(df["cohort"]) if "cohort" in df else set() for df in (radiomic_features_wide, clinical_records)]
    cohorts = sorted(has[0] & has[1])
    wide, clin = radiomic_features_wide, clinical_records
    wide = wide.loc[wide["cohort"].isin(cohorts) & (wide["roi_source"] == roi_source)] if cohorts else pd.DataFrame()
    clin = clin.loc[clin["cohort"].isin(cohorts)] if cohorts else pd.DataFrame()
    table = survival_table(wide, clin, roi_source)
    radiomic = [c for c in table.columns if c not in (*ID_COLUMNS, *CLINICAL_FEATURES)]
    kw = {"n_splits": config.n_splits, "penalizer": config.penalizer, "l1_ratio": config.l1_ratio, "seed": config.seed,
          "min_patients": config.min_patients, "min_events": config.min_events}
    clinical_cols = ["age", *(["idh_mutant", "idh_known"] if len(table) and table["idh_known"].any() else [])]
    results = [cross_validated_cox(table, [*radiomic, "age"] if radiomic else [], "radiomics_age", top_k=config.top_k, **kw),
               cross_validated_cox(table, clinical_cols if len(table) else [], "clinical", top_k=None, **kw)]
    out = pd.DataFrame([r.row() for r in results]).assign(roi_source=roi_source, cohorts=",".join(cohorts))
    for r in results:
        if r.status != "ok":
            context.log.warning(f"survival_model {r.name}: skipped: {r.reason}")
    with mlflow.run(context, f"survival-model-{context.run_id[:8]}", experiment="gbm-survival") as run:
        import mlflow as mlf

        mlf.log_params({"roi_source": roi_source, "cohorts": ",".join(cohorts)[:500], **config.model_dump(exclude={"roi_source"})})
        for r in results:
            mlf.log_metrics({f"{r.name}.{k}": float(v) for k, v in r.metrics.items() if isinstance(v, (int, float)) and math.isfinite(v)})
            mlf.set_tag(f"{r.name}.status", r.status if not r.reason else f"{r.status}: {r.reason[:200]}")
        run_id = run.info.run_id
    out["mlflow_run_id"] = run_id
    return dg.Output(
        out,
        metadata={
            "cohorts": dg.MetadataValue.json(cohorts),
            "patients": len(table),
            "events": int(table["event"].sum()) if len(table) else 0,
            "radiomic_features": len(radiomic),
            "models": table_metadata(out.drop(columns=["cohorts", "mlflow_run_id"]), index=False, digits=3),
            "mlflow_run_id": run_id,
        },
    )
