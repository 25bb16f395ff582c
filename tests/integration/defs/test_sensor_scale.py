"""The sensor's cost does not grow per log: a tick over many logs makes the same number of Kafka requests, Redis round
trips and SQL statements as a tick over a few (real tansu, Redis, MariaDB; the requests are counted, not faked), and
a tick over 200 logs stays far inside the 5 s that 2,000 logs may take (bench/bench_sensor.py measures those).

Also: the batched reads agree with the per-log ones -- watermarks (tansu answers ListOffsets with the same numbers as
the per-partition watermark query), offsets, plans and leases, on Redis and on a real Redis Cluster."""
from __future__ import annotations

import collections
import dataclasses
import json
import statistics
import time

import dagster as dg
import pytest
import redis as redis_lib
import sqlalchemy as sa
from confluent_kafka import Producer
from dagster._core.test_utils import create_run_for_test

from pseidon_dagster.core.ingest import Ingestor
from pseidon_dagster.core.kafka import KafkaSource, KafkaUnavailable
from pseidon_dagster.core.lag import measure, measure_many
from pseidon_dagster.core.lease import Lease
from pseidon_dagster.core.offsets import OffsetError, OffsetStore, connect
from pseidon_dagster.defs.ingest.constants import LOG_TAG, RESOURCE_KEY
from pseidon_dagster.devstack.services import create_topics
from tests.integration.core.test_ingest import add_log, make_messages
from tests.integration.core.test_redis_cluster import cluster  # noqa: F401 - the real 3-node cluster fixture
from tests.integration.defs.test_sensor import requested, tick


class Counter:
    """Counts the calls that go to a server: Kafka admin/consumer requests (through KafkaSource), Redis round trips
    (one per packed send of a connection, a pipeline or MGET is one; not a new connection's handshake), SQL
    statements (pseidon_logs and Dagster's storage alike) and Dagster run-record queries."""

    KAFKA = ("describe_topics", "list_offsets", "list_topics", "get_watermark_offsets", "offsets_for_times")

    def __init__(self, monkeypatch, instance):
        self.n: collections.Counter = collections.Counter()
        counter = self

        class Proxy:
            def __init__(self, client, kind):
                self._client, self._kind = client, kind

            def __getattr__(self, name):
                attr = getattr(self._client, name)
                if name not in Counter.KAFKA:
                    return attr

                def counted(*a, **kw):
                    counter.n[f"kafka {name}"] += 1
                    return attr(*a, **kw)
                return counted

        admin, consumer = KafkaSource.admin, KafkaSource.consumer
        monkeypatch.setattr(KafkaSource, "admin", lambda self: Proxy(admin(self), "admin"))
        monkeypatch.setattr(KafkaSource, "consumer", lambda self: Proxy(consumer(self), "consumer"))
        send = redis_lib.connection.AbstractConnection.send_packed_command

        def counted_send(conn, packed, *a, **kw):
            if not _handshake(packed):
                counter.n["redis round trips"] += 1
            return send(conn, packed, *a, **kw)
        monkeypatch.setattr(redis_lib.connection.AbstractConnection, "send_packed_command", counted_send)
        records = instance.get_run_records

        def counted_records(*a, **kw):
            counter.n["dagster run queries"] += 1
            return records(*a, **kw)
        monkeypatch.setattr(instance, "get_run_records", counted_records)
        self._listener = lambda *a: counter.n.update(["sql statements"])
        sa.event.listen(sa.engine.Engine, "before_cursor_execute", self._listener)

    def close(self):
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", self._listener)

    def take(self) -> dict:
        out = dict(self.n)
        self.n.clear()
        return out


def _handshake(packed) -> bool:
    """A command a new Redis connection sends before any of ours (HELLO, CLIENT SETINFO, AUTH, SELECT)."""
    head = packed if isinstance(packed, (bytes, bytearray, memoryview)) else packed[0]
    name = bytes(head[:64]).split(b"\r\n")[2].upper()
    return name in (b"HELLO", b"CLIENT", b"AUTH", b"SELECT")


def make_logs(kafka_bootstrap, log_table, group, n: int, partitions: int = 3) -> list[str]:
    """N topics with one message in each partition, and their pseidon_logs rows."""
    names = [f"scale-{group}-{i:04d}" for i in range(n)]
    assert create_topics(kafka_bootstrap, names, partitions) == names
    p = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 20})
    for name in names:
        for part in range(partitions):
            p.produce(name, value=f"{1_795_000_000_000}|{name}|x".encode(), partition=part)
    assert p.flush(60) == 0
    t = sa.Table("pseidon_logs", sa.MetaData(), autoload_with=log_table.engine)
    with log_table.engine.begin() as c:
        c.execute(sa.insert(t), [dict(log=name, format="txt:sep=pipe;ts=0", output_format="gzip",
                                      base_partition="lake", log_partition=f"raw/{name}", quarantine="quarantine",
                                      log_group=group, enabled=1) for name in names])
    return names


