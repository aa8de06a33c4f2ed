"""Metadata helpers shared by every stage: pictures, tables and MLflow links as Dagster metadata values,
and `check_result`, through which every asset check names its partition and the value it found.

Pictures: the Dagster UI renders a markdown value inline (without a click) only when its text is
short (under ~1,000 characters), so a picture served at a URL (an MLflow artifact, see
`artifact_url`) is shown as `![alt](url)`; without a URL the PNG is embedded as base64 (shown
behind "[Show Markdown]"). Keep embedded pictures small: every byte lands in the event log.
"""

from __future__ import annotations

import base64
import math
import os
import urllib.parse
from collections.abc import Mapping

import dagster as dg
import numpy as np
import pandas as pd

MLFLOW_UI_ENV = "GBM_MLFLOW_UI_URL"
"""Where `mlflow ui` is served for the data root's store (default `DEFAULT_MLFLOW_UI`)."""
DEFAULT_MLFLOW_UI = "http://127.0.0.1:5000"


def ui_url(path: str = "") -> str:
    """`<MLflow UI base URL><path>`; the base is `$GBM_MLFLOW_UI_URL`, else http://127.0.0.1:5000."""
    base = (os.environ.get(MLFLOW_UI_ENV) or DEFAULT_MLFLOW_UI).rstrip("/")
    return f"{base}{path}"


def mlflow_ui_command(tracking_uri: str) -> str:
    """The shell command that serves the MLflow UI for `tracking_uri` at `ui_url()`."""
    parsed = urllib.parse.urlparse(ui_url())
    return f"mlflow ui --backend-store-uri {tracking_uri} --host {parsed.hostname or '127.0.0.1'} --port {parsed.port or 5000}"


def run_url(experiment_id: str, run_id: str) -> dg.MetadataValue:
    """A clickable link to an MLflow run in the MLflow UI."""
    return dg.MetadataValue.url(ui_url(f"/#/experiments/{experiment_id}/runs/{run_id}"))


def model_version_url(model_name: str, version: str) -> dg.MetadataValue:
    """A clickable link to a registered model version in the MLflow UI."""
    return dg.MetadataValue.url(ui_url(f"/#/models/{urllib.parse.quote(model_name)}/versions/{version}"))


def artifact_url(run_id: str, path: str) -> str:
    """The URL at which the MLflow UI serves the run's artifact `path` (e.g. `report/roc.png`)."""
    return ui_url(f"/get-artifact?{urllib.parse.urlencode({'path': path, 'run_uuid': run_id})}")


def mlflow_links(tracking_uri: str, experiment_id: str, run_id: str, model_name: str | None = None,
                 version: str | None = None) -> dict[str, dg.MetadataValue]:
    """Metadata entries: the run's link, the model version's link (when given) and the `mlflow ui` command."""
    out = {"mlflow_run": run_url(experiment_id, run_id)}
    if model_name and version:
        out["mlflow_model_version"] = model_version_url(model_name, version)
    out["mlflow_ui_command"] = dg.MetadataValue.text(mlflow_ui_command(tracking_uri))
    return out


def image_markdown(data: bytes, alt: str, mime: str = "image/png") -> str:
    """An inline markdown image (`![alt](data:<mime>;base64,...)`)."""
    return f"![{alt}](data:{mime};base64,{base64.b64encode(data).decode()})"


def image_metadata(data: bytes | None, alt: str, mime: str = "image/png", url: str | None = None) -> dg.MetadataValue:
    """One picture as a metadata value that the Dagster UI renders.

    With `url` (where the picture is served, e.g. `artifact_url`): a short `![alt](url)` that the UI
    shows inline, plus a link to the full-size picture. Without: the bytes embedded as base64.
    """
    if url:
        return dg.MetadataValue.md(f"![{alt}]({url})\n\n[{alt} (full size)]({url})")
    if data is None:
        raise ValueError(f"{alt}: neither the picture's bytes nor its url")
    return dg.MetadataValue.md(image_markdown(data, alt, mime))


def images_metadata(images: Mapping[str, bytes]) -> dg.MetadataValue:
    """Several PNGs as one markdown value, each under its name."""
    return dg.MetadataValue.md("\n\n".join(f"**{name}**\n\n{image_markdown(data, name)}" for name, data in images.items()))


def format_number(value, digits: int = 3) -> str:
    """A float for people: `digits` decimals, or scientific notation (`5.7e-06`) when it would round
    to 0 (or is huge), so a small p-value never shows as 0. Non-floats pass through as str."""
    if isinstance(value, bool) or not isinstance(value, float):
        return str(value)
    if math.isnan(value) or math.isinf(value) or value == 0:
        return str(value) if value != 0 else "0"
    if abs(value) < 0.5 * 10 ** -digits or abs(value) >= 1e6:
        return f"{value:.{max(digits - 1, 1)}e}"
    return f"{value:.{digits}f}"


def table_metadata(df: pd.DataFrame, index: bool = True, digits: int | None = None) -> dg.MetadataValue:
    """A DataFrame as a markdown table ("none" when empty). With `digits`, floats are shown with that
    many decimals, or in scientific notation when they would round to 0 (p-values)."""
    if not len(df):
        return dg.MetadataValue.md("none")
    if digits is not None:
        df = df.copy()
        for col in df.columns:
            if pd.api.types.is_float_dtype(df[col]):
                df[col] = [format_number(float(v), digits) for v in df[col]]
    return dg.MetadataValue.md(df.to_markdown(index=index))


def check_partition() -> str:
    """The partition the running asset check evaluates: its key, "unpartitioned", or "unknown (called
    outside a run)" when a test calls the check function directly."""
    try:
        context = dg.AssetCheckExecutionContext.get()
    except dg.DagsterInvariantViolationError:
        return "unknown (called outside a run)"
    return context.partition_key if context.has_partition_key else "unpartitioned"


def check_result(passed: bool, value, expected: str, *, severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
                 description: str | None = None, metadata: Mapping | None = None) -> dg.AssetCheckResult:
    """An asset check result that says where and what failed, the same way for every check.

    Metadata `partition` (the cohort, model input or "unpartitioned"), `value` (what the check found:
    a number where there is one, so the UI can plot it) and `expected` (the threshold, as text, so a
    constant is not plotted as a series), then the check's own `metadata`. A failure's description
    starts with "<partition>: <value>, expected <expected>", so the sidebar names it without a click.
    """
    partition = check_partition()
    if isinstance(value, (bool, np.bool_)):
        value = bool(value)
    elif isinstance(value, np.integer):
        value = int(value)
    elif isinstance(value, np.floating):
        value = float(value)
    if not passed:
        found = format_number(value) if isinstance(value, float) else str(value)
        description = f"{partition}: {found}, expected {expected}" + (f"; {description}" if description else "")
    return dg.AssetCheckResult(
        passed=bool(passed),
        severity=severity,
        description=description,
        metadata={"partition": partition, "value": value, "expected": expected, **(metadata or {})},
    )
