"""Exactly-once without holes (issue 8): crash recovery without waiting for a manual step, fencing, new partitions,
Redis losing its data, replays that publish exactly what they planned, open files bounded across the run, line
breaks, durability and the settings exactly-once relies on. Real tansu, Redis and MariaDB throughout."""
from __future__ import annotations

import base64
import collections
import dataclasses
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pseidon_dagster.core.ingest import Ingestor, LeaseLost, ingest
from pseidon_dagster.core.kafka import KafkaSource
from pseidon_dagster.core.lag import measure
from pseidon_dagster.core.lease import Lease
from pseidon_dagster.core.partitioning import FileName
from tests.conftest import read_lines, write_conf
from tests.integration.core.test_ingest import (
    BASE_TS,
    HOUR,
    InjectedFailure,
    add_log,
    data_files,
    fail_before_commit,
    make_messages,
)

CLI = [sys.executable, "-m", "pseidon_dagster.cli"]


def all_lines(root: Path) -> list[bytes]:
    return [line for f in data_files(root) for line in read_lines(f)]


def hidden_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob(".*") if p.is_file())


def cli_conf(tmp_path, settings, **extra) -> Path:
    return write_conf(tmp_path / "cli.edn", settings, **extra)


# --- crash recovery and fencing -------------------------------------------------------------------------------------

def test_after_a_sigkill_mid_run_the_next_run_completes_with_no_manual_step(
        tmp_path, settings, log_table, kafka, group, store):
    """A killed run holds the log's lease; its successor waits at most the lease's TTL (plus a margin) and then
    replays the plan: every message exactly once, no temporary file left, offsets at the high watermarks."""
    topic = kafka.topic(2)
    add_log(log_table, group, topic)
    msgs = make_messages(60_000, hours=4, partitions=2)
    kafka.produce(topic, msgs)
    conf = cli_conf(tmp_path, settings, **{"lease-ttl-ms": 5000, "writer": {"allow-all-ts": True,
                                                                             "rollover-size": 200_000}})
    root = Path(settings.data_dir) / "lake" / "raw" / topic
    proc = subprocess.Popen([*CLI, "ingest", topic, "--config", str(conf)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "PSEIDON_FAILPOINTS": "after-publish=30"})
    # kill it once it has published its files, before it commits (it pauses there)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not data_files(root) and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert store.all_offsets(topic) == {}, "the killed run must not have committed"

    t0 = time.monotonic()
    out = subprocess.run([*CLI, "ingest", topic, "--config", str(conf)], capture_output=True, text=True, timeout=120)
    took = time.monotonic() - t0
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["replayed"] and summary["committed"]
    assert "waiting for the lease held by cli:" in out.stderr
    assert took < 5 + 60, took
    lines = all_lines(root)
    assert collections.Counter(lines) == collections.Counter(v for _, v in msgs)
    assert hidden_files(Path(settings.data_dir)) == []
    assert store.all_offsets(topic) == {0: 30_000, 1: 30_000}


def test_a_run_that_lost_its_lease_can_neither_publish_nor_commit(settings, log_table, kafka, store, group):
    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, make_messages(100, partitions=1))
    first = Ingestor(settings, spec, store, owner="first")
    staged = first.stage()
    plan = store.load_plan(topic)
    # the first run stalls past its lease (simulated by removing it); a second run takes the log over
    first.lease._stop.set()
    store.r.delete(store.lease_key(topic))
    second = Lease.acquire(store, topic, owner="second", ttl_s=5)
    assert second.token > first.lease.token
    try:
        with pytest.raises(LeaseLost, match="lost its lease"):
            first.commit(staged)
        assert store.get(topic, [0]) == {0: None}
        assert store.load_plan(topic).plan_id == plan.plan_id
        # nor can it store a plan or record a file it is about to publish
        with pytest.raises(LeaseLost):
            store.save_plan(plan, first.lease)
        with pytest.raises(LeaseLost):
            store.record_paths(topic, first.lease, finals=["/nowhere/x.gz"])
    finally:
        second.release()


