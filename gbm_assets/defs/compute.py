"""The compute resource: where per-patient work runs (a local process pool, or a Dask cluster).

`backend: local` (the default) runs a process pool on this machine; `backend: dask` sends each
patient to the workers of a Dask distributed scheduler at `scheduler_address`
(`dask scheduler` + `dask worker` on any machines that mount the data root at the same path).
Set from the environment: `GBM_COMPUTE_BACKEND`, `GBM_DASK_SCHEDULER`, `GBM_COMPUTE_WORKERS`.
The work itself lives in `gbm_assets.lib.store.compute`.
"""

import os
from contextlib import contextmanager

import dagster as dg

from gbm_assets.lib.store.compute import BACKENDS, ComputeUnavailable, open_compute


class ComputeResource(dg.ConfigurableResource):
    """Per-patient fan-out: `with compute.open(data_root) as c: c.map_patients(fn, items)`."""

    backend: str = "local"
    """'local' (a process pool on this machine) or 'dask' (a Dask distributed cluster)."""
    workers: int = 0
    """local: processes (0 = the CPUs this process may use; 1 = in this process). dask: ignored."""
    scheduler_address: str = ""
    """dask: the scheduler, e.g. tcp://10.0.0.5:8786."""

    @contextmanager
    def open(self, data_root=None, workers: int | None = None):
        """A checked `Compute` (`dg.Failure` naming the address, path and worker when it cannot start).

        `workers` overrides the resource's for the local backend (an asset's own setting)."""
        if self.backend not in BACKENDS:
            raise dg.Failure(description=f"compute backend {self.backend!r}: use one of {', '.join(BACKENDS)}")
        try:
            with open_compute(self.backend, workers=workers or self.workers or None,
                              scheduler_address=self.scheduler_address,
                              data_root=None if data_root is None else str(data_root)) as compute:  # fmt: skip
                yield compute
        except ComputeUnavailable as exc:
            raise dg.Failure(description=str(exc)) from exc


def _setting(name: str, default):
    """`dg.EnvVar(name)` when the variable is set (resolved by Dagster at run time), else `default`."""
    if not os.environ.get(name):
        return default
    return dg.EnvVar.int(name) if isinstance(default, int) else dg.EnvVar(name)


@dg.definitions
def compute_resources() -> dg.Definitions:
    return dg.Definitions(
        resources={
            "compute": ComputeResource(
                backend=_setting("GBM_COMPUTE_BACKEND", "local"),
                workers=_setting("GBM_COMPUTE_WORKERS", 0),
                scheduler_address=_setting("GBM_DASK_SCHEDULER", ""),
            )
        }
    )
