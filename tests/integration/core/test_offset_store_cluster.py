"""The log's state on a Redis Cluster (core/offsets.py, cluster paths): a commit in three steps that never moves an
offset back, reads spread over the nodes, and messages naming the cluster. One 3-node cluster from the machine's
redis-server on loopback ports, for the module."""
from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import time

import pytest
from redis.cluster import RedisCluster

from pseidon_dagster.core.config import RedisSettings
from pseidon_dagster.core.lease import Lease
from pseidon_dagster.core.model import IngestResult, Plan
from pseidon_dagster.core.offsets import LeaseLost, OffsetError, OffsetStore, connect, redis_where
from pseidon_dagster.devstack.services import wait_port

LOG = "clicks"


def cluster_ports(n: int) -> list[int]:
    """Free ports whose cluster-bus port (port + 10000) is free too."""
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


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if not (server and cli):
        (pytest.fail if os.environ.get("CI") else pytest.skip)("needs redis-server and redis-cli")
    ports = cluster_ports(3)
    root = tmp_path_factory.mktemp("cluster")
    procs = [subprocess.Popen([server, "--port", str(p), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                               "--cluster-config-file", str(root / f"{p}.conf"), "--save", "", "--appendonly", "no",
                               "--dir", str(root)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for p in ports]
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
def cstore(cluster, group) -> OffsetStore:
    return OffsetStore(connect(cluster), group)


@pytest.fixture
def lease(cstore):
    held = Lease.acquire(cstore, LOG, owner="run-1", ttl_s=30)
    yield held
    held.release()


def staged(plan_id: str) -> IngestResult:
    return IngestResult(LOG, plan_id=plan_id, read=3, written=3, offsets={0: (0, 10)})


def test_connect_makes_a_cluster_client_named_by_its_nodes(cluster, cstore):
    assert isinstance(cstore.r, RedisCluster) and cstore.cluster
    nodes = sorted(f"127.0.0.1:{p}" for _, p in cluster.hosts)
    shown = redis_where(cstore.r)
    assert shown.startswith("Redis Cluster at ") and sorted(shown[len("Redis Cluster at "):].split(",")) == nodes


def test_a_commit_on_a_cluster_moves_every_offset_and_clears_the_plan(cstore, lease):
    plan = Plan(LOG, {p: (0, 10 + p) for p in range(6)}, 1, "p1")  # offsets in several slots
    cstore.save_plan(plan, lease)
    cstore.record_paths(LOG, lease, finals=["/l/x"])
    cstore.commit(plan, staged("p1"), lease)
    assert cstore.get(LOG, list(range(6))) == {p: 10 + p for p in range(6)}
    assert cstore.all_offsets(LOG) == {p: 10 + p for p in range(6)}
    assert cstore.load_plan(LOG) is None and cstore.manifest(LOG) == (set(), set())
    assert [r.plan_id for r in cstore.unreported(LOG)] == ["p1"]


def test_a_commit_on_a_cluster_never_moves_an_offset_back(cstore, lease, group):
    plan = Plan(LOG, {0: (0, 10), 1: (0, 10)}, 1, "p2")
    cstore.save_plan(plan, lease)
    cstore.set(LOG, {1: 12})
    with pytest.raises(OffsetError, match=f"^{LOG}\\[1\\]: the stored offset 12 is past this plan's end 10; it was "
                                          "moved while the run held the lease"):
        cstore.commit(plan, staged("p2"), lease)
    assert cstore.get(LOG, [0, 1]) == {0: 10, 1: 12}  # partition 0 went forward, 1 stayed
    assert cstore.load_plan(LOG) == plan  # not finished: the next run sees it
    cstore.set(LOG, {1: 10})
    cstore.commit(plan, staged("p2"), lease)
    assert cstore.load_plan(LOG) is None and cstore.get(LOG, [0, 1]) == {0: 10, 1: 10}


def test_a_commit_on_a_cluster_checks_the_lease_and_the_plan_first(cstore, lease):
    plan = Plan(LOG, {0: (0, 10)}, 1, "p3")
    cstore.save_plan(Plan(LOG, {0: (0, 10)}, 1, "other"), lease)
    with pytest.raises(OffsetError, match="the stored plan is other, not p3"):
        cstore.commit(plan, staged("p3"), lease)
    cstore.save_plan(plan, lease)
    cstore.r.set(cstore.lease_key(LOG), "99|someone-else")
    with pytest.raises(LeaseLost, match="before committing plan p3"):
        cstore.commit(plan, staged("p3"), lease)
    assert cstore.get(LOG, [0]) == {0: None}


def test_reading_many_logs_on_a_cluster(cstore, lease):
    cstore.set("a", {0: 1, 1: 2})
    cstore.set("b", {0: 3})
    cstore.save_plan(Plan(LOG, {0: (0, 1)}, 1, "p4"), lease)
    states = cstore.read_many({"a": [0, 1], "b": [0, 1], LOG: [0]})
    assert states["a"].stored == {0: 1, 1: 2} and states["b"].stored == {0: 3, 1: None}
    assert states[LOG].plan.plan_id == "p4" and states[LOG].lease == lease.value
