"""Render the README's pictures of the clinical analyses from a data root's materialized tables.

    python scripts/readme_figures.py --data-root data --out docs/figures

writes `location.png` (a tumour over the MNI152 template, three planes), `progression.png` (volume over
time for up to three subjects of a longitudinal cohort) and `survival.png` (Kaplan-Meier curves by
subtype with the log-rank p). It draws with the renderers the assets use (`lib.location.figure` through
`locate_patient`, `lib.progression.figure.subject_plot`, `lib.survival.analysis.kaplan_meier_png`), on
the tables `tumor_location`, `raw_cohort`, `lesion_masks`, `tumor_progression` and `clinical_records`
of the data root; a picture whose tables are absent is skipped with a message. Nothing is written
under the data root.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
import pandas as pd


def read_table(root: Path, table: str) -> pd.DataFrame:
    """Every cohort's Parquet file of `table` under `root`, paths resolved (empty frame when none)."""
    from gbm_assets.lib.store.paths import resolve_paths

    files = sorted((root / "tables" / table).glob("*.parquet"))
    frames = [pd.read_parquet(f) for f in files]
    return resolve_paths(pd.concat(frames, ignore_index=True), root) if frames else pd.DataFrame()


def location_figure(root: Path) -> bytes | None:
    """Re-localise the best-registered patient (highest brain-mask Dice) and draw its tumour on MNI152."""
    from gbm_assets.lib.location.atlas import load_atlas
    from gbm_assets.lib.location.patient import Roi, locate_patient
    from gbm_assets.lib.radiomics.tasks import images_of

    location, raw = read_table(root, "tumor_location"), read_table(root, "raw_cohort")
    if location.empty or raw.empty:
        return None
    ok = location[(location["status"] == "ok") & (location["region"] == "whole_tumor")]
    if ok.empty:
        return None
    best = ok.sort_values(["brain_dice", "roi_source"], ascending=[False, True]).iloc[0]
    row = raw[(raw["cohort"] == best["cohort"]) & (raw["patient_id"] == best["patient_id"])].iloc[0]
    scheme = row["label_scheme"] if best["roi_source"] == "ground_truth" else "binary"
    if best["roi_source"] == "predicted":
        masks = read_table(root, "lesion_masks")
        hit = masks[(masks["cohort"] == best["cohort"]) & (masks["patient_id"] == best["patient_id"])]
        scheme = str(hit["roi_scheme"].iloc[0]) if len(hit) and "roi_scheme" in hit else scheme
    roi = Roi(str(best["roi_source"]), str(best["mask_path"]), str(scheme))
    located = locate_patient(str(best["cohort"]), str(best["patient_id"]), images_of(row), [roi], load_atlas(), picture=True)
    return located.picture


def progression_figure(root: Path, subjects: int = 3, source: str = "predicted") -> bytes | None:
    """`subject_plot` of up to `subjects` subjects (largest and smallest change first), side by side;
    `source`'s volumes (predicted masks by default), the other ROI source where it is absent."""
    import imageio.v3 as iio

    from gbm_assets.lib.progression.figure import subject_plot

    table = read_table(root, "tumor_progression")
    if table.empty:
        return None
    source = source if (table["roi_source"] == source).any() else str(table["roi_source"].iloc[0])
    shown = table[(table["roi_source"] == source) & (table["region"] == "whole_tumor")]
    last = shown.sort_values("week").groupby("subject").tail(1).sort_values("change_from_baseline_pct")
    picked = list(dict.fromkeys([*last["subject"].head(1), *last["subject"].tail(1), *last["subject"]]))[:subjects]
    images = [iio.imread(io.BytesIO(subject_plot(shown[shown["subject"] == s], s, source)))[..., :3] for s in picked]
    height = max(i.shape[0] for i in images)
    images = [np.pad(i, ((0, height - i.shape[0]), (0, 0), (0, 0)), constant_values=255) for i in images]
    return iio.imwrite("<bytes>", np.concatenate(images, axis=1), extension=".png")


def survival_figure(root: Path) -> bytes | None:
    """Kaplan-Meier curves by true subtype from `clinical_records` (unknown events taken as deaths, as the view says)."""
    from gbm_assets.lib.survival.analysis import kaplan_meier_by_group, kaplan_meier_png

    clinical = read_table(root, "clinical_records")
    if clinical.empty or clinical["survival_months"].notna().sum() < 2:
        return None
    clinical = clinical[clinical["survival_months"].notna() & clinical["subtype"].notna()]
    events = pd.to_numeric(clinical["event"], errors="coerce") if "event" in clinical else pd.Series(np.nan, index=clinical.index)
    curves, medians, p = kaplan_meier_by_group(clinical["survival_months"], None if events.isna().all() else events.fillna(1),
                                               clinical["subtype"])
    cohorts = ", ".join(sorted(set(clinical["cohort"])))
    return kaplan_meier_png(curves, medians, p, title=f"Survival by subtype ({cohorts})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", type=Path, required=True, help="a data root with materialized tables")
    ap.add_argument("--out", type=Path, default=Path("docs/figures"))
    ap.add_argument("--progression-source", default="predicted", choices=("predicted", "ground_truth"),
                    help="whose volumes the progression picture shows")
    ap.add_argument("--only", nargs="+", choices=("location", "progression", "survival"), help="draw only these")
    args = ap.parse_args(argv)
    root = args.data_root.resolve()
    if not (root / "tables").is_dir():
        print(f"{root}: no tables/ folder; materialize the assets first (make demo)", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    written = 0
    draws = {"location": location_figure, "survival": survival_figure,
             "progression": lambda r: progression_figure(r, source=args.progression_source)}
    for name, draw in draws.items():
        if args.only and name not in args.only:
            continue
        png = draw(root)
        if png is None:
            print(f"{name}.png: skipped (its tables are absent or empty under {root / 'tables'})")
            continue
        (args.out / f"{name}.png").write_bytes(png)
        written += 1
        print(f"{args.out / f'{name}.png'}: {len(png) // 1024} KiB")
    return 0 if written else 1


if __name__ == "__main__":
    sys.exit(main())
