"""Derived views: SQL over the table views, created beside them in both ways into the warehouse.

A table view reads one table's Parquet files; a derived view reads table views, so it answers from
whatever its upstream tables hold now (a new cohort's features appear in it with no extra step).
`warehouse.sandbox` (what `gbm-assets sql` runs) and `warehouse.ensure_views` (`warehouse.duckdb`)
create each derived view whose upstream tables all have files, after the table views.

`notebook_features` is the study notebook's table: one row per cohort, patient and ROI source
(`ground_truth`, `predicted`), with

- `<region>_volume_ml` from `tumor_burden` (voxel count x voxel volume; 0 for an empty region), and
  `<region>_max_3d_diameter_mm`: PyRadiomics' shape `Maximum3DDiameter` (largest distance between
  mesh vertices, as the notebook computed it) from `radiomic_features`;
- `<sequence>_<region>_mean`, `_variance` (firstorder `Mean`, `Variance`) and `_glnu` (GLRLM
  `GrayLevelNonUniformity`, see `NOTEBOOK_GLNU`) per sequence and region;
- `subtype`, `survival_months`, `event`, `idh_status` from `clinical_records`.

Regions are the contract's (`whole_tumor`, `tumor_core`, `enhancing`, `edema`, `necrosis`). The
notebook's "non-enhancing tumour" is `necrosis`, canonical label 1 (necrotic / non-enhancing core),
and its "enhancing tumour" is `enhancing` (label 3). A region an ROI cannot represent (a binary
predicted mask has only `whole_tumor`) or that PyRadiomics excluded (see `radiomics_exclusions`)
is NULL, never 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import duckdb

from gbm_assets.lib.contract import REGIONS, SEQUENCES

__all__ = ["DERIVED_VIEWS", "NOTEBOOK_GLNU", "DerivedView", "create_derived_views", "derived_views_for", "notebook_features_sql"]

NOTEBOOK_GLNU: tuple[str, str] = ("glrlm", "GrayLevelNonUniformity")
"""(feature_class, feature) of the notebook's grey-level non-uniformity (GLRLM's; GLSZM and GLDM
have one of the same name in `radiomic_features` too)."""
NOTEBOOK_STATS: Mapping[str, tuple[str, str]] = MappingProxyType(
    {"mean": ("firstorder", "Mean"), "variance": ("firstorder", "Variance"), "glnu": NOTEBOOK_GLNU}
)
KEYS = ("cohort", "patient_id", "roi_source")


@dataclass(frozen=True)
class DerivedView:
    """A view defined by SQL over table views.

    Attributes:
        name: the view's name.
        select: the SELECT statement (no CREATE).
        requires: the tables it reads; the view is created only when all have files.
    """

    name: str
    select: str
    requires: tuple[str, ...]

    def create_sql(self) -> str:
        return f'CREATE OR REPLACE VIEW "{self.name}" AS {self.select}'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def notebook_features_sql() -> str:
    """The SELECT of `notebook_features` (module docstring), its columns built from the contract."""
    burden = ",\n    ".join(f"max(volume_ml) FILTER (WHERE region = {_lit(r)}) AS {r}_volume_ml" for r in REGIONS)
    shape = [f"max(value) FILTER (WHERE feature_class = 'shape' AND feature = 'Maximum3DDiameter' AND region = {_lit(r)}) "
             f"AS {r}_max_3d_diameter_mm" for r in REGIONS]  # fmt: skip
    stats = [f"max(value) FILTER (WHERE sequence = {_lit(s)} AND region = {_lit(r)} AND feature_class = {_lit(fc)} "
             f"AND feature = {_lit(f)}) AS {s}_{r}_{name}"
             for s in SEQUENCES for r in REGIONS for name, (fc, f) in NOTEBOOK_STATS.items()]  # fmt: skip
    features = ",\n    ".join(shape + stats)
    keys = ", ".join(KEYS)
    burden_cols = ", ".join(f"b.{r}_volume_ml" for r in REGIONS)
    feature_cols = ", ".join([f"f.{r}_max_3d_diameter_mm" for r in REGIONS] +
                             [f"f.{s}_{r}_{n}" for s in SEQUENCES for r in REGIONS for n in NOTEBOOK_STATS])  # fmt: skip
    return f"""WITH rois AS (
  SELECT DISTINCT {keys} FROM tumor_burden
  UNION SELECT DISTINCT {keys} FROM radiomic_features WHERE roi_source IN ('ground_truth', 'predicted')
), burden AS (
  SELECT {keys},
    {burden}
  FROM tumor_burden GROUP BY {keys}
), features AS (
  SELECT {keys},
    {features}
  FROM radiomic_features GROUP BY {keys}
)
SELECT r.cohort, r.patient_id, r.roi_source, {burden_cols}, {feature_cols},
  c.subtype, c.survival_months, c.event, c.idh_status
FROM rois r
LEFT JOIN burden b USING ({keys})
LEFT JOIN features f USING ({keys})
LEFT JOIN clinical_records c ON c.cohort = r.cohort AND c.patient_id = r.patient_id"""


DERIVED_VIEWS: Mapping[str, DerivedView] = MappingProxyType(
    {"notebook_features": DerivedView("notebook_features", notebook_features_sql(),
                                      ("radiomic_features", "tumor_burden", "clinical_records"))}
)


def derived_views_for(tables: Iterable[str]) -> list[DerivedView]:
    """The derived views whose required tables are all among `tables`, in definition order."""
    have = set(tables)
    return [v for v in DERIVED_VIEWS.values() if set(v.requires) <= have]


def create_derived_views(con: duckdb.DuckDBPyConnection, tables: Iterable[str], only: Iterable[str] | None = None) -> list[str]:
    """Create (or replace) on `con` the derived views that `tables` (names of existing table views)
    can serve; `only` restricts it to those names. Returns the names created.

    A view whose SQL does not bind (an upstream table written by an older version, missing a column)
    is created as a view that raises DuckDB's error, with the reason, when it is queried: the other
    views, and every query not touching it, keep working.
    """
    wanted = None if only is None else set(only)
    made = []
    for view in derived_views_for(tables):
        if wanted is not None and view.name not in wanted:
            continue
        try:
            con.execute(view.create_sql())
        except duckdb.Error as exc:
            reason = f"view {view.name} is unavailable: its upstream tables ({', '.join(view.requires)}) do not fit it: {exc}"
            con.execute(f'CREATE OR REPLACE VIEW "{view.name}" AS SELECT error({_lit(reason)}) AS error')
        made.append(view.name)
    return made