def test_a_renewal_that_finds_the_lease_taken_stops_the_run(settings, log_table, kafka, store, group):
    topic = kafka.topic(1)
    add_log(log_table, group, topic)
    lease = Lease.acquire(store, topic, owner="a", ttl_s=1.5)
    store.r.set(store.lease_key(topic), "999|b", px=5000)  # someone else holds it now
    assert lease.lost.wait(3), "the renewal thread did not notice"
    with pytest.raises(LeaseLost):
        lease.check()


def test_temporary_names_carry_the_attempt_token(settings, log_table, kafka, store, group):
    """Two attempts at the same segments never share a temporary name: each carries its lease token."""
    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, [(0, f"{BASE_TS + (i % 2) * HOUR}|m{i}".encode()) for i in range(50)])
    seen, tokens = [], []
    for owner in ("x", "y"):
        with pytest.raises(InjectedFailure):
            Ingestor(settings, spec, store, owner=owner, before_commit=fail_before_commit).run()
        tokens.append(store.r.get(store.lease_seq_key(topic)))
        seen.append({Path(t).name for t in store.manifest(topic)[0]})
    first, second = seen[0], seen[1] - seen[0]
    assert len(first) == len(second) == 2  # one file per hour, under each attempt's own name
    assert all(n.endswith(f".{tokens[0]}.tmp") for n in first)
    assert all(n.endswith(f".{tokens[1]}.tmp") for n in second)
    Ingestor(settings, spec, store).run()
    assert store.manifest(topic) == (set(), set())
    assert hidden_files(Path(settings.data_dir)) == []


# --- silent loss and duplicates -------------------------------------------------------------------------------------

def test_a_partition_added_to_a_log_with_offsets_starts_at_its_low_watermark(settings, log_table, kafka, store,
                                                                             group):
    topic = kafka.topic(2)
    spec = add_log(log_table, group, topic)
    msgs = make_messages(40, partitions=2)
    kafka.produce(topic, msgs)
    latest = dataclasses.replace(settings, kafka_use_earliest=False)
    store.set(topic, {0: 20})  # partition 1 is "new": the log has offsets, but none for it

    assert measure(topic, KafkaSource(latest), store).lag == 20  # the sensor agrees with the run
    result = ingest(latest, spec, store)

    assert result.offsets == {0: (20, 20), 1: (0, 20)} and result.written == 20
    assert "low watermark" in result.notes[1]
    assert store.get(topic, [0, 1]) == {0: 20, 1: 20}


def test_redis_losing_its_data_resumes_from_the_lake_without_duplicates(settings, log_table, kafka, store, group,
                                                                        redis_client):
    topic = kafka.topic(3)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, make_messages(300))
    assert ingest(settings, spec, store).written == 300
    for key in redis_client.scan_iter(match=f"/{group}/*"):  # Redis restarted without persistence
        redis_client.delete(key)
    kafka.produce(topic, make_messages(90, start=300))

    result = ingest(settings, spec, store)  # :kafka-use-earliest true, but the lake has files

    assert result.written == 90
    assert all("resuming after the lake's files" in n for n in result.notes.values())
    root = Path(settings.data_dir) / "lake" / "raw" / topic
    assert collections.Counter(all_lines(root)) == collections.Counter(v for _, v in make_messages(390))


def test_a_replay_removes_files_an_earlier_attempt_published_and_it_did_not_rewrite(
        settings, log_table, kafka, store, group):
    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, make_messages(500, partitions=1))
    small = dataclasses.replace(settings, writer=dataclasses.replace(settings.writer, rollover_size=3000))
    with pytest.raises(InjectedFailure):
        ingest(small, spec, store, before_commit=fail_before_commit)
    root = Path(settings.data_dir) / "lake" / "raw" / topic
    first = set(data_files(root))
    # Something that decides the cuts differs in the replay (here: forced by editing the stored plan).
    plan = store.load_plan(topic)
    store.r.set(store.plan_key(topic), plan.to_json().replace('"rollover_size": 3000', '"rollover_size": 9000'))

    retry = ingest(settings, spec, store)

    assert retry.replayed and retry.removed
    assert {Path(p) for p in retry.removed} == first - set(data_files(root))
    lines = all_lines(root)
    assert len(lines) == len(set(lines)) == 500


