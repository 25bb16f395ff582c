"""`pseidon-dagster services up|down` starts what is missing on loopback and stops only what it started."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import redis

from pseidon_dagster.devstack import services
from tests.conftest import _free_port

pytestmark = pytest.mark.integration  # starts tansu and Redis


def test_services_up_starts_missing_servers_and_down_stops_them(tmp_path):
    kport, rport = _free_port(), _free_port()
    state = tmp_path / "state"
    cmd = [sys.executable, "-m", "pseidon_dagster.cli", "services"]
    out = subprocess.run(cmd + ["up", "--state-dir", str(state), "--kafka-port", str(kport),
                                "--redis-port", str(rport)], capture_output=True, text=True, check=True).stdout
    try:
        assert f"kafka  127.0.0.1:{kport}  started" in out and f"redis  127.0.0.1:{rport}  started" in out
        assert redis.Redis(port=rport).ping()
        from confluent_kafka.admin import AdminClient

        md = AdminClient({"bootstrap.servers": f"127.0.0.1:{kport}"}).list_topics(timeout=10)
        assert md.brokers
        again = subprocess.run(cmd + ["up", "--state-dir", str(state), "--kafka-port", str(kport),
                                      "--redis-port", str(rport)], capture_output=True, text=True, check=True).stdout
        assert "already running" in again
        assert set(json.loads((state / "services.json").read_text())) == {"kafka", "redis"}
    finally:
        down = subprocess.run(cmd + ["down", "--state-dir", str(state)], capture_output=True, text=True).stdout
    assert "kafka" in down and "redis" in down
    assert not services.port_open(kport) and not services.port_open(rport)


def test_services_up_leaves_running_servers_alone(tmp_path):
    # The machine's Redis on 6379 is running: it is reported, not started, and never stopped by `down`.
    info = services.start_redis(tmp_path, 6379)
    assert info == {"name": "redis", "port": 6379, "started": False}
    services.down(tmp_path)
    assert services.port_open(6379)