def set_enabled(log_table, logs: list[str], group: str) -> None:
    t = sa.Table("pseidon_logs", sa.MetaData(), autoload_with=log_table.engine)
    with log_table.engine.begin() as c:
        c.execute(sa.update(t).where(t.c.log_group == group).values(enabled=0))
        c.execute(sa.update(t).where(t.c.log.in_(logs)).values(enabled=1))


def test_round_trips_per_tick_do_not_grow_with_the_number_of_logs(monkeypatch, pseidon, instance, log_table,
                                                                 kafka_bootstrap, store, group):
    names = make_logs(kafka_bootstrap, log_table, group, 200)
    # in both ticks: a log whose run is in progress, one whose lease is held, one without a topic
    create_run_for_test(instance, job_name="ingest_job", tags={LOG_TAG: names[1]}, status=dg.DagsterRunStatus.STARTED)
    lease = Lease.acquire(store, names[2], owner="dagster:backfill-run", ttl_s=60)
    add_log(log_table, group, f"missing-{group}")
    counter = Counter(monkeypatch, instance)
    counts = {}
    try:
        for n in (20, 200):
            set_enabled(log_table, names[:n] + [f"missing-{group}"], group)
            counter.take()  # count the ticks only
            first = tick(instance, pseidon)  # every log has lag: a run request each
            assert set(requested(first)) == set(names[:n]) - {names[1], names[2]}
            counts[n, "lag"] = counter.take()
            # offsets at the high watermarks: a quiet tick (with the cursor of the first)
            store.r.mset({store.offset_key(name, p): 1 for name in names[:n] for p in range(3)})
            counter.take()
            quiet = tick(instance, pseidon, first.cursor)
            assert quiet.run_requests == []
            counts[n, "quiet"] = counter.take()
            store.r.delete(*[store.offset_key(name, p) for name in names[:n] for p in range(3)])
    finally:
        counter.close()
        lease.release()
    print(counts)
    for kind in ("lag", "quiet"):
        assert counts[20, kind] == counts[200, kind], (kind, counts[20, kind], counts[200, kind])
    few = counts[200, "lag"]
    # one metadata request; earliest + latest ListOffsets (600 partitions: one call each); no per-partition query
    assert few["kafka describe_topics"] == 1 and few["kafka list_offsets"] == 2
    assert "kafka get_watermark_offsets" not in few and "kafka list_topics" not in few
    # offsets, plans and leases of every log in one MGET; then etl-kafka-work-queue for the dashboards (defs/ops/
    # queues.py: the failing logs read, the list rewritten in one transaction) -- a few round trips, whatever the logs
    assert few["redis round trips"] == 1 + QUEUE_ROUND_TRIPS
    assert few["dagster run queries"] == 2  # the unfinished runs of every log; the queued ones (for the work queue)


QUEUE_ROUND_TRIPS = 3


def test_a_tick_over_200_logs_is_far_inside_the_budget(pseidon, instance, log_table, kafka_bootstrap, group):
    names = make_logs(kafka_bootstrap, log_table, group, 200)
    first = tick(instance, pseidon)
    assert len(first.run_requests) == 200
    instance.add_dynamic_partitions("logs", names)
    took = []
    for _ in range(3):
        t0 = time.perf_counter()
        result = tick(instance, pseidon)
        took.append(time.perf_counter() - t0)
        assert len(result.run_requests) == 200
    # 2,000 logs may take 5 s; 200 take ~0.25 s on an idle 2-core machine (bench/bench_sensor.py for the figures)
    assert statistics.median(took) < 1.5, took


def test_batched_watermarks_match_the_per_partition_query(settings, kafka):
    src = KafkaSource(settings)
    topics = {kafka.topic(3): 3, kafka.topic(1): 1, kafka.topic(4): 4}
    for i, (t, parts) in enumerate(topics.items()):
        kafka.produce(t, make_messages(10 * (i + 1), partitions=parts))
    many = src.watermarks_many({t: list(range(parts)) for t, parts in topics.items()})
    assert many == {t: src.watermarks(t) for t in topics}
    assert any(hi > 0 for marks in many.values() for _, hi in marks.values())
    found = src.topic_partitions([*topics, "no-such-topic-here"])
    assert found == {**{t: list(range(parts)) for t, parts in topics.items()}, "no-such-topic-here": None}
    # a partition the batched request cannot answer is asked alone, the old way (which names it)
    t = next(iter(topics))
    with pytest.raises(KafkaUnavailable, match=rf"watermarks of {t}\[7\]"):
        src.watermarks_many({t: [0, 7]})


