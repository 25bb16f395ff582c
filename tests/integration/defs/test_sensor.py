"""ingest_sensor against the real servers: pseidon_logs on MariaDB, offsets in Redis, Kafka on tansu.

It requests exactly the logs with lag, keeps the `logs` partitions in sync with the table, never requests the same
plan twice, honours :sensor-min-lag / :sensor-max-wait-ms, replays stored plans, and survives bad rows and a dead
Kafka without hanging.
"""
from __future__ import annotations

import dataclasses
import json
import socket
import time

import dagster as dg
import pytest
from dagster._core.test_utils import create_run_for_test

from pseidon_dagster.core.ingest import Ingestor
from pseidon_dagster.defs.ingest.constants import LAG_TAG, LOG_TAG, REASON_TAG, RESOURCE_KEY
from pseidon_dagster.defs.ingest.partitions import logs
from pseidon_dagster.defs.ingest.resources import PseidonResource
from pseidon_dagster.defs.ingest.sensors import SensorUnavailable, ingest_sensor
from tests.conftest import write_conf
from tests.integration.core.test_ingest import add_log, make_messages


def tick(instance, resource, cursor=None) -> dg.SensorResult:
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor, resources={RESOURCE_KEY: resource})
    result = ingest_sensor(ctx)
    assert isinstance(result, dg.SensorResult)
    return result


