"""The code location: every module under `gbm_assets/defs/` autoloaded (the `dg` project layout). No logic here."""

import warnings
from pathlib import Path

import dagster as dg

warnings.filterwarnings("ignore", category=dg.PreviewWarning)
warnings.filterwarnings("ignore", category=dg.BetaWarning)


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
