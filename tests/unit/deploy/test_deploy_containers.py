"""deploy/docker and deploy/k8s: runs as containers or Kubernetes Jobs, so runs of different logs execute on
different machines.

No Docker daemon or Kubernetes cluster runs here, so what is checked is what can be without one:
- deploy/docker/dagster.yaml loads as a Dagster instance (storage swapped for SQLite in a temporary copy; PostgreSQL
  storage is tested in test_deploy.py) whose run launcher is dagster-docker's DockerRunLauncher as configured and whose
  run queue carries the repository's limits;
- the compose file's services run the code location, the webserver (published on the host's loopback only) and the
  daemon with the workspace the image holds, and every variable the launcher passes to a run is given to them;
- the Helm values carry the repository's limits in the chart's keys, and their run-launcher block, in the chart's
  camelCase-to-snake_case mapping, is accepted by dagster-k8s's K8sRunLauncher (instantiated with a kubeconfig file
  naming a loopback API server it never calls); the code location the user deployment serves is importable.
"""
from __future__ import annotations

import importlib
import re

import dagster as dg
import yaml

from tests import REPO_ROOT as REPO

DOCKER = REPO / "deploy" / "docker"
K8S = REPO / "deploy" / "k8s"
BASE = yaml.safe_load((REPO / "dagster.yaml").read_text())


def snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def snake_keys(value):
    if isinstance(value, dict):
        return {snake(k): snake_keys(v) for k, v in value.items()}
    return value


def test_the_docker_instance_launches_runs_as_containers_within_the_repositorys_limits(tmp_path, monkeypatch):
    deployed = yaml.safe_load((DOCKER / "dagster.yaml").read_text())
    for key in ("concurrency", "run_retries", "run_monitoring", "telemetry"):
        assert deployed[key] == BASE[key], key
    local = {k: v for k, v in deployed.items() if k != "storage"}  # SQLite under tmp_path instead of PostgreSQL
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(local))
    for var in deployed["run_launcher"]["config"]["env_vars"]:
        monkeypatch.delenv(var, raising=False)
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        launcher = instance.run_launcher
        assert type(launcher).__name__ == "DockerRunLauncher"
        assert launcher.networks == ["pseidon"]
        assert {"PSEIDON_CONF", "DAGSTER_PG_PASSWORD"} <= set(launcher.env_vars)
        assert "pseidon-lake:/var/lib/pseidon" in launcher.container_kwargs["volumes"]
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        queue = instance.get_concurrency_config().run_queue_config  # what the daemon's run queue applies
        assert queue.max_concurrent_runs == BASE["concurrency"]["runs"]["max_concurrent_runs"]
        assert queue.tag_concurrency_limits == [{"key": "log", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}]


def test_the_compose_services_serve_the_code_location_the_image_holds():
    compose = yaml.safe_load((DOCKER / "docker-compose.yaml").read_text())
    services = compose["services"]
    code = services["code"]["command"]
    assert code[:3] == ["dagster", "code-server", "start"]
    assert code[code.index("-m") + 1] == "pseidon_dagster.definitions"
    workspace = yaml.safe_load((DOCKER / "workspace.yaml").read_text())["load_from"][0]["grpc_server"]
    assert workspace["host"] == "code" and str(workspace["port"]) == code[code.index("-p") + 1]
    assert services["webserver"]["ports"] == ["127.0.0.1:3000:3000"]  # the UI on the host's loopback only
    assert not any("ports" in s for name, s in services.items() if name != "webserver")
    assert "/var/run/docker.sock:/var/run/docker.sock" in services["daemon"]["volumes"]
    image = compose["x-pseidon"]["image"]
    assert services["code"]["environment"]["DAGSTER_CURRENT_IMAGE"] == image  # what DockerRunLauncher starts
    dockerfile = (DOCKER / "Dockerfile").read_text()
    for src in re.findall(r"^COPY (.+) \S+$", dockerfile, re.M):
        for path in src.split():
            assert (REPO / path).exists(), path
    extras = re.search(r"pip install --no-cache-dir '\.\[([a-z0-9,]+)\]'", dockerfile).group(1).split(",")
    pyproject = (REPO / "pyproject.toml").read_text()
    for extra in extras:
        assert re.search(rf"^{extra} = \[", pyproject, re.M), f"extra {extra} not in pyproject.toml"
    # the variables the launcher hands a run are the ones the services have (env_file .env = deploy/dagster.env)
    launcher_vars = set(yaml.safe_load((DOCKER / "dagster.yaml").read_text())["run_launcher"]["config"]["env_vars"])
    env_file = (REPO / "deploy" / "dagster.env").read_text()
    known = set(re.findall(r"^#? ?([A-Z_]+)=", env_file, re.M)) | set(compose["x-pseidon"]["environment"])
    assert launcher_vars <= known, launcher_vars - known


def test_the_helm_values_carry_the_limits_and_a_run_launcher_dagster_k8s_accepts(tmp_path, monkeypatch):
    values = yaml.safe_load((K8S / "values.yaml").read_text())
    queue = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    runs = BASE["concurrency"]["runs"]
    assert queue["maxConcurrentRuns"] == runs["max_concurrent_runs"]
    assert queue["tagConcurrencyLimits"] == runs["tag_concurrency_limits"]
    assert values["concurrency"]["pools"]["defaultLimit"] == BASE["concurrency"]["pools"]["default_limit"]
    assert snake_keys(values["dagsterDaemon"]["runRetries"]) == BASE["run_retries"]
    assert snake_keys(values["dagsterDaemon"]["runMonitoring"]) == BASE["run_monitoring"]

    (deployment,) = values["dagster-user-deployments"]["deployments"]
    args = deployment["dagsterApiGrpcArgs"]
    importlib.import_module(args[args.index("-m") + 1])
    conf = next(e["value"] for e in deployment["env"] if e["name"] == "PSEIDON_CONF")
    mounts = {m["name"]: m["mountPath"] for m in deployment["volumeMounts"]}
    volumes = {v["name"]: v for v in deployment["volumes"]}
    assert conf.startswith(mounts["pseidon-conf"] + "/") and "secret" in volumes["pseidon-conf"]
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "here",
        "clusters": [{"name": "here", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "here", "user": {"token": "unused"}}],
        "contexts": [{"name": "here", "context": {"cluster": "here", "user": "here"}}]}))
    block = snake_keys(values["runLauncher"]["config"]["k8sRunLauncher"])
    block["resources"] = values["runLauncher"]["config"]["k8sRunLauncher"]["resources"]  # Kubernetes' own keys
    block["labels"] = values["runLauncher"]["config"]["k8sRunLauncher"]["labels"]
    instance_yaml = {
        "run_launcher": {"module": "dagster_k8s", "class": "K8sRunLauncher", "config": {
            **block, "load_incluster_config": False, "kubeconfig_file": str(kubeconfig),
            "dagster_home": "/opt/dagster/dagster_home", "instance_config_map": "pseidon-instance",
            "job_namespace": "pseidon", "service_account_name": "pseidon-dagster"}},
        "telemetry": {"enabled": False},
    }
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(instance_yaml))
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        launcher = instance.run_launcher
        assert type(launcher).__name__ == "K8sRunLauncher"
        assert launcher.resources == {"requests": {"cpu": "1", "memory": "768Mi"}, "limits": {"memory": "2Gi"}}
        assert launcher.image_pull_policy == "IfNotPresent"
