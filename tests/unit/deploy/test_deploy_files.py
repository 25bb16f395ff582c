"""deploy/: the production files as files (what test_deploy.py runs as processes).

- deploy/dagster.mysql.yaml and deploy/dagster.postgres.yaml carry the run queue, the per-log limit, the run retries
  and the run monitoring of the repository's dagster.yaml, and every variable they read is in deploy/dagster.env.
- The systemd units are loopback processes sharing one environment file.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests import REPO_ROOT as REPO

DEPLOY = REPO / "deploy"
UNITS = {name: DEPLOY / "systemd" / f"dagster-{name}.service" for name in ("code-server", "daemon", "webserver")}


def env_file() -> dict[str, str]:
    """deploy/dagster.env as a mapping (KEY=value lines; comments and blank lines skipped)."""
    out = {}
    for line in (DEPLOY / "dagster.env").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            k, _, v = line.partition("=")
            out[k.strip()] = v.strip()
    return out


def _sections(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize("variant", ["mysql", "postgres"])
def test_the_deploy_instances_carry_the_repositorys_limits(variant):
    base, deployed = _sections(REPO / "dagster.yaml"), _sections(DEPLOY / f"dagster.{variant}.yaml")
    for key in ("concurrency", "run_retries", "run_monitoring", "telemetry"):
        assert deployed[key] == base[key], key
    assert deployed["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert list(deployed["storage"]) == [variant]
    used = set(re.findall(r"env: (\w+)", (DEPLOY / f"dagster.{variant}.yaml").read_text()))
    assert used and used <= set(env_file()), used - set(env_file())


def test_the_units_are_loopback_processes_sharing_one_environment_file():
    for name, unit in UNITS.items():
        text = unit.read_text()
        (start,) = [line for line in text.splitlines() if line.startswith("ExecStart=")]
        assert "EnvironmentFile=/etc/pseidon/dagster.env" in text and "User=pseidon" in text, name
        assert "-h 127.0.0.1" in start or name == "daemon", start
        assert "0.0.0.0" not in start and "dagster dev" not in start
    assert "dagster api grpc -h 127.0.0.1 -p 4000 -m pseidon_dagster.definitions" in UNITS["code-server"].read_text()
    workspace = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())
    assert workspace["load_from"][0]["grpc_server"] == {"host": "127.0.0.1", "port": 4000, "location_name": "pseidon"}