def test_the_parquet_schema_is_frozen_in_the_plan(settings, log_table, kafka, store, group, tmp_path):
    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic, out="parquet")
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    (schemas / f"{topic}.json").write_text(json.dumps({"columns": [
        {"name": "ts", "type": "bigint"}, {"name": "msg", "type": "string"}, {"name": "x", "type": "string"}]}))
    s = dataclasses.replace(settings, schema_dir=str(schemas),
                            writer=dataclasses.replace(settings.writer, max_open_files=2))
    kafka.produce(topic, make_messages(200, partitions=1, hours=4))
    with pytest.raises(InjectedFailure):
        ingest(s, spec, store, before_commit=fail_before_commit)
    root = Path(settings.data_dir) / "lake" / "raw" / topic
    first = {f.name: f.read_bytes() for f in data_files(root)}
    # the schema changes before the retry: msg becomes an int column (every message would now go to quarantine)
    (schemas / f"{topic}.json").write_text(json.dumps({"columns": [
        {"name": "ts", "type": "bigint"}, {"name": "msg", "type": "int"}, {"name": "x", "type": "string"}]}))

    retry = ingest(s, spec, store)

    assert retry.replayed and retry.written == 200 and retry.quarantined == 0
    assert {f.name: f.read_bytes() for f in data_files(root)} == first


def test_open_files_are_bounded_across_the_run_under_ulimit(tmp_path, settings, log_table, kafka, group, store):
    """64 partitions x 24 event hours with `ulimit -n 256`: :max-open-files (64) is shared by the partitions, and
    a file being written holds no descriptor between its writes."""
    topic = kafka.topic(64)
    add_log(log_table, group, topic)
    pad = "p" * 12_000  # 74 MB in all: more than a run buffers, so every open file gets written while others are
    msgs = [(i % 64, f"{BASE_TS + ((i // 64) % 24) * HOUR + i}|m{i}|{pad}".encode()) for i in range(64 * 24 * 4)]
    kafka.produce(topic, msgs)
    conf = cli_conf(tmp_path, settings)

    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    out = subprocess.run([*CLI, "ingest", topic, "--config", str(conf)], capture_output=True, text=True,
                         preexec_fn=limit, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["written"] == len(msgs)
    root = Path(settings.data_dir) / "lake" / "raw" / topic
    assert collections.Counter(all_lines(root)) == collections.Counter(v for _, v in msgs)
    # one open hour per partition at a time (64 // 64): every file of a partition is its own segment
    names = [FileName.parse(f.name) for f in data_files(root)]
    per_segment = collections.Counter((n.partition, n.start, n.end) for n in names)
    assert set(per_segment.values()) == {1}


def test_cuts_by_open_files_are_the_same_in_a_replay(settings, log_table, kafka, store, group):
    topic = kafka.topic(4)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, [(i % 4, f"{BASE_TS + (i // 4 % 6) * HOUR + i}|m{i}".encode()) for i in range(2000)])
    few = dataclasses.replace(settings, writer=dataclasses.replace(settings.writer, max_open_files=8))
    with pytest.raises(InjectedFailure):
        ingest(few, spec, store, before_commit=fail_before_commit)
    root = Path(settings.data_dir) / "lake" / "raw" / topic
    first = {f.name: f.read_bytes() for f in data_files(root)}
    segments = {(n.partition, n.start, n.end) for n in map(FileName.parse, first)}
    assert len(segments) > 100  # 2 open hours per partition, 6 hours in turn: a cut every other message
    retry = ingest(settings, spec, store)
    assert retry.replayed and retry.removed == []
    assert {f.name: f.read_bytes() for f in data_files(root)} == first


@pytest.mark.parametrize("policy", ["quarantine", "escape"])
def test_a_line_break_inside_a_message_never_makes_two_records(settings, log_table, kafka, store, group, policy):
    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic)
    good = [(0, f"{BASE_TS + i}|ok-{i}".encode()) for i in range(10)]
    broken = [(0, f"{BASE_TS}|two\nlines".encode()), (0, f"{BASE_TS}|carriage\rreturn\\x".encode())]
    kafka.produce(topic, good[:5] + broken + good[5:])
    s = dataclasses.replace(settings, writer=dataclasses.replace(settings.writer, line_breaks=policy))

    result = ingest(s, spec, store)

    lines = [line for f in result.data_files for line in read_lines(f.path)]
    if policy == "quarantine":
        assert (result.written, result.quarantined) == (10, 2)
        assert sorted(lines) == sorted(v for _, v in good)
        q = [json.loads(line) for f in result.files if f.kind == "quarantine" for line in read_lines(f.path)]
        assert [base64.b64decode(r["raw_base64"]) for r in q] == [v for _, v in broken]
        assert all(r["error"].startswith("line break:") for r in q)
    else:
        assert (result.written, result.quarantined) == (12, 0)
        assert len(lines) == 12
        assert f"{BASE_TS}|two\\nlines".encode() in lines
        assert f"{BASE_TS}|carriage\\rreturn\\\\x".encode() in lines


