"""deploy/: what this machine cannot run (Kubernetes, celery, an MLflow server) is validated as
configuration; the PostgreSQL instance file is validated against Dagster's own schema."""

from __future__ import annotations

import shutil
import subprocess

import yaml

from gbm_assets_tests.conftest import PROJECT_ROOT

DEPLOY = PROJECT_ROOT / "deploy"


def _yaml(name: str) -> dict:
    return yaml.safe_load((DEPLOY / name).read_text())


def test_postgres_instance_file_passes_dagsters_schema(tmp_path):
    from dagster._core.instance.config import dagster_instance_config

    shutil.copy(DEPLOY / "dagster-postgres.yaml", tmp_path / "dagster.yaml")
    config, custom_class = dagster_instance_config(str(tmp_path))
    assert custom_class is None
    db = config["storage"]["postgres"]["postgres_db"]
    assert {k: db[k] for k in ("hostname", "username", "password", "db_name")} == {
        "hostname": {"env": "DAGSTER_PG_HOST"}, "username": {"env": "DAGSTER_PG_USER"},
        "password": {"env": "DAGSTER_PG_PASSWORD"}, "db_name": {"env": "DAGSTER_PG_DB"},
    }  # fmt: skip  (credentials only from the environment)
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["run_coordinator"]["config"]["max_concurrent_runs"] >= 1
    assert config["run_monitoring"]["enabled"] is True


def test_helm_values_have_what_the_dagster_chart_needs():
    values = _yaml("k8s/values.yaml")
    assert values["postgresql"]["enabled"] is True
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    k8s = values["runLauncher"]["config"]["k8sRunLauncher"]
    assert any(v.startswith("GBM_DATA_ROOT=") for v in k8s["envVars"])
    assert {m["mountPath"] for m in k8s["volumeMounts"]} == {"/data/gbm"}
    deployments = values["dagster-user-deployments"]["deployments"]
    assert len(deployments) == 1
    user_code = deployments[0]
    assert {"name", "image", "dagsterApiGrpcArgs", "port"} <= set(user_code)
    assert {"repository", "tag", "pullPolicy"} <= set(user_code["image"])
    args = user_code["dagsterApiGrpcArgs"]
    assert args[args.index("--module-name") + 1] == "gbm_assets.definitions"
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    assert coordinator["type"] == "QueuedRunCoordinator"
    assert coordinator["config"]["queuedRunCoordinator"]["maxConcurrentRuns"] >= 1


def test_celery_run_config_names_redis_from_the_environment():
    config = _yaml("celery.yaml")["execution"]["config"]
    assert config["broker"] == {"env": "GBM_CELERY_BROKER"}
    assert config["backend"] == {"env": "GBM_CELERY_BACKEND"}
    assert config["include"] == ["gbm_assets.definitions"]
    assert config["config_source"]["task_acks_late"] is True


def test_mlflow_server_script_parses_and_uses_postgres_and_proxied_artifacts():
    script = DEPLOY / "mlflow-server.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    assert "postgresql://" in text and "--serve-artifacts" in text and "--artifacts-destination" in text
    assert "GBM_MLFLOW_TRACKING_URI" in text
    done = subprocess.run(["bash", str(script)], env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert done.returncode != 0 and "MLFLOW_PG_USER" in done.stderr  # refuses to start without credentials
