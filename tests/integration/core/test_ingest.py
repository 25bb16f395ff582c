"""End to end: pseidon_logs (MariaDB) -> Kafka (tansu) -> hour files -> Redis offsets."""
from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import os
from pathlib import Path

import pytest

from pseidon_dagster.core.ingest import ingest
from pseidon_dagster.core.partitioning import FileName
from tests.conftest import read_lines

BASE_TS = int(dt.datetime(2026, 11, 20, 7, tzinfo=dt.timezone.utc).timestamp() * 1000)
HOUR = 3_600_000


class InjectedFailure(RuntimeError):
    pass


def fail_before_commit(result):
    """before_commit hook: the files are published, the offsets not yet committed."""
    raise InjectedFailure(f"injected failure between publish and commit of plan {result.plan_id}")


def add_log(log_table, group, topic, fmt="txt:sep=pipe;ts=0", out="gzip", **extra):
    row = dict(log=topic, format=fmt, output_format=out, base_partition="lake", log_partition=f"raw/{topic}",
               quarantine="quarantine", log_group=group, enabled=1)
    row.update(extra)
    log_table.upsert([row])
    return log_table.get(topic, group)


def make_messages(n, hours=5, partitions=3, start=0):
    """n pipe-separated messages whose event times spread over `hours` hours, round-robin over partitions."""
    out = []
    for i in range(start, start + n):
        ts = BASE_TS + (i * 7919 % (hours * HOUR))
        out.append((i % partitions, f"{ts}|msg-{i}|x".encode()))
    return out


def data_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))


def lines_by_hour_dir(root: Path) -> dict[str, list[bytes]]:
    out = collections.defaultdict(list)
    for f in data_files(root):
        out[str(f.parent.relative_to(root))].extend(read_lines(f))
    return out


def test_end_to_end_three_partitions_several_hours(settings, log_table, kafka, store, group, redis_client):
    topic = kafka.topic(3)
    spec = add_log(log_table, group, topic)
    msgs = make_messages(3000)
    kafka.produce(topic, msgs)

    result = ingest(settings, spec, store)

    assert (result.read, result.written, result.quarantined, result.filtered) == (3000, 3000, 0, 0)
    assert result.committed
    root = Path(settings.data_dir) / "lake" / "raw" / topic
    by_dir = lines_by_hour_dir(root)
    # every message exactly once, in the directory of its own event hour
    seen = collections.Counter()
    for d, lines in by_dir.items():
        for line in lines:
            ts = int(line.split(b"|")[0])
            t = dt.datetime.fromtimestamp(ts / 1000, dt.timezone.utc)
            assert d == f"date={t:%Y%m%d}/hour={t:%Y%m%d%H}", (d, line)
            seen[line] += 1
    assert seen == collections.Counter(v for _, v in msgs)
    assert len(by_dir) == 5
    # Redis holds the high watermarks, in the original key scheme
    per_part = collections.Counter(p for p, _ in msgs)
    for p in range(3):
        assert redis_client.get(f"/{group}/offsets/{topic}/{p}") == str(per_part[p])
    assert redis_client.get(store.plan_key(topic)) is None
    # file names carry log, hour, partition and the offset range
    for f in data_files(root):
        name = FileName.parse(f.name)
        assert name is not None and name.log == topic and name.ext == "gz"
        assert f.parent.name == f"hour={dt.datetime.fromtimestamp(name.hour * 3600, dt.timezone.utc):%Y%m%d%H}"
        assert (name.start, name.end) == (0, per_part[name.partition])


def test_second_run_without_new_data_changes_nothing(settings, log_table, kafka, store, group, redis_client):
    topic = kafka.topic(3)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, make_messages(300))
    ingest(settings, spec, store)
    root = Path(settings.data_dir) / "lake"
    before = {f: (f.stat().st_mtime_ns, f.read_bytes()) for f in data_files(root)}
    offsets_before = store.all_offsets(topic)

    again = ingest(settings, spec, store)

    assert (again.read, again.written, len(again.files)) == (0, 0, 0)
    assert {f: (f.stat().st_mtime_ns, f.read_bytes()) for f in data_files(root)} == before
    assert store.all_offsets(topic) == offsets_before

    # new messages produce files only for the new offsets
    kafka.produce(topic, make_messages(90, start=300))
    third = ingest(settings, spec, store)
    assert third.written == 90
    for info in third.files:
        name = FileName.parse(os.path.basename(info.path))
        assert name.start == offsets_before[name.partition]
        assert name.end == offsets_before[name.partition] + 30
    all_lines = [line for lines in lines_by_hour_dir(root / "raw" / topic).values() for line in lines]
    assert sorted(all_lines) == sorted(v for _, v in make_messages(390))


