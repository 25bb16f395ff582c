"""A run's steps (core/ingest/run.py) as the Dagster job calls them -- stage, register the Hive partitions, commit --
on small topics: what each step hands to the next and leaves in Redis (the staged result, the last commit's numbers
the sensor reads, the lease), a run with nothing to read, and a commit that refuses another run's plan. Real tansu,
Redis and MariaDB."""
from __future__ import annotations

import dataclasses
import json
import time

import pytest

from pseidon_dagster.core.ingest import IngestError, Ingestor
from tests.integration.core.test_ingest import add_log, make_messages


def test_the_steps_hand_over_the_staged_result_and_the_commit_records_its_numbers(settings, log_table, kafka, store,
                                                                                  group):
    topic = kafka.topic(2)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, make_messages(30, hours=2, partitions=2))
    capped = dataclasses.replace(settings, max_offsets_per_partition=10)
    registered, before, specs = [], [], []

    def register(result):
        registered.append(sorted(f.path for f in result.data_files))
        specs.append(result.spec)
        time.sleep(0.05)
        return ["hour=1", "hour=2"]

    t0 = int(time.time() * 1000)
    staged = Ingestor(capped, spec, store, owner="root-1", register=register).stage()
    assert not staged.committed and staged.plan_id and staged.offsets == {0: (0, 10), 1: (0, 10)}
    assert staged.layout == {"format": "txt:sep=pipe;ts=0", "output_format": "gzip", "base_partition": "lake",
                             "log_partition": f"raw/{topic}", "quarantine": "quarantine", "date_format": "datehour"}
    assert store.load_staged(topic, staged.plan_id).written == 20
    assert store.r.get(store.lease_key(topic)).endswith("|root-1")  # held between the steps

    # the next steps, as another process of the same run would take them: from what Redis holds
    changed = dataclasses.replace(spec, output_format="zstd")  # the row as edited since the plan was made
    step = Ingestor(capped, changed, store, owner="root-1", register=register, before_commit=before.append)
    again = store.load_staged(topic, staged.plan_id)
    assert again.spec is None
    seconds = again.seconds
    step.register_files(again)
    assert again.registered == ["hour=1", "hour=2"] and registered == [sorted(f.path for f in staged.data_files)]
    assert specs == [spec]  # the row the plan froze, for the hook that registers the files it wrote
    assert again.seconds >= seconds + 0.05
    assert store.load_staged(topic).registered == ["hour=1", "hour=2"]
    done = step.commit(again)
    assert done.committed and before == [again] and done.removed == []
    assert t0 <= done.committed_ms <= int(time.time() * 1000)
    assert store.get(topic, [0, 1]) == {0: 10, 1: 10} and store.r.get(store.lease_key(topic)) is None
    assert done.lag_after == 10  # 5 more per partition than the cap let this run read
    last = json.loads(store.r.get(store.last_commit_key(topic)))
    raw = sum(f.raw_bytes for f in staged.data_files)
    assert set(last) == {"ms", "plan_ms", "bytes_per_message"} and last["ms"] == done.committed_ms
    assert t0 <= last["plan_ms"] <= last["ms"] and last["bytes_per_message"] == round(raw / 20, 1)
    assert step.commit(done) is done  # committed already: nothing more happens
    assert store.get(topic, [0, 1]) == {0: 10, 1: 10}


def test_a_run_with_nothing_to_read_is_committed_at_once_and_lets_the_lease_go(settings, log_table, kafka, store,
                                                                              group):
    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic)
    calls = []
    run = Ingestor(settings, spec, store, register=lambda r: calls.append(r) or [])
    result = run.stage()
    assert result.committed and result.plan_id is None and result.lag_after == 0 and result.files == []
    assert store.r.get(store.lease_key(topic)) is None
    run.register_files(result)
    assert run.commit(result) is result and calls == []
    assert store.get(topic, [0]) == {0: 0}  # where it starts, remembered


def test_a_run_without_data_files_registers_nothing(settings, log_table, kafka, store, group):
    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, [(0, b"not-a-time|x"), (0, None)])
    calls = []
    run = Ingestor(settings, spec, store, register=lambda r: calls.append(r) or ["x"])
    result = run.run()
    assert result.committed and (result.quarantined, result.filtered, result.written) == (1, 1, 0)
    assert calls == [] and result.registered == []
    assert json.loads(store.r.get(store.last_commit_key(topic)))["bytes_per_message"] is None


def test_a_commit_refuses_a_result_of_another_plan(settings, log_table, kafka, store, group):
    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, make_messages(5, hours=1, partitions=1))
    run = Ingestor(settings, spec, store, owner="root-2")
    staged = run.stage()
    other = dataclasses.replace(staged, plan_id="not-the-plan")
    with pytest.raises(IngestError, match=f"^{topic}: the stored plan is {staged.plan_id}, not not-the-plan; nothing "
                                          "committed \\(another run took over\\?\\)"):
        run.commit(other)
    assert not other.committed and store.get(topic, [0]) == {0: None}
    assert run.commit(staged).committed and store.get(topic, [0]) == {0: 5}
    with pytest.raises(IngestError, match="the stored plan is none, not"):
        Ingestor(settings, spec, store, owner="root-2").commit(dataclasses.replace(staged, committed=False))