def apply_partitions(instance, result: dg.SensorResult) -> None:
    """What the daemon does with the tick's dynamic partition requests."""
    for req in result.dynamic_partitions_requests or []:
        if isinstance(req, dg.AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
        else:
            for key in req.partition_keys:
                instance.delete_dynamic_partition(req.partitions_def_name, key)


def partition_changes(result: dg.SensorResult) -> tuple[set, set]:
    added, deleted = set(), set()
    for req in result.dynamic_partitions_requests or []:
        (added if isinstance(req, dg.AddDynamicPartitionsRequest) else deleted).update(req.partition_keys)
    return added, deleted


def requested(result: dg.SensorResult) -> dict[str, dg.RunRequest]:
    return {r.partition_key: r for r in result.run_requests or []}


# --- tests ------------------------------------------------------------------------------------------------------

def test_requests_exactly_the_logs_with_lag_and_syncs_partitions(pseidon, instance, log_table, kafka, group):
    busy, quiet, disabled, other, broken = (kafka.topic(3) for _ in range(5))
    for t in (busy, quiet, disabled, other, broken):
        add_log(log_table, group, t)
    log_table.set_enabled(disabled, False)
    log_table.upsert([{**log_table.rows()[0], "log": other, "log_group": "someone-else"}])
    log_table.upsert([{**log_table.rows(group)[0], "log": broken, "format": "txt:sep=pipe"}])  # no ts: invalid
    for t in (busy, disabled, other, broken):
        kafka.produce(t, make_messages(30, partitions=3))

    first = tick(instance, pseidon)
    assert set(requested(first)) == {busy}
    req = requested(first)[busy]
    assert req.tags[LOG_TAG] == busy and req.tags[LAG_TAG] == "30" and "lag 30" in req.tags[REASON_TAG]
    assert req.run_key.startswith(f"{busy}:")
    # enabled rows of this group that validate become partitions; the broken row is reported, not a partition
    assert partition_changes(first) == ({busy, quiet}, set())
    apply_partitions(instance, first)
    assert set(instance.get_dynamic_partitions(logs.name)) == {busy, quiet}

    # nothing changed: nothing requested, no partition change
    second = tick(instance, pseidon, first.cursor)
    assert second.run_requests == [] and partition_changes(second) == (set(), set())
    assert broken in second.skip_reason.skip_message and "bad row" in second.skip_reason.skip_message

    # new data on the quiet log: only that log is requested (busy's plan was requested already)
    kafka.produce(quiet, make_messages(5, partitions=3))
    third = tick(instance, pseidon, second.cursor)
    assert set(requested(third)) == {quiet}

    # a new row appears, one is disabled, one removed: partitions follow, only the new one with lag is requested
    fresh = kafka.topic(3)
    add_log(log_table, group, fresh)
    kafka.produce(fresh, make_messages(3, partitions=3))
    log_table.set_enabled(busy, False)
    log_table.delete(quiet)
    fourth = tick(instance, pseidon, third.cursor)
    assert partition_changes(fourth) == ({fresh}, {busy, quiet})
    assert set(requested(fourth)) == {fresh}
    apply_partitions(instance, fourth)
    assert set(instance.get_dynamic_partitions(logs.name)) == {fresh}
    cursor = json.loads(fourth.cursor)
    assert set(cursor["requested"]) == {fresh}

    # re-enabled: the partition comes back, and its unchanged plan is requested again (the cursor forgot it)
    log_table.set_enabled(busy, True)
    fifth = tick(instance, pseidon, fourth.cursor)
    assert partition_changes(fifth) == ({busy}, set()) and set(requested(fifth)) == {busy}
    assert requested(fifth)[busy].run_key == req.run_key  # same plan: the daemon's run_key check dedupes it too


def test_min_lag_and_max_wait(tmp_path, settings, instance, log_table, kafka, group):
    topic = kafka.topic(3)
    add_log(log_table, group, topic)
    kafka.produce(topic, make_messages(6, partitions=3))
    res = PseidonResource(config_path=str(write_conf(
        tmp_path / "p.edn", settings, **{"sensor-min-lag": 100, "sensor-max-wait-ms": 60_000})))

    first = tick(instance, res)
    assert first.run_requests == []
    assert "lag 6 waiting 0s of 60s" in first.skip_reason.skip_message
    cursor = json.loads(first.cursor)
    since = cursor["waiting"][topic]
    assert abs(since - time.time() * 1000) < 30_000

    # still inside the wait: nothing; the first-seen time is kept
    second = tick(instance, res, first.cursor)
    assert second.run_requests == [] and json.loads(second.cursor)["waiting"][topic] == since

    # once the lag has waited :sensor-max-wait-ms the quiet log is run
    cursor["waiting"][topic] = since - 61_000
    third = tick(instance, res, json.dumps(cursor))
    assert set(requested(third)) == {topic}
    assert "waited" in requested(third)[topic].tags[REASON_TAG]
    assert topic not in json.loads(third.cursor)["waiting"]


def test_a_stored_plan_warrants_a_run(tmp_path, settings, instance, log_table, kafka, store, group):
    topic = kafka.topic(3)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, make_messages(9, partitions=3))

    def boom(result):
        raise RuntimeError("crash before commit")

    with pytest.raises(RuntimeError):
        Ingestor(settings, spec, store, before_commit=boom).run()
    plan = store.load_plan(topic)
    assert plan is not None and store.get(topic, [0, 1, 2]) == {0: None, 1: None, 2: None}

    res = PseidonResource(config_path=str(write_conf(tmp_path / "p.edn", settings, **{"sensor-min-lag": 1000})))
    result = tick(instance, res)
    assert set(requested(result)) == {topic}
    assert f"replay stored plan {plan.plan_id}" in requested(result)[topic].tags[REASON_TAG]


def test_a_log_whose_lease_is_held_by_a_backfill_is_left_alone(pseidon, instance, log_table, kafka, store, group):
    from pseidon_dagster.core.lease import Lease

    topic = kafka.topic(1)
    add_log(log_table, group, topic)
    kafka.produce(topic, make_messages(3, partitions=1))
    lease = Lease.acquire(store, topic, owner="dagster:backfill-run", ttl_s=5)
    try:
        result = tick(instance, pseidon)
    finally:
        lease.release()
    assert result.run_requests == []
    assert f"{topic}: its lease is held by dagster:backfill-run" in result.skip_reason.skip_message
    assert set(requested(tick(instance, pseidon))) == {topic}


