"""Volumes over time per subject and region, change from baseline and nadir, volumetric response category.

Thresholds (volumetric equivalents of RANO's two-dimensional criteria; a sphere's volume scales as
the 3/2 power of the product of its two largest perpendicular diameters, so +25 % in that product
is about +40 % in volume and -50 % is about -65 %), as stated in Ellingson BM, Wen PY, Cloughesy TF,
"Modified criteria for radiographic response assessment in glioblastoma clinical trials",
Neurotherapeutics 14:307-320 (2017), and used by RANO 2.0 (Wen PY et al., J Clin Oncol 41:5187, 2023):

    complete_response    volume <= CR_ML (the tumour has disappeared; default 0.1 mL, about 1-4 voxels)
    progressive_disease  volume >= nadir x (1 + 40 %) and at least `min_increase_ml` above the nadir
                         (the nadir is the smallest earlier volume, baseline included); from a zero
                         nadir, any return above CR_ML
    partial_response     volume <= baseline x (1 - 65 %)
    stable_disease       otherwise
    baseline             the subject's first time point

Applied in that order. This is volumetry in the RANO spirit, not a RANO assessment: no clinical
status, steroid dose, confirmation scans or non-enhancing disease rules.
"""

from __future__ import annotations

import pandas as pd

from gbm_assets.lib.ingest.layouts.longitudinal import split_timepoint_id

PROGRESSION_PCT = 40.0
PARTIAL_RESPONSE_PCT = -65.0
CR_ML = 0.1
RESPONSES = ("baseline", "complete_response", "partial_response", "stable_disease", "progressive_disease")
PROGRESSION_COLUMNS = [
    "cohort", "subject", "timepoint", "week", "patient_id", "roi_source", "region", "volume_ml",
    "baseline_ml", "change_from_baseline_ml", "change_from_baseline_pct",
    "nadir_ml", "change_from_nadir_ml", "change_from_nadir_pct", "response",
]  # fmt: skip


def _pct(change: float, reference: float) -> float:
    return 100.0 * change / reference if reference > 0 else float("nan")


def response_category(volume: float, baseline: float, nadir: float, *, min_increase_ml: float = 0.0,
                      progression_pct: float = PROGRESSION_PCT, partial_pct: float = PARTIAL_RESPONSE_PCT,
                      cr_ml: float = CR_ML) -> str:
    """The category of one follow-up volume (mL) given the baseline and the nadir before it (see the module docstring)."""
    if volume <= cr_ml:
        return "complete_response"
    if nadir <= cr_ml or (volume >= nadir * (1 + progression_pct / 100) and volume - nadir >= min_increase_ml):
        return "progressive_disease"
    if baseline > 0 and volume <= baseline * (1 + partial_pct / 100):
        return "partial_response"
    return "stable_disease"


def series_response(volumes: list[float], **thresholds) -> list[dict]:
    """Per time point of one subject's series (in time order): baseline, nadir, changes and category.

    Empty list for an empty series. NaN percentages where the reference volume is 0.
    """
    out, baseline, nadir = [], None, None
    for volume in map(float, volumes):
        if baseline is None:
            baseline = nadir = volume
            row = {"baseline_ml": volume, "nadir_ml": volume, "response": "baseline"}
        else:
            row = {"baseline_ml": baseline, "nadir_ml": nadir, "response": response_category(volume, baseline, nadir, **thresholds)}
        row.update(change_from_baseline_ml=volume - row["baseline_ml"], change_from_nadir_ml=volume - row["nadir_ml"])
        row.update(change_from_baseline_pct=_pct(row["change_from_baseline_ml"], row["baseline_ml"]),
                   change_from_nadir_pct=_pct(row["change_from_nadir_ml"], row["nadir_ml"]))
        out.append(row)
        nadir = min(nadir, volume)
    return out