def test_failure_after_publish_before_commit_is_replayed_without_duplicates(
        settings, log_table, kafka, store, group, redis_client):
    topic = kafka.topic(3)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, make_messages(1200))

    with pytest.raises(InjectedFailure):
        ingest(settings, spec, store, before_commit=fail_before_commit)
    root = Path(settings.data_dir) / "lake" / "raw" / topic
    first = {f.relative_to(root): f.read_bytes() for f in data_files(root)}
    assert first, "files were published before the failure"
    assert store.all_offsets(topic) == {}  # nothing committed
    assert redis_client.get(store.plan_key(topic)) is not None

    # more data arrives meanwhile: the retry must replay the stored plan, not a new one
    kafka.produce(topic, make_messages(30, start=1200))
    retry = ingest(settings, spec, store)

    assert retry.replayed and retry.written == 1200
    second = {f.relative_to(root): f.read_bytes() for f in data_files(root)}
    assert second == first  # same names, same bytes
    lines = [line for lines in lines_by_hour_dir(root).values() for line in lines]
    assert len(lines) == len(set(lines)) == 1200
    assert store.all_offsets(topic) == {0: 400, 1: 400, 2: 400}

    rest = ingest(settings, spec, store)
    assert rest.written == 30 and not rest.replayed
    lines = [line for lines in lines_by_hour_dir(root).values() for line in lines]
    assert len(lines) == len(set(lines)) == 1230


def test_rollover_cuts_segments_that_chain(settings, log_table, kafka, store, group):
    topic = kafka.topic(2)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, make_messages(2000, hours=3, partitions=2))
    small = dataclasses.replace(settings, writer=dataclasses.replace(settings.writer, rollover_size=4000))

    result = ingest(small, spec, store)

    assert result.written == 2000
    by_part = collections.defaultdict(set)
    for info in result.data_files:
        by_part[info.partition].add((info.start, info.end))
        assert info.raw_bytes < 4000 + 100
    for _p, ranges in by_part.items():
        ordered = sorted(ranges)
        assert ordered[0][0] == 0 and ordered[-1][1] == 1000
        assert all(a[1] == b[0] for a, b in zip(ordered, ordered[1:])), ordered
        assert len(ordered) >= 4


def test_bad_messages_go_to_quarantine_and_the_batch_survives(settings, log_table, kafka, store, group):
    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic)
    good = [(0, f"{BASE_TS + i}|ok-{i}".encode()) for i in range(50)]
    bad = [(0, b"not-a-number|bad"), (0, b"\xff\xfe|bin")]
    kafka.produce(topic, good[:25] + bad + good[25:] + [(0, None)])

    before_h = int(dt.datetime.now(dt.timezone.utc).timestamp()) // 3600
    result = ingest(settings, spec, store)
    after_h = int(dt.datetime.now(dt.timezone.utc).timestamp()) // 3600

    assert (result.read, result.written, result.quarantined, result.filtered) == (53, 50, 2, 1)
    # quarantine is filed under the hour the run was planned (read), in the data layout
    (qf,) = [f for f in result.files if f.kind == "quarantine"]
    assert before_h <= qf.hour <= after_h
    hour = dt.datetime.fromtimestamp(qf.hour * 3600, dt.timezone.utc)
    assert f"/date={hour:%Y%m%d}/hour={hour:%Y%m%d%H}/" in qf.path
    assert result.read == result.written + result.quarantined + result.filtered
    q = [f for f in result.files if f.kind == "quarantine"]
    assert len(q) == 1 and q[0].records == 2
    import base64
    import json

    recs = [json.loads(line) for line in read_lines(q[0].path)]
    assert [base64.b64decode(r["raw_base64"]) for r in recs] == [v for _, v in bad]
    assert all(r["partition"] == 0 and r["error"] for r in recs)
    assert [r["offset"] for r in recs] == [25, 26]


def test_replay_uses_the_planned_format_and_cut_rules_even_if_they_changed(
        settings, log_table, kafka, store, group):
    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, make_messages(500, partitions=1))
    small = dataclasses.replace(settings, writer=dataclasses.replace(settings.writer, rollover_size=3000))

    with pytest.raises(InjectedFailure):
        ingest(small, spec, store, before_commit=fail_before_commit)
    root = Path(settings.data_dir) / "lake" / "raw" / topic
    first = {f.relative_to(root): f.read_bytes() for f in data_files(root)}

    changed = add_log(log_table, group, topic, out="bzip2")  # the row changes before the retry ...
    retry = ingest(settings, changed, store)  # ... and so does the rollover size

    assert retry.replayed
    assert {f.relative_to(root): f.read_bytes() for f in data_files(root)} == first
    lines = [line for lines in lines_by_hour_dir(root).values() for line in lines]
    assert len(lines) == len(set(lines)) == 500


def test_a_run_reads_at_most_max_offsets_per_partition_and_the_next_goes_on(settings, log_table, kafka, store, group):
    topic = kafka.topic(3)
    spec = add_log(log_table, group, topic)
    msgs = make_messages(900)  # 300 per partition
    kafka.produce(topic, msgs)
    capped = dataclasses.replace(settings, max_offsets_per_partition=120)

    first = ingest(capped, spec, store)
    assert first.offsets == {p: (0, 120) for p in range(3)} and first.read == 360
    assert store.all_offsets(topic) == {p: 120 for p in range(3)}
    while sum(store.all_offsets(topic).values()) < 900:
        ingest(capped, spec, store)
    assert store.all_offsets(topic) == {p: 300 for p in range(3)}
    lines = [line for f in data_files(Path(settings.data_dir) / "lake") for line in read_lines(f)]
    assert sorted(lines) == sorted(v for _, v in msgs)