def test_logs_with_a_run_in_progress_are_left_alone(pseidon, instance, log_table, kafka, group):
    topic = kafka.topic(3)
    add_log(log_table, group, topic)
    kafka.produce(topic, make_messages(3, partitions=3))
    create_run_for_test(instance, job_name="ingest_job", tags={LOG_TAG: topic}, status=dg.DagsterRunStatus.STARTED)
    result = tick(instance, pseidon)
    assert result.run_requests == []
    assert f"{topic}: run" in result.skip_reason.skip_message and "started" in result.skip_reason.skip_message


def test_kafka_down_fails_the_tick_quickly_naming_it_and_partitions_still_sync(tmp_path, settings, instance,
                                                                              log_table, group):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]  # nothing listens here once the socket is closed
    add_log(log_table, group, "dead-a")
    add_log(log_table, group, "dead-b")
    res = PseidonResource(config_path=str(write_conf(
        tmp_path / "p.edn", settings, **{"kafka-brokers": f"127.0.0.1:{dead}", "kafka-timeout-ms": 30_000})))
    t0 = time.monotonic()
    ctx = dg.build_sensor_context(instance=instance, resources={RESOURCE_KEY: res})
    with pytest.raises(SensorUnavailable, match=f"Kafka at 127.0.0.1:{dead} is unavailable"):
        ingest_sensor(ctx)
    took = time.monotonic() - t0
    assert took < 15, f"a tick with Kafka down took {took:.1f}s"
    assert set(instance.get_dynamic_partitions(logs.name)) == {"dead-a", "dead-b"}


def test_redis_and_log_table_down_fail_the_tick_naming_them(tmp_path, settings, instance, log_table, kafka, group):
    topic = kafka.topic(1)
    add_log(log_table, group, topic)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    no_redis = PseidonResource(config_path=str(write_conf(
        tmp_path / "r.edn", settings, **{"redis-conf": {"host": f"127.0.0.1:{dead}"}})))
    with pytest.raises(SensorUnavailable, match=f"Redis at 127.0.0.1:{dead} is unavailable"):
        ingest_sensor(dg.build_sensor_context(instance=instance, resources={RESOURCE_KEY: no_redis}))
    no_table = PseidonResource(config_path=str(write_conf(
        tmp_path / "t.edn", settings, **{"etl-db-host": f"mysql+pymysql://root@127.0.0.1:{dead}/x"})))
    with pytest.raises(SensorUnavailable, match=f"pseidon_logs table at mysql\\+pymysql://root@127.0.0.1:{dead}"):
        ingest_sensor(dg.build_sensor_context(instance=instance, resources={RESOURCE_KEY: no_table}))


def test_decide_rules_without_servers(settings):
    from pseidon_dagster.core.lag import LogLag, decide

    s = dataclasses.replace(settings, sensor_min_lag=1)  # a run for any lag; max wait = rollover timeout (600 s)
    marks = {0: (0, 10), 1: (5, 5)}
    fresh = LogLag("x", {0: None, 1: None}, marks, None, use_earliest=True)
    assert fresh.lag == 10 and decide(fresh, s, 0, None).run
    latest = LogLag("x", {0: None, 1: None}, marks, None, use_earliest=False)
    d = decide(latest, s, 0, None)  # no lag counted, but the start offsets must be pinned once
    assert latest.lag == 0 and d.run and "pin the start offsets" in d.reason
    done = LogLag("x", {0: 10, 1: 5}, marks, None, use_earliest=False)
    assert not decide(done, s, 0, None).run and done.lag == 0
    expired = LogLag("x", {0: 0, 1: 2}, {0: (0, 10), 1: (5, 5)}, None, use_earliest=True)
    assert expired.lag == 10  # offsets below the low watermark count from it
    beyond = LogLag("x", {0: 11, 1: 5}, marks, None, use_earliest=True)
    d = decide(beyond, s, 0, None)
    assert not d.run and "beyond Kafka's high watermark" in d.reason and "offsets reset x" in d.reason
    assert LogLag("x", {0: 3}, {0: (0, 10)}, None, True).key != LogLag("x", {0: 3}, {0: (0, 11)}, None, True).key
    assert LogLag("x", {0: 3}, {0: (0, 10)}, "p1", True).key != LogLag("x", {0: 3}, {0: (0, 10)}, None, True).key