def progression_table(burden: pd.DataFrame, **thresholds) -> tuple[pd.DataFrame, list[str]]:
    """`PROGRESSION_COLUMNS` rows from `tumor_burden` (cohort, patient_id, roi_source, region, volume_ml).

    Rows are mapped to (subject, time point) by `split_timepoint_id`; rows whose patient id is not
    `<subject>__week-<n>` are left out and named in the notes. A series is one (subject, ROI
    source, region), ordered by (week, repeat). A region absent at a time point where the subject
    has other rows of that ROI source counts as 0 mL (the tumour region vanished).

    Returns:
        (table, notes). Empty burden: an empty table with the columns.
    """
    notes: list[str] = []
    if burden.empty:
        return pd.DataFrame(columns=PROGRESSION_COLUMNS), notes
    parsed = burden["patient_id"].astype(str).map(split_timepoint_id)
    other = sorted(set(burden.loc[parsed.isna(), "patient_id"].astype(str)))
    if other:
        notes.append(f"{len(other)} patient(s) without a time point in their id (not <subject>__week-<n>), left out: {other[:10]}")
    df = burden.loc[parsed.notna(), ["cohort", "patient_id", "roi_source", "region", "volume_ml"]].copy()
    if df.empty:
        return pd.DataFrame(columns=PROGRESSION_COLUMNS), notes
    keys = pd.DataFrame(parsed[parsed.notna()].tolist(), index=df.index, columns=["subject", "timepoint", "week", "repeat"])
    df = df.join(keys)
    rows = []
    for (cohort, subject, source), g in df.groupby(["cohort", "subject", "roi_source"], sort=True):
        scans = g[["patient_id", "timepoint", "week", "repeat"]].drop_duplicates().sort_values(["week", "repeat"])
        for region, rg in g.groupby("region", sort=True):
            volumes = rg.groupby("patient_id")["volume_ml"].sum()
            series = [float(volumes.get(pid, 0.0)) for pid in scans["patient_id"]]
            for scan, volume, stats in zip(scans.itertuples(), series, series_response(series, **thresholds)):
                rows.append(dict(cohort=cohort, subject=subject, timepoint=scan.timepoint, week=int(scan.week),
                                 patient_id=scan.patient_id, roi_source=source, region=region, volume_ml=volume, **stats))
    table = pd.DataFrame(rows, columns=PROGRESSION_COLUMNS)
    return table.astype({"week": "int64", "volume_ml": float}), notes


def timepoint_problems(raw_cohort: pd.DataFrame) -> pd.DataFrame:
    """Consistency of each longitudinal subject's valid time points in `raw_cohort`.

    One row per finding (subject, patient_ids, kind, problem), kinds:
        single_timepoint   only one valid time point (allowed; no change can be measured);
        identical_images   two time points with the same image_sha256 (a scan copied twice);
        geometry_mismatch  time points whose shape, spacing or orientation differ (a different
                           scanner protocol, or another patient's images filed under this subject).
    Non-longitudinal ids are ignored. Empty input: an empty frame with those columns.
    """
    columns = ["subject", "patient_ids", "kind", "problem"]
    ok = raw_cohort[raw_cohort["status"] == "ok"] if "status" in raw_cohort else raw_cohort
    parsed = ok["patient_id"].astype(str).map(split_timepoint_id) if len(ok) else pd.Series(dtype=object)
    ok = ok.loc[parsed.notna()].assign(subject=[p[0] for p in parsed.dropna()])
    found = []
    geometry = [c for c in ("shape_x", "shape_y", "shape_z", "spacing_x_mm", "spacing_y_mm", "spacing_z_mm", "orientation") if c in ok]
    for subject, g in ok.groupby("subject", sort=True):
        ids = sorted(g["patient_id"].astype(str))
        if len(g) == 1:
            found.append((subject, ids, "single_timepoint", f"subject {subject}: a single time point ({ids[0]}); no change can be measured"))
            continue
        if "image_sha256" in g:
            for sha, same in g[g["image_sha256"].notna()].groupby("image_sha256"):
                if len(same) > 1:
                    twins = sorted(same["patient_id"].astype(str))
                    found.append((subject, twins, "identical_images", f"subject {subject}: time points {twins} have identical images (sha256 {str(sha)[:16]})"))
        if geometry:
            geo = g[geometry].astype(str).agg("|".join, axis=1)
            if geo.nunique() > 1:
                by = {k: sorted(g.loc[geo == k, "patient_id"].astype(str)) for k in sorted(set(geo))}
                found.append((subject, ids, "geometry_mismatch",
                              (f"subject {subject}: time points differ in shape/spacing/orientation ({'; '.join(f'{v}: {k}' for k, v in by.items())}); "
                               "check they are the same patient")))
    return pd.DataFrame(found, columns=columns)


def response_counts(table: pd.DataFrame) -> pd.DataFrame:
    """Follow-up rows per (roi_source, region) and response category (counts; empty -> empty frame)."""
    follow = table[table["response"] != "baseline"]
    if follow.empty:
        return pd.DataFrame()
    return follow.groupby(["roi_source", "region", "response"]).size().unstack(fill_value=0)


