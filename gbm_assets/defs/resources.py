"""Resources: one data root, the IO manager that stores tables as Parquet per partition, and MLflow.

The IO manager and the MLflow resource take the data-root resource (nested resources), so setting
the data root once (`$GBM_DATA_ROOT`, or the `data_root` resource's `path`) moves tables, volumes,
the warehouse and the tracking store together.

Only DataFrames travel through the IO manager. Volumes, masks and models are files that assets
write under the data root themselves and record in their tables; nothing is pickled.
"""

import os
from pathlib import Path

import dagster as dg
import pandas as pd

from gbm_assets.defs.schemas import column_schema
from gbm_assets.lib.ingest.confine import ALLOWED_ENV, parse_allowed
from gbm_assets.lib.store.paths import DEFAULT_DATA_ROOT, DataRoot, resolve_paths, to_stored_paths
from gbm_assets.lib.store.tables import read_parquet, write_parquet_atomic
from gbm_assets.lib.store.tracking import TrackingStore, tracked_run
from gbm_assets.lib.store.warehouse import ensure_views


class DataRootResource(dg.ConfigurableResource):
    """Where cohorts, tables, volumes, the warehouse and MLflow live (made absolute)."""

    path: str = DEFAULT_DATA_ROOT
    allowed_input_dirs: str = ""
    """Directories outside a cohort folder that its files may resolve into (`os.pathsep`-separated;
    the operator's allowance, from `$GBM_ALLOWED_INPUT_DIRS`). Empty: only the cohort folder."""

    def root(self) -> DataRoot:
        return DataRoot.at(self.path)

    def allowed_inputs(self) -> list[Path]:
        return parse_allowed(self.allowed_input_dirs)


class PartitionedParquetIOManager(dg.ConfigurableIOManager):
    """Stores a DataFrame output as `tables/<asset>/<partition>.parquet` and keeps its DuckDB view.

    Unpartitioned assets are stored under the partition name `all`. Every output records its
    `dagster/column_schema` (types from the DataFrame, descriptions from `defs/schemas.py`).
    Path columns are stored relative to the data root and resolved against the current one on
    load (`lib/store/paths.py`), so a copied or moved data root reads its own files.
    """

    def _read(self, path) -> pd.DataFrame:
        return resolve_paths(read_parquet(path), self.data_root.root().root)

    data_root: dg.ResourceDependency[DataRootResource]

    def _path(self, asset_key: dg.AssetKey, partition: str | None):
        return self.data_root.root().table_file(asset_key.path[-1], partition or "all")

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame) -> None:
        if not isinstance(obj, pd.DataFrame):
            raise TypeError(f"{context.asset_key.to_user_string()}: this IO manager stores DataFrames only, got {type(obj)}")
        # the asset's own partition: an unpartitioned asset in a partitioned run is stored as `all`
        partition = context.asset_partition_key if context.has_asset_partitions else None
        path = write_parquet_atomic(to_stored_paths(obj, self.data_root.root().root), self._path(context.asset_key, partition))
        table = context.asset_key.path[-1]
        try:
            ensure_views(self.data_root.root(), [table])
        except Exception as exc:  # a user's client may hold the warehouse; the file is written regardless
            context.log.warning(f"DuckDB view {table!r} not refreshed ({exc}); {path} is written")
        context.add_output_metadata(
            {"path": dg.MetadataValue.path(str(path)), "dagster/row_count": len(obj), "sql_view": table,
             "dagster/column_schema": column_schema(table, obj)}
        )

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        """One partition's table; for an input mapped to several partitions (e.g. every cohort through
        `AllPartitionMapping`), the tables of those that were materialized, concatenated."""
        if not context.has_asset_partitions:
            return self._read(self._path(context.asset_key, None))
        keys = sorted(context.asset_partition_keys)
        if len(keys) == 1:
            return self._read(self._path(context.asset_key, keys[0]))
        paths = {key: self._path(context.asset_key, key) for key in keys}
        missing = [key for key, path in paths.items() if not path.is_file()]
        if missing:
            context.log.info(f"{context.asset_key.to_user_string()}: not materialized for {missing}; loading the others")
        frames = [self._read(path) for key, path in paths.items() if key not in missing]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


class MlflowResource(dg.ConfigurableResource):
    """MLflow tracking and the model registry for every asset: one MLflow run per materialization,
    tagged with its lineage.

    The store is `sqlite:///<data root>/mlflow.db` (artifacts in `<data root>/mlartifacts/`) unless
    `tracking_uri` names another (a tracking server). Every MLflow client gets this URI explicitly.
    """

    data_root: dg.ResourceDependency[DataRootResource]
    experiment: str = "gbm_assets"
    tracking_uri: str = ""

    def store(self) -> TrackingStore:
        return TrackingStore.for_data_root(self.data_root.root().root, self.tracking_uri or None)

    def run(self, context: dg.AssetExecutionContext, run_name: str, experiment: str | None = None):
        """Context manager: an MLflow run tagged with the Dagster run id, asset key and partition."""
        tags = {
            "dagster.run_id": context.run.run_id,
            "dagster.asset_key": context.asset_key.to_user_string(),
            "dagster.partition": context.partition_key if context.has_partition_key else "",
        }
        return tracked_run(self.store(), experiment or self.experiment, run_name, tags)


def _setting(name: str, default: str) -> str | dg.EnvVar:
    """`dg.EnvVar(name)` when the variable is set (resolved by Dagster at run time), else `default`."""
    return dg.EnvVar(name) if os.environ.get(name) else default


@dg.definitions
def resources() -> dg.Definitions:
    data_root = DataRootResource(path=_setting("GBM_DATA_ROOT", DEFAULT_DATA_ROOT),
                                 allowed_input_dirs=_setting(ALLOWED_ENV, ""))
    return dg.Definitions(
        resources={
            "data_root": data_root,
            "table_io_manager": PartitionedParquetIOManager(data_root=data_root),
            "mlflow": MlflowResource(data_root=data_root, tracking_uri=_setting("GBM_MLFLOW_TRACKING_URI", "")),
        }
    )