def test_measure_many_agrees_with_the_per_log_reads(settings, log_table, kafka, store, group):
    quiet, planned, leased, bad = (kafka.topic(2) for _ in range(4))
    for t in (quiet, planned, leased, bad):
        add_log(log_table, group, t)
        kafka.produce(t, make_messages(8, partitions=2))
    store.set(quiet, {0: 2, 1: 2})  # 4 messages per partition: lag 4
    with pytest.raises(RuntimeError):
        Ingestor(settings, log_table.get(planned, group), store,
                 before_commit=lambda r: (_ for _ in ()).throw(RuntimeError("crash"))).run()
    lease = Lease.acquire(store, leased, owner="someone", ttl_s=30)
    store.r.set(store.offset_key(bad, 1), "x")
    try:
        probes = measure_many([quiet, planned, leased, bad, "nope-" + group], KafkaSource(settings), store)
    finally:
        lease.release()
    assert probes[quiet].lag == measure(quiet, KafkaSource(settings), store)
    assert probes[quiet].lag.lag == 4 and probes[quiet].lag.stored == {0: 2, 1: 2}
    assert probes[planned].lag.plan_id == store.load_plan(planned).plan_id
    assert probes[leased].lag is None and probes[leased].lease.endswith("|someone")
    assert isinstance(probes[bad].error, OffsetError) and "holds 'x'" in str(probes[bad].error)
    assert "does not exist" in str(probes["nope-" + group].error)


def test_read_many_on_redis_cluster(settings, group, cluster):  # noqa: F811
    s = dataclasses.replace(settings, redis=cluster)
    store = OffsetStore(connect(s.redis), s.etl_group)
    logs = {f"log{i}": list(range(i % 4 + 1)) for i in range(60)}
    for i, (log, parts) in enumerate(logs.items()):
        if i % 3:
            store.set(log, {p: 100 * i + p for p in parts[1:]})
        if i % 5 == 0:
            store.r.set(store.plan_key(log), json.dumps({"plan_id": f"p{i}", "log": log, "created_ms": 1,
                                                         "ranges": {"0": [0, 5]}}))
        if i % 7 == 0:
            store.r.set(store.lease_key(log), f"{i}|owner{i}")
    sent = []
    send = redis_lib.connection.AbstractConnection.send_packed_command

    def counted(conn, packed, *a, **kw):
        if not _handshake(packed):
            sent.append(conn.port)
        return send(conn, packed, *a, **kw)
    redis_lib.connection.AbstractConnection.send_packed_command = counted
    try:
        states = store.read_many(logs)
    finally:
        redis_lib.connection.AbstractConnection.send_packed_command = send
    assert len(sent) <= 3 and len(set(sent)) == len(sent)  # one round trip per node at most
    for i, (log, parts) in enumerate(logs.items()):
        st = states[log]
        assert st.stored == store.get(log, parts)
        assert st.lease == store.r.get(store.lease_key(log))
        assert (st.plan.plan_id if st.plan else None) == (f"p{i}" if i % 5 == 0 else None)


def test_the_schedule_skips_busy_and_retrying_logs_without_a_query_per_log(monkeypatch, pseidon, instance, log_table,
                                                                          group):
    import datetime as dt

    from pseidon_dagster.defs.ingest.schedules import ingest_schedule

    for log in ("s-run", "s-retry", "s-retried", "s-failed", *(f"s-{i}" for i in range(30))):
        add_log(log_table, group, log)
    create_run_for_test(instance, job_name="ingest_job", tags={LOG_TAG: "s-run"}, status=dg.DagsterRunStatus.STARTED)
    for log in ("s-retry", "s-retried"):
        create_run_for_test(instance, job_name="ingest_job", tags={LOG_TAG: log, "dagster/will_retry": "true"},
                            status=dg.DagsterRunStatus.FAILURE)
    create_run_for_test(instance, job_name="ingest_job", tags={LOG_TAG: "s-retried"},
                        status=dg.DagsterRunStatus.SUCCESS)  # the retry ran: s-retried is free again
    create_run_for_test(instance, job_name="ingest_job", tags={LOG_TAG: "s-failed"},
                        status=dg.DagsterRunStatus.FAILURE)  # failed for good
    queries = []
    records = dg.DagsterInstance.get_run_records  # (a schedule context opens its own instance from the test's ref)
    monkeypatch.setattr(dg.DagsterInstance, "get_run_records",
                        lambda self, *a, **kw: queries.append(1) or records(self, *a, **kw))
    # `with`: the context opens its own instance, and closing it at garbage collection instead would restore a stale
    # Dagster defs-state storage for whatever test runs then (later definition loads fail on a dead instance weakref)
    with dg.build_schedule_context(instance=instance, resources={RESOURCE_KEY: pseidon},
                                   scheduled_execution_time=dt.datetime(2026, 11, 20, 7, 10, tzinfo=dt.timezone.utc)
                                   ) as ctx:
        reqs = ingest_schedule(ctx)
    assert sorted(r.partition_key for r in reqs) == sorted(["s-retried", "s-failed", *(f"s-{i}" for i in range(30))])
    assert len(queries) == 4  # unfinished runs, recent failures to be retried, then one per such log
