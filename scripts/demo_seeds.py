"""The README's demo results as the median and range over several seeds, from one data root per seed.

    python scripts/demo_seeds.py /tmp/runs/seed7/data /tmp/runs/seed8/data /tmp/runs/seed9/data

Each argument is the data root of one `make demo` run (`DEMO_SEED=8 GBM_DATA_ROOT=... make demo`).
Prints markdown tables: per result, the median, the range (min-max) and each seed's value, so a reader
sees how much a number moves with the cohort's draw. The results are the demo's headline ones: test 3D
Dice / HD95 / pixel F1 per model input (whole tumour), CV balanced accuracy per subtype model, the
best IDH and short-survival models, and the Cox models' out-of-fold Harrell's C. Reads the tables
through the read-only SQL sandbox (`lib/store/warehouse.query`); nothing is written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

RESULTS: tuple[tuple[str, str], ...] = (
    ("segmentation (test split, whole tumour)",
     "select sequence || ' ' || metric as result, value from segmentation_metrics where split = 'test' "
     "and coalesce(region, 'whole_tumor') = 'whole_tumor' and metric in ('dice_3d', 'hd95_mm', 'f1')"),
    ("subtype (CV balanced accuracy)", "select model as result, balanced_accuracy as value from subtype_classifier"),
    ("IDH and short survival (CV balanced accuracy)",
     "select 'idh ' || model as result, balanced_accuracy as value from idh_classifier union all "
     "select 'short_survival ' || model, balanced_accuracy from short_survival_classifier"),
    ("survival (out-of-fold Harrell's C)", "select model as result, harrell_c as value from survival_model"),
)  # fmt: skip


def seed_values(root: Path, sql: str) -> pd.Series:
    """result -> value of one data root (empty when the table is absent: a gate held, a stage not run)."""
    import duckdb

    from gbm_assets.lib.store import warehouse
    from gbm_assets.lib.store.paths import DataRoot

    try:
        frame = warehouse.query(DataRoot.at(root), sql)
    except duckdb.Error:
        return pd.Series(dtype=float)
    return frame.set_index("result")["value"].astype(float)


def spread_table(values: pd.DataFrame) -> str:
    """Markdown: one row per result (index), columns = seeds; median, min-max range and each seed's value."""
    head = ["result", "median", "range", *values.columns]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for result, row in values.iterrows():
        known = row.dropna()
        cells = [f"{known.median():.3f}", f"{known.min():.3f}-{known.max():.3f}"] if len(known) else ["", ""]
        lines.append("| " + " | ".join([str(result), *cells, *(f"{v:.3f}" if pd.notna(v) else "-" for v in row)]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("roots", nargs="+", type=Path, help="data roots of make demo runs, one per seed")
    ap.add_argument("--names", nargs="*", help="column names (default: each root's parent folder name)")
    args = ap.parse_args(argv)
    names = args.names or [root.resolve().parent.name for root in args.roots]
    if len(names) != len(args.roots):
        ap.error("give one name per data root")
    for title, sql in RESULTS:
        values = pd.DataFrame({name: seed_values(root, sql) for name, root in zip(names, args.roots)})
        print(f"\n{title}\n\n{spread_table(values.sort_index())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
