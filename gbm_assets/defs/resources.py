"""Resources: the data root, and the IO manager that stores tables as Parquet per partition.

Only DataFrames travel through the IO manager. Volumes, masks and models are files that assets
write under the data root themselves and record in their tables; nothing is pickled.
"""


import pandas as pd
import dagster as dg

from gbm_assets.lib.paths import DataRoot
from gbm_assets.lib.tables import read_parquet, write_parquet_atomic
from gbm_assets.lib.warehouse import ensure_views


class DataRootResource(dg.ConfigurableResource):
    """Where cohorts, tables, volumes, the warehouse and MLflow live.

    `path` overrides `$GBM_DATA_ROOT`, which defaults to `./data`.
    """

    path: str | None = None

    def root(self) -> DataRoot:
        return DataRoot.from_env(self.path)


class PartitionedParquetIOManager(dg.ConfigurableIOManager):
    """Stores a DataFrame output as `tables/<asset>/<partition>.parquet` and keeps its DuckDB view.

    Unpartitioned assets are stored under the partition name `all`.
    """

    data_root: str | None = None

    def _path(self, asset_key: dg.AssetKey, partition: str | None):
        return DataRoot.from_env(self.data_root).table_file(asset_key.path[-1], partition or "all")

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame) -> None:
        if not isinstance(obj, pd.DataFrame):
            raise TypeError(f"{context.asset_key.to_user_string()}: this IO manager stores DataFrames only, got {type(obj)}")
        partition = context.partition_key if context.has_partition_key else None
        path = write_parquet_atomic(obj, self._path(context.asset_key, partition))
        table = context.asset_key.path[-1]
        try:
            ensure_views(DataRoot.from_env(self.data_root), [table])
        except Exception as exc:  # a user's client may hold the warehouse; the file is written regardless
            context.log.warning(f"DuckDB view {table!r} not refreshed ({exc}); {path} is written")
        context.add_output_metadata(
            {"path": dg.MetadataValue.path(str(path)), "dagster/row_count": len(obj), "sql_view": table}
        )

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        partition = context.asset_partition_key if context.has_asset_partitions else None
        return read_parquet(self._path(context.asset_key, partition))


class MlflowResource(dg.ConfigurableResource):
    """MLflow tracking for assets: one MLflow run per materialization, tagged with its lineage.

    The store defaults to `sqlite:///<data root>/mlflow.db` (artifacts in `<data root>/mlartifacts/`);
    `tracking_uri` or `$MLFLOW_TRACKING_URI` overrides it.
    """

    experiment: str = "gbm_assets"
    tracking_uri: str | None = None
    data_root: str | None = None

    def store(self):
        from gbm_assets.lib.tracking import TrackingStore

        store = TrackingStore.for_data_root(DataRoot.from_env(self.data_root).root)
        if self.tracking_uri:
            store = TrackingStore(self.tracking_uri, store.artifact_root, store.lock_dir)
        return store

    def run(self, context: dg.AssetExecutionContext, run_name: str):
        """Context manager: an MLflow run tagged with the Dagster run id, asset key and partition."""
        from gbm_assets.lib.tracking import tracked_run

        tags = {
            "dagster.run_id": context.run.run_id,
            "dagster.asset_key": context.asset_key.to_user_string(),
            "dagster.partition": context.partition_key if context.has_partition_key else "",
        }
        return tracked_run(self.store(), self.experiment, run_name, tags)
