"""What the plan stage stores before anything is read (core/ingest/plan.py), on small topics: each partition's
range, the open files shared by the partitions that have something to read, the plan's id and time, and where a
partition new to the log starts. Real tansu, Redis and MariaDB."""
from __future__ import annotations

import dataclasses
import re
import time

import pytest

from pseidon_dagster.core.ingest import ingest
from tests.integration.core.test_ingest import InjectedFailure, add_log, fail_before_commit


def test_the_stored_plan_shares_the_open_files_among_the_partitions_with_something_to_read(settings, log_table,
                                                                                          kafka, store, group):
    topic = kafka.topic(3)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, [(1, f"17950000000{i:02d}|m{i}".encode()) for i in range(6)])
    s = dataclasses.replace(settings, writer=dataclasses.replace(settings.writer, max_open_files=12),
                            max_offsets_per_partition=4)
    t0 = time.time_ns() // 1_000_000
    with pytest.raises(InjectedFailure):
        ingest(s, spec, store, before_commit=fail_before_commit)
    plan = store.load_plan(topic)
    assert plan.ranges == {0: (0, 0), 1: (0, 4), 2: (0, 0)} and plan.lost == {} and plan.notes == {}
    assert plan.params["open_per_partition"] == 12 and plan.params["max_open_files"] == 12  # one partition reads
    assert re.fullmatch(r"[0-9a-f]{16}", plan.plan_id)
    assert t0 <= plan.created_ms <= time.time_ns() // 1_000_000
    assert ingest(s, spec, store).offsets == {0: (0, 0), 1: (0, 4), 2: (0, 0)}  # the replay, then the rest
    assert ingest(s, spec, store).offsets == {0: (0, 0), 1: (4, 6), 2: (0, 0)}
    assert ingest(s, spec, store).plan_id is None  # nothing left: no plan


def test_a_partition_added_to_the_topic_starts_at_its_low_watermark_with_a_note(settings, log_table, kafka, store,
                                                                               group):
    topic = kafka.topic(2)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, [(p, b"1795000000000|x") for p in (0, 1)])
    store.set(topic, {0: 1})  # partition 1 has no offset while 0 has one
    result = ingest(settings, spec, store)
    assert result.offsets == {0: (1, 1), 1: (0, 1)} and result.written == 1
    assert result.notes == {1: "new partition: no offset stored while others are, starting at its low watermark 0"}


def test_a_plan_whose_offsets_were_committed_is_finished_not_replayed(settings, log_table, kafka, store, group):
    """As after a crash between a Redis Cluster commit's steps: the offsets moved, the plan was not cleared."""
    import json

    topic = kafka.topic(2)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, [(p, f"17950000000{i:02d}|m{i}".encode()) for p in (0, 1) for i in range(4)])
    with pytest.raises(InjectedFailure):
        ingest(settings, spec, store, before_commit=fail_before_commit)
    plan = store.load_plan(topic)
    assert json.loads(store.r.get(store.plan_key(topic)))["created_ms"] == plan.created_ms  # whole milliseconds
    assert isinstance(json.loads(store.r.get(store.plan_key(topic)))["created_ms"], int)
    store.set(topic, {0: 4, 1: 4})  # the offsets were committed
    kafka.produce(topic, [(0, b"1795000000099|late")])
    result = ingest(settings, spec, store)
    assert not result.replayed and result.plan_id != plan.plan_id
    assert result.offsets == {0: (4, 5), 1: (4, 4)} and result.written == 1
    reported = [r.plan_id for r in store.unreported(topic)]
    assert reported == [plan.plan_id, result.plan_id]  # the finished plan is reported too
    assert store.unreported(topic)[0].committed


def test_a_committed_plan_without_a_staged_result_is_dropped(settings, log_table, kafka, store, group):
    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, [(0, b"1795000000000|x")])
    with pytest.raises(InjectedFailure):
        ingest(settings, spec, store, before_commit=fail_before_commit)
    plan = store.load_plan(topic)
    store.r.delete(store.staged_key(topic))
    store.set(topic, {0: 1})
    result = ingest(settings, spec, store)
    assert result.plan_id is None and store.load_plan(topic) is None and store.unreported(topic) == []
    assert store.get(topic, [0]) == {0: 1} and plan.ranges == {0: (0, 1)}


def test_a_replay_writes_text_even_if_the_row_turned_to_parquet(settings, log_table, kafka, store, group, tmp_path):
    import json
    from pathlib import Path

    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, [(0, f"17950000000{i:02d}|m{i}|x".encode()) for i in range(3)])
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    (schemas / f"{topic}.json").write_text(json.dumps([{"name": "ts", "type": "bigint"},
                                                       {"name": "m", "type": "string"},
                                                       {"name": "x", "type": "string"}]))
    s = dataclasses.replace(settings, schema_dir=str(schemas))
    with pytest.raises(InjectedFailure):
        ingest(s, spec, store, before_commit=fail_before_commit)
    parquet_row = dataclasses.replace(spec, output_format="parquet")
    result = ingest(s, parquet_row, store)
    assert result.replayed and result.written == 3
    names = sorted(p.name for p in (Path(s.data_dir) / "lake").rglob("*") if p.is_file())
    assert names and all(n.endswith(".gz") for n in names)


def test_the_plan_freezes_a_window_around_its_own_time(settings, log_table, kafka, store, group):
    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic)
    now = time.time_ns() // 1_000_000
    kafka.produce(topic, [(0, f"{now}|now".encode()), (0, f"{now + 7_200_000}|in two hours".encode())])
    windowed = dataclasses.replace(settings, writer=dataclasses.replace(settings.writer, allow_all_ts=False))
    with pytest.raises(InjectedFailure):
        ingest(windowed, spec, store, before_commit=fail_before_commit)
    plan = store.load_plan(topic)
    w = windowed.writer
    assert (plan.params["ts_lo_ms"], plan.params["ts_hi_ms"]) == (plan.created_ms - w.ts_window_back_ms,
                                                                  plan.created_ms + w.ts_window_ahead_ms)
    result = ingest(windowed, spec, store)
    assert (result.written, result.quarantined) == (1, 1)  # two hours ahead is past the window
