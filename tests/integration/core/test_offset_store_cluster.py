"""The log's state on a Redis Cluster (core/offsets.py, cluster paths): a commit in three steps that never moves an
offset back, reads spread over the nodes, and messages naming the cluster. One 3-node cluster from the machine's
redis-server on loopback ports, for the module."""
from __future__ import annotations

import pytest
from redis.cluster import RedisCluster

from pseidon_dagster.core.model import IngestResult, Plan
from pseidon_dagster.core.offsets import LeaseLost, OffsetError, OffsetStore, connect, redis_where
from tests.integration.core.test_redis_cluster import redis_cluster

LOG = "clicks"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with redis_cluster(tmp_path_factory.mktemp("cluster")) as settings:
        yield settings


@pytest.fixture
def ostore(cluster, group) -> OffsetStore:
    """The store on the cluster: the `lease` fixture (tests/integration/core/conftest.py) takes this one."""
    return OffsetStore(connect(cluster), group)


def staged(plan_id: str) -> IngestResult:
    return IngestResult(LOG, plan_id=plan_id, read=3, written=3, offsets={0: (0, 10)})


def test_connect_makes_a_cluster_client_named_by_its_nodes(cluster, ostore):
    assert isinstance(ostore.r, RedisCluster) and ostore.cluster
    nodes = sorted(f"127.0.0.1:{p}" for _, p in cluster.hosts)
    shown = redis_where(ostore.r)
    assert shown.startswith("Redis Cluster at ") and sorted(shown[len("Redis Cluster at "):].split(",")) == nodes


def test_a_commit_on_a_cluster_moves_every_offset_and_clears_the_plan(ostore, lease):
    plan = Plan(LOG, {p: (0, 10 + p) for p in range(6)}, 1, "p1")  # offsets in several slots
    ostore.save_plan(plan, lease)
    ostore.record_paths(LOG, lease, finals=["/l/x"])
    ostore.commit(plan, staged("p1"), lease)
    assert ostore.get(LOG, list(range(6))) == {p: 10 + p for p in range(6)}
    assert ostore.all_offsets(LOG) == {p: 10 + p for p in range(6)}
    assert ostore.load_plan(LOG) is None and ostore.manifest(LOG) == (set(), set())
    assert [r.plan_id for r in ostore.unreported(LOG)] == ["p1"]


def test_a_commit_on_a_cluster_never_moves_an_offset_back(ostore, lease, group):
    plan = Plan(LOG, {0: (0, 10), 1: (0, 10)}, 1, "p2")
    ostore.save_plan(plan, lease)
    ostore.set(LOG, {1: 12})
    with pytest.raises(OffsetError, match=f"^{LOG}\\[1\\]: the stored offset 12 is past this plan's end 10; it was "
                                          "moved while the run held the lease"):
        ostore.commit(plan, staged("p2"), lease)
    assert ostore.get(LOG, [0, 1]) == {0: 10, 1: 12}  # partition 0 went forward, 1 stayed
    assert ostore.load_plan(LOG) == plan  # not finished: the next run sees it
    ostore.set(LOG, {1: 10})
    ostore.commit(plan, staged("p2"), lease)
    assert ostore.load_plan(LOG) is None and ostore.get(LOG, [0, 1]) == {0: 10, 1: 10}


def test_a_commit_on_a_cluster_checks_the_lease_and_the_plan_first(ostore, lease):
    plan = Plan(LOG, {0: (0, 10)}, 1, "p3")
    ostore.save_plan(Plan(LOG, {0: (0, 10)}, 1, "other"), lease)
    with pytest.raises(OffsetError, match="the stored plan is other, not p3"):
        ostore.commit(plan, staged("p3"), lease)
    ostore.save_plan(plan, lease)
    ostore.r.set(ostore.lease_key(LOG), "99|someone-else")
    with pytest.raises(LeaseLost, match="before committing plan p3"):
        ostore.commit(plan, staged("p3"), lease)
    assert ostore.get(LOG, [0]) == {0: None}


def test_reading_many_logs_on_a_cluster(ostore, lease):
    ostore.set("a", {0: 1, 1: 2})
    ostore.set("b", {0: 3})
    ostore.save_plan(Plan(LOG, {0: (0, 1)}, 1, "p4"), lease)
    states = ostore.read_many({"a": [0, 1], "b": [0, 1], LOG: [0]})
    assert states["a"].stored == {0: 1, 1: 2} and states["b"].stored == {0: 3, 1: None}
    assert states[LOG].plan.plan_id == "p4" and states[LOG].lease == lease.value
