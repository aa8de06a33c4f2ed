"""What a researcher sees in the Dagster UI after a small materialization: pictures shown inline
(without a click) and links to MLflow, on `segmentation_metrics`, `lesion_masks` and `subtype_classifier`.

One tiny synthetic cohort (8 patients, 48 x 48 x 24 voxels) goes through the graph in this
process before `dagster dev` starts, driven by the demo's `run_demo` with tiny run configs:
preprocessing, one U-Net (flair, base width 4, 1 epoch), its metrics, the lesion masks,
ground-truth radiomics (independent of how good the tiny U-Net is) and the subtype classifier.
An MLflow server serves the data root's store on a free port and `GBM_MLFLOW_UI_URL` points the
metadata there, so the pictures (MLflow artifact URLs in short markdown values, which Dagster
renders inline) load in the browser. The daemon's automation is off in this instance
(`auto_materialize: enabled: false`), so no background run competes for the two cores.

`GBM_UPDATE_SCREENSHOTS=1` rewrites docs/screenshots/ (the asset graph and the
segmentation_metrics page); without it the tracked PNGs are left alone.
"""

from __future__ import annotations

import json
import os
import re
import urllib.parse
import urllib.request
from pathlib import Path

import dagster as dg
import pytest
import yaml

from gbm_assets_tests.conftest import PROJECT_ROOT, resources
from gbm_assets_tests.e2e.conftest import (
    free_port,
    start_dagster_dev,
    start_mlflow_ui,
    stop_dagster_dev,
    stop_process_group,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

COHORT = "pictures"
PATIENTS = 8
SHAPE, SPACING = (48, 48, 24), (3.0, 3.0, 6.0)
MODEL_INPUT = "flair"
SCREENSHOTS = PROJECT_ROOT / "docs" / "screenshots"
UPDATE_SCREENSHOTS = os.environ.get("GBM_UPDATE_SCREENSHOTS") == "1"
PICTURE_WAIT_MS = 60_000
RUN_CONFIGS = {  # file name -> `ops:` of the stage's run config
    "prepare.yaml": {"preprocessed_volumes": {"config": {"target_spacing_mm": 3.0, "size": 48}}},
    "unet.yaml": {"unet_model": {"config": {"base": 4, "epochs": 1, "batch_size": 8, "schedule": "onecycle"}}},
    "score.yaml": {"radiomic_features": {"config": {"roi_sources": ["ground_truth"], "workers": 1}}},
    "classifier.yaml": {
        "subtype_training_table": {"config": {"roi_source": "ground_truth"}},
        "subtype_classifier": {"config": {"n_splits": 2, "n_repeats": 1, "models": ["mlp", "majority"], "top_k_features": 5}},
    },
}
PAGES = {  # asset -> (metadata entries holding pictures, hrefs one of whose links must point into MLflow)
    "segmentation_metrics": (("test_overlay", "test_slices_gif"), ("#/experiments/", "/get-artifact?")),
    "lesion_masks": (("overview",), ("#/experiments/",)),
    "subtype_classifier": (("plot_roc",), ("#/experiments/", "#/models/")),
}
AUTOMATION_OFF = "\n# e2e: no automation runs beside the test\nauto_materialize:\n  enabled: false\n  use_sensors: false\n"


def stages():
    from gbm_assets.demo import Stage

    radiomics = ("radiomic_features", "radiomic_features_wide", "radiomics_exclusions", "radiomics_provenance")
    return (
        Stage("e2e_prepare", ("raw_cohort", "clinical_records", "preprocessed_volumes", "training_slices"), "cohort", "prepare.yaml"),
        Stage("e2e_splits", ("training_splits",), None),
        Stage("e2e_unet", ("unet_model", "unet_champion", "segmentation_metrics"), "input", "unet.yaml"),
        Stage("e2e_score", ("lesion_masks", *radiomics), "cohort", "score.yaml"),
        Stage("e2e_classifier", ("subtype_training_table", "subtype_classifier"), None, "classifier.yaml"),
    )


def materialize_small(home: Path, data_root: Path) -> None:
    """The tiny cohort through the graph, in this process, on the instance at `home`."""
    from gbm_assets.demo import run_demo
    from gbm_assets.lib.synth.phantom import SynthOptions, write_cohort

    with open(home / "dagster.yaml", "a") as out:
        out.write(AUTOMATION_OFF)
    write_cohort(data_root / "cohorts", COHORT, PATIENTS, seed=3, options=SynthOptions(shape=SHAPE, spacing=SPACING))
    configs = home.parent / "run_configs"
    configs.mkdir()
    for name, ops in RUN_CONFIGS.items():
        (configs / name).write_text(yaml.safe_dump({"ops": ops}))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DAGSTER_HOME", str(home))
        with dg.DagsterInstance.get() as instance:
            instance.add_dynamic_partitions("cohorts", [COHORT])
            run_demo(COHORT, (MODEL_INPUT,), configs, instance, stages=stages(), extra_resources=resources(data_root), log=print)


@pytest.fixture
def servers(chromium_page, tmp_path, monkeypatch):
    """`dagster dev` after the small materialization, and `mlflow server` over its data root."""
    import mlflow

    port = free_port()
    mlflow_url = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("GBM_MLFLOW_UI_URL", mlflow_url)  # read by the metadata links, here and in dagster dev
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    started = {}

    def prepare(home: Path, data_root: Path) -> None:
        materialize_small(home, data_root)
        started["mlflow"] = start_mlflow_ui(data_root, port, tmp_path / "mlflow.log")  # boots beside dagster dev

    try:
        server = start_dagster_dev(tmp_path, prepare)
        try:
            yield server, mlflow_url
        finally:
            stop_dagster_dev(server)
    finally:
        if "mlflow" in started:
            stop_process_group(started["mlflow"])
        mlflow.set_tracking_uri(None)  # mlflow exports the URI to the environment; do not leak it to other tests


def loaded_pictures(page, mlflow_url: str) -> list[dict]:
    """Every <img> served by the MLflow server on the page: src, complete, naturalWidth."""
    return page.evaluate(
        """(base) => [...document.querySelectorAll('img')].filter(i => i.src.startsWith(base))
                     .map(i => ({src: i.src, complete: i.complete, width: i.naturalWidth}))""",
        mlflow_url,
    )


def run_known_to_mlflow(mlflow_url: str, href: str) -> bool:
    """Whether the MLflow server knows the run a link names (`#/experiments/<e>/runs/<id>` or `run_uuid=<id>`)."""
    found = re.search(r"/runs/([0-9a-f]{32})", href) or re.search(r"run_uuid=([0-9a-f]{32})", href)
    if not found:
        return False
    query = urllib.parse.urlencode({"run_id": found.group(1)})
    with urllib.request.urlopen(f"{mlflow_url}/api/2.0/mlflow/runs/get?{query}", timeout=15) as response:
        return json.load(response)["run"]["info"]["run_id"] == found.group(1)


def screenshot_asset_graph(page) -> None:
    """docs/screenshots/asset_graph.png: every group expanded, the sidebar hidden, on a wider page."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1800, "height": 1150})
    page.locator("button:has([aria-label='panel_show_right'])").last.click()  # hide the asset tree
    page.locator("button:has([aria-label='settings'])").last.click()  # the graph's settings menu
    page.get_by_role("menuitem", name="Expand all groups").click()
    page.keyboard.press("Escape")
    page.get_by_text("lesion_masks", exact=True).first.wait_for()
    page.wait_for_timeout(4000)  # edges and materialization colours settle
    page.screenshot(path=str(SCREENSHOTS / "asset_graph.png"))
    page.set_viewport_size({"width": 1400, "height": 900})


def test_asset_pages_show_pictures_inline_and_link_to_mlflow(servers, chromium_page):
    server, mlflow_url = servers
    page = chromium_page

    page.goto(f"{server.url}/asset-groups")  # the whole asset graph, one box per stage (asset group)
    for group in ("ingest", "preprocess", "segment", "masks", "radiomics", "classify"):
        page.locator(f'[data-tooltip="{group}"]').first.wait_for()
    if UPDATE_SCREENSHOTS:
        screenshot_asset_graph(page)

    for asset, (pictures, link_parts) in PAGES.items():
        page.goto(f"{server.url}/assets/{asset}")
        for entry in pictures:  # the metadata rows are there, with no click
            page.get_by_role("row").filter(has_text=entry).first.wait_for()
        page.wait_for_function(
            """([base, n]) => { const imgs = [...document.querySelectorAll('img')].filter(i => i.src.startsWith(base));
                                return imgs.length >= n && imgs.every(i => i.complete && i.naturalWidth > 0); }""",
            arg=[mlflow_url, len(pictures)],
            timeout=PICTURE_WAIT_MS,
        )
        shown = loaded_pictures(page, mlflow_url)
        assert len(shown) >= len(pictures) and all(p["width"] > 0 for p in shown), (asset, shown)

        hrefs = page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)")
        to_mlflow = [h for h in hrefs if h.startswith(mlflow_url) and any(part in h for part in link_parts)]
        assert to_mlflow, f"{asset}: no link into MLflow ({link_parts}) among {hrefs}"
        assert any(run_known_to_mlflow(mlflow_url, h) for h in to_mlflow), (asset, to_mlflow)
        if asset == "subtype_classifier":
            assert any("#/models/" in h for h in to_mlflow), to_mlflow  # the registered model version
        if asset == "segmentation_metrics" and UPDATE_SCREENSHOTS:  # the page scrolled to its pictures
            row = page.get_by_role("row").filter(has_text="comparison_test").first
            row.evaluate("r => r.scrollIntoView({block: 'start'})")
            page.screenshot(path=str(SCREENSHOTS / "segmentation_metrics.png"))
