"""The code location: wires the domain packages under `defs/` together. No logic here."""

import warnings

import dagster as dg

warnings.filterwarnings("ignore", category=dg.PreviewWarning)
warnings.filterwarnings("ignore", category=dg.BetaWarning)

from gbm_assets.defs import automation, classify, ingest, masks, radiomics, segment  # noqa: E402
from gbm_assets.defs.resources import DataRootResource, MlflowResource, PartitionedParquetIOManager  # noqa: E402

ingest_job = dg.define_asset_job(
    "ingest_job",
    selection=dg.AssetSelection.assets(*ingest.assets),
    description="Validate a cohort's files and normalise its clinical table.",
)

assets = [*ingest.assets, *segment.assets, *masks.assets, *radiomics.assets, *classify.assets]

defs = dg.Definitions(
    assets=assets,
    asset_checks=[*ingest.checks, *segment.checks, *masks.checks, *radiomics.checks, *classify.checks],
    jobs=[ingest_job, *automation.build_jobs(assets)],
    sensors=automation.sensors,
    schedules=automation.schedules,
    resources={
        "data_root": DataRootResource(),
        "table_io_manager": PartitionedParquetIOManager(),
        "mlflow": MlflowResource(),
    },
)