def test_published_files_and_their_directories_are_fsynced_before_the_commit(settings, log_table, kafka, store,
                                                                             group, monkeypatch):
    """Observes the real system calls: every file is fsynced before its rename, every directory after its renames,
    all before the offsets are committed."""
    topic = kafka.topic(2)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, make_messages(400, hours=3, partitions=2))
    events = []
    real_fsync, real_replace, real_open = os.fsync, os.replace, os.open
    paths: dict[int, str] = {}

    def open_(path, flags, *a, **k):
        fd = real_open(path, flags, *a, **k)
        paths[fd] = str(path)
        return fd

    def fsync(fd):
        events.append(("fsync", paths.get(fd)))
        return real_fsync(fd)

    def replace(src, dst):
        events.append(("rename", str(src), str(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "open", open_)
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    result = ingest(settings, spec, store, before_commit=lambda r: events.append(("commit",)))

    commit_at = events.index(("commit",))
    for f in result.files:
        renames = [i for i, e in enumerate(events) if e[0] == "rename" and e[2] == f.path]
        assert len(renames) == 1
        tmp = events[renames[0]][1]
        synced = [i for i, e in enumerate(events) if e == ("fsync", tmp)]
        assert synced and synced[0] < renames[0], f"{tmp} not fsynced before its rename"
        dir_syncs = [i for i, e in enumerate(events) if e == ("fsync", os.path.dirname(f.path))]
        assert any(renames[0] < i < commit_at for i in dir_syncs), f"{os.path.dirname(f.path)} not fsynced"


def test_offsets_reset_needs_a_target_and_a_real_partition(tmp_path, settings, log_table, kafka, group):
    topic = kafka.topic(2)
    add_log(log_table, group, topic)
    conf = cli_conf(tmp_path, settings)
    no_to = subprocess.run([*CLI, "offsets", "reset", topic, "--config", str(conf)], capture_output=True, text=True)
    assert no_to.returncode != 0 and "give --to earliest, latest or an offset" in no_to.stderr
    bad_to = subprocess.run([*CLI, "offsets", "reset", topic, "--to", "soon", "--config", str(conf)],
                            capture_output=True, text=True)
    assert bad_to.returncode != 0 and "is not earliest, latest or a non-negative offset" in bad_to.stderr
    bad_p = subprocess.run([*CLI, "offsets", "reset", topic, "--to", "earliest", "--partition", "7", "--config",
                            str(conf)], capture_output=True, text=True)
    assert bad_p.returncode != 0 and "has no partition 7" in bad_p.stderr


@pytest.mark.hive
def test_escaped_line_breaks_read_back_from_hive(settings, log_table, kafka, store, group, hive_port, hive_db,
                                                 hive_catalog):
    from pseidon_dagster.core.hive import create_table_for

    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic, hive_url=f"//127.0.0.1:{hive_port}/{hive_db}", hive_table_name="t")
    s = dataclasses.replace(settings, writer=dataclasses.replace(settings.writer, line_breaks="escape"))
    ddl = create_table_for(s, spec, [("ts", "bigint"), ("msg", "string")])
    assert "ESCAPED BY" in ddl and "serialization.escape.crlf" in ddl
    values = ["two\nlines", "carriage\rreturn", "back\\slash", "plain"]
    kafka.produce(topic, [(0, f"{BASE_TS + i}|{v}".encode()) for i, v in enumerate(values)])

    from pseidon_dagster.core.hive import registrar_for

    result = ingest(s, spec, store, register=registrar_for(s, spec))

    assert result.written == 4
    rows = hive_catalog.execute(f"SELECT msg FROM `{hive_db}`.`t` ORDER BY ts", fetch=True)
    assert [r[0] for r in rows] == values
