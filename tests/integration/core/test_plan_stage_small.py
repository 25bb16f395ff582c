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
