""":ingest-workers splits a plan's partitions over worker processes (core/ingest/write.py), on a small topic so that
it runs in seconds: the same files as one process, the counts and reasons of all workers, and a worker's failure
raised in the run as itself. Real tansu, Redis and MariaDB."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pseidon_dagster.core.ingest import ReadStalled, ingest
from tests.integration.core.test_ingest import InjectedFailure, add_log, data_files, fail_before_commit, make_messages


def files_of(root: Path) -> dict[str, bytes]:
    return {str(f.relative_to(root)): f.read_bytes() for f in data_files(root)}


def test_three_workers_write_what_one_writes_and_count_every_message(settings, log_table, kafka, store, group):
    topic = kafka.topic(4)
    spec = add_log(log_table, group, topic)
    msgs = make_messages(160, hours=3, partitions=4)
    msgs[5] = (1, b"not-a-time|x|y")  # one bad message in partition 1
    msgs[6] = (2, None)  # one tombstone in partition 2
    kafka.produce(topic, msgs)
    three = dataclasses.replace(settings, ingest_workers=3)
    with pytest.raises(InjectedFailure):
        first = ingest(three, spec, store, before_commit=fail_before_commit)
    lake, quarantine = Path(settings.data_dir) / "lake", Path(settings.data_dir) / "quarantine"
    written = files_of(lake)
    assert {int(n.split(".p")[1].split(".")[0]) for n in written} == {0, 1, 2, 3}
    first = ingest(three, spec, store)  # the replay, in three processes again
    assert (first.read, first.written, first.quarantined, first.filtered) == (160, 158, 1, 1)
    assert first.quarantine_reasons and sum(first.quarantine_reasons.values()) == 1
    assert files_of(lake) == written and len(files_of(quarantine)) == 1
    kinds = [(f.kind, f.partition, f.start, f.hour) for f in first.files]
    assert kinds == sorted(kinds)  # the files of all workers in one order
    assert store.get(topic, [0, 1, 2, 3]) == {0: 40, 1: 40, 2: 40, 3: 40}

    one = dataclasses.replace(settings, data_dir=str(Path(settings.data_dir) / "one"))
    store.set(topic, {0: 0, 1: 0, 2: 0, 3: 0})
    again = ingest(one, spec, store)
    assert files_of(Path(one.data_dir) / "lake") == written
    assert sorted((f.kind, f.partition, f.start, f.end, f.hour, f.records) for f in again.files) == [
        (f.kind, f.partition, f.start, f.end, f.hour, f.records) for f in first.files]


def test_a_workers_failure_fails_the_run_with_its_own_error(settings, log_table, kafka, store, group):
    topic = kafka.topic(2)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, make_messages(20, hours=1, partitions=2))
    two = dataclasses.replace(settings, ingest_workers=2, kafka_timeout_s=1.0)
    with pytest.raises(InjectedFailure):
        ingest(two, spec, store, before_commit=fail_before_commit)
    plan = store.load_plan(topic)
    store.r.set(store.plan_key(topic), plan.to_json().replace('"1": [0, 10]', '"1": [0, 15]'))  # past Kafka's end
    with pytest.raises(ReadStalled, match="partitions \\[1\\]"):
        ingest(two, spec, store)
    assert store.get(topic, [0, 1]) == {0: None, 1: None}


def test_a_worker_answers_its_counts_or_its_error_by_name(settings, log_table, kafka, store, group):
    """The worker's side of the protocol, run here in the test's process: ("ok", what it wrote) for its partitions,
    ("error", name, message) when it fails -- here its writes are fenced by a lease token that is not the lease's."""
    import multiprocessing

    from pseidon_dagster.core.ingest.write import Written, _worker
    from pseidon_dagster.core.lease import Lease

    topic = kafka.topic(2)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, make_messages(20, hours=1, partitions=2))
    with pytest.raises(InjectedFailure):
        ingest(settings, spec, store, before_commit=fail_before_commit)
    plan = store.load_plan(topic)
    lease = Lease.acquire(store, topic, owner="worker-test", ttl_s=30)
    try:
        recv, send = multiprocessing.Pipe(duplex=False)
        _worker(send, settings, spec, plan, None, lease.owner, lease.token, [1])
        kind, out = recv.recv()
        assert kind == "ok" and isinstance(out, Written)
        assert (out.counts.read, out.counts.written) == (10, 10)
        assert {(f.kind, f.partition, f.start, f.end) for f in out.files} == {("data", 1, 0, 10)}
        recv, send = multiprocessing.Pipe(duplex=False)
        _worker(send, settings, spec, plan, None, lease.owner, lease.token + 1, [0])
        assert recv.recv() == ("error", "LeaseLost", f"{topic}: cannot publish files: this run's lease (token "
                               f"{lease.token + 1}) is held by another run now; nothing committed")
        assert send.closed
    finally:
        lease.release()