def test_timed_batches_wait_for_a_files_worth_or_the_rollover_timeout(settings):
    """Without :sensor-min-lag (the default) a log is run when its waiting messages make a file's worth of bytes, at
    the size of its last run's messages, or when the oldest has waited the rollover timeout -- whichever first."""
    from pseidon_dagster.core.lag import LogLag, decide

    s = dataclasses.replace(settings, sensor_min_bytes=1_000_000, sensor_max_wait_ms=600_000)
    assert s.sensor_min_lag is None
    last = {"ms": 1_000_000, "plan_ms": 900_000, "bytes_per_message": 200.0}
    small = LogLag("x", {0: 0}, {0: (0, 4_000)}, None, True, last)  # 800 kB waiting
    d = decide(small, s, 1_000_000, None)
    assert not d.run and "~0.8 of 1 MB" in d.reason and d.waiting_since_ms == 1_000_000
    assert not decide(small, s, 1_599_999, d.waiting_since_ms).run
    late = decide(small, s, 1_600_000, d.waiting_since_ms)
    assert late.run and "waited 600s" in late.reason
    full = LogLag("x", {0: 0}, {0: (0, 5_000)}, None, True, last)  # 1 MB: a file's worth
    d = decide(full, s, 1_000_000, None)
    assert d.run and "a file's worth" in d.reason
    # a log that never committed has no message size yet: the time rule alone
    new = LogLag("x", {0: None}, {0: (0, 10 ** 9)}, None, True)
    assert not decide(new, s, 0, None).run and decide(new, s, 600_000, 0).run
    # the wait never starts before the plan of the last commit (the messages arrived after it)
    assert not decide(small, s, 1_499_999, 0).run and decide(small, s, 1_500_000, 0).run
    # a file is per Kafka partition (and hour): the busiest partition's backlog decides, not the sum over partitions
    spread = LogLag("x", {0: 0, 1: 0, 2: 0}, {p: (0, 2_000) for p in range(3)}, None, True, last)  # 3 x 400 kB
    assert not decide(spread, s, 1_000_000, None).run
    skewed = LogLag("x", {0: 0, 1: 0}, {0: (0, 5_000), 1: (0, 10)}, None, True, last)  # 1 MB in partition 0
    assert decide(skewed, s, 1_000_000, None).run
    assert settings.batch_bytes == settings.writer.rollover_size  # the default: a file's worth


def test_schedule_requests_every_enabled_log(pseidon, instance, log_table, group):
    import datetime as dt

    from pseidon_dagster.defs.ingest.schedules import ingest_schedule

    add_log(log_table, group, "sched-a")
    add_log(log_table, group, "sched-b")
    add_log(log_table, group, "sched-off")
    log_table.set_enabled("sched-off", False)
    when = dt.datetime(2026, 11, 20, 7, 10, tzinfo=dt.timezone.utc)
    # `with`: the context opens its own instance from the test's; closed at garbage collection instead, it would
    # restore a stale Dagster defs-state storage in whichever later test is running (dead instance weakref)
    with dg.build_schedule_context(instance=instance, resources={RESOURCE_KEY: pseidon},
                                   scheduled_execution_time=when) as ctx:
        reqs = ingest_schedule(ctx)
    assert sorted((r.partition_key, r.run_key, r.tags[LOG_TAG]) for r in reqs) == [
        ("sched-a", "sched-a:20261120T0710", "sched-a"), ("sched-b", "sched-b:20261120T0710", "sched-b")]
    assert sorted(instance.get_dynamic_partitions(logs.name)) == ["sched-a", "sched-b"]
