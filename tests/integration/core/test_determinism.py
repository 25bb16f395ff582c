"""A replay (or a repeated backfill) must write byte-identical files, whatever the chunks its writers were handed:
how a run's buffers are flushed depends on how consume() interleaved partitions and on memory pressure, which a
replay does not reproduce. (ISA-L's deflate output depends on how its input is split into compress() calls.) Here
through real ingests; the writers alone, chunked at random: tests/unit/core/test_file_writers.py."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pseidon_dagster.core.ingest import ingest
from tests.integration.core.test_ingest import InjectedFailure, add_log, data_files, fail_before_commit, make_messages


@pytest.mark.parametrize("out", ["gzip", "parquet"])
def test_a_replay_flushing_at_other_moments_writes_the_same_bytes(settings, log_table, kafka, store, group,
                                                                  monkeypatch, tmp_path, out):
    import json

    from pseidon_dagster.core.ingest import sink

    topic = kafka.topic(3)
    spec = add_log(log_table, group, topic, out=out)
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    (schemas / f"{topic}.json").write_text(json.dumps({"columns": [
        {"name": "ts", "type": "bigint"}, {"name": "msg", "type": "string"}, {"name": "x", "type": "string"}]}))
    s = dataclasses.replace(settings, schema_dir=str(schemas))
    kafka.produce(topic, make_messages(30_000, hours=3))
    monkeypatch.setattr(sink, "MAX_BUFFERED_TEXT", 50_000)  # the first attempt flushes all the time
    monkeypatch.setattr(sink, "MAX_BUFFERED_ROWS", 50_000)
    with pytest.raises(InjectedFailure):  # small consume() batches: every file is flushed many times
        ingest(dataclasses.replace(s, kafka_batch_size=300), spec, store, before_commit=fail_before_commit)
    root = Path(settings.data_dir) / "lake"
    first = {f.name: f.read_bytes() for f in data_files(root)}
    monkeypatch.setattr(sink, "MAX_BUFFERED_TEXT", 64 << 20)  # the replay hardly at all
    monkeypatch.setattr(sink, "MAX_BUFFERED_ROWS", 64 << 20)
    retry = ingest(s, spec, store)
    assert retry.replayed
    assert {f.name: f.read_bytes() for f in data_files(root)} == first


def test_two_worker_processes_write_what_one_writes(settings, log_table, kafka, store, group):
    """:ingest-workers 2 splits the plan's partitions over two processes; a replay with one process (or a first
    attempt with two) writes the same names and bytes, and a worker's failure fails the run with its error."""
    topic = kafka.topic(4)
    spec = add_log(log_table, group, topic)
    msgs = make_messages(40_000, hours=4, partitions=4)
    kafka.produce(topic, msgs)
    two = dataclasses.replace(settings, ingest_workers=2)
    with pytest.raises(InjectedFailure):
        ingest(two, spec, store, before_commit=fail_before_commit)
    root = Path(settings.data_dir) / "lake"
    first = {f.name: f.read_bytes() for f in data_files(root)}
    assert {int(n.split(".p")[1].split(".")[0]) for n in first} == {0, 1, 2, 3}
    retry = ingest(settings, spec, store)
    assert retry.replayed and retry.written == 40_000 and retry.removed == []
    assert {f.name: f.read_bytes() for f in data_files(root)} == first

    # a worker's failure fails the run with its own error, and nothing is committed
    kafka.produce(topic, make_messages(400, hours=1, partitions=4, start=40_000))
    with pytest.raises(InjectedFailure):
        ingest(two, spec, store, before_commit=fail_before_commit)
    plan = store.load_plan(topic)
    stalled = plan.to_json().replace('"1": [10000, 10100]', '"1": [10000, 10150]')  # more than Kafka holds
    assert stalled != plan.to_json()
    store.r.set(store.plan_key(topic), stalled)
    from pseidon_dagster.core.ingest import ReadStalled

    with pytest.raises(ReadStalled, match="partitions \\[1\\]"):
        ingest(dataclasses.replace(two, kafka_timeout_s=2.0), spec, store)
    assert store.get(topic, [0, 1, 2, 3]) == {0: 10_000, 1: 10_000, 2: 10_000, 3: 10_000}
