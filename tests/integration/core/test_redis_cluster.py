"""Several :redis-conf hosts mean Redis Cluster: offsets, plans and locks work the same on a real 3-node cluster
(started here from the machine's redis-server on loopback ports)."""
from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pseidon_dagster.core.config import RedisSettings
from pseidon_dagster.core.ingest import ingest
from pseidon_dagster.core.offsets import OffsetStore, connect
from pseidon_dagster.devstack.services import wait_port
from tests.integration.core.test_ingest import add_log, make_messages


def cluster_ports(n: int) -> list[int]:
    """Free ports whose cluster-bus port (port + 10000) is free too and below 65536."""
    import random
    import socket

    out: list[int] = []
    while len(out) < n:
        port = random.randint(20000, 40000)
        try:
            for p in (port, port + 10000):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", p))
        except OSError:
            continue
        if port not in out:
            out.append(port)
    return out


@contextlib.contextmanager
def redis_cluster(root: Path) -> Iterator[RedisSettings]:
    """A 3-node Redis Cluster from the machine's redis-server on loopback ports, each node's files under ROOT/<port>;
    stopped on exit. Skips (fails under CI) without redis-server and redis-cli."""
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if not (server and cli):
        (pytest.fail if os.environ.get("CI") else pytest.skip)("needs redis-server and redis-cli")
    ports = cluster_ports(3)
    procs = []
    for port in ports:
        d = root / str(port)
        d.mkdir()
        procs.append(subprocess.Popen(
            [server, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes", "--cluster-config-file",
             str(d / "nodes.conf"), "--save", "", "--appendonly", "no", "--dir", str(d)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    try:
        assert all(wait_port(p, 10) for p in ports)
        subprocess.run([cli, "--cluster", "create", *[f"127.0.0.1:{p}" for p in ports], "--cluster-replicas", "0",
                        "--cluster-yes"], check=True, capture_output=True, timeout=30)
        for _ in range(50):
            info = subprocess.run([cli, "-p", str(ports[0]), "cluster", "info"], capture_output=True, text=True)
            if "cluster_state:ok" in info.stdout:
                break
            time.sleep(0.2)
        yield RedisSettings(hosts=tuple(("127.0.0.1", p) for p in ports))
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)


@pytest.fixture
def cluster(tmp_path):
    """A fresh cluster for each test (test_offset_store_cluster.py shares one per module)."""
    with redis_cluster(tmp_path) as settings:
        yield settings


def test_offsets_in_redis_cluster(settings, log_table, kafka, group, cluster):
    s = dataclasses.replace(settings, redis=cluster)
    assert s.redis.cluster
    store = OffsetStore(connect(s.redis), s.etl_group)
    topic = kafka.topic(3)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, make_messages(90))

    result = ingest(s, spec, store)

    assert result.committed and result.written == 90
    assert store.all_offsets(topic) == {0: 30, 1: 30, 2: 30}
    assert store.load_plan(topic) is None and store.r.get(store.lease_key(topic)) is None
    # keys spread over the nodes, under the original's names
    assert store.r.get(f"/{group}/offsets/{topic}/2") == "30"
