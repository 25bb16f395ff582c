"""Backfills (core/rebuild.py, core/hourswap.py), edge cases: a bad message of a rebuilt hour goes to the hour's
rebuild quarantine file (replaced, not added to, by the next backfill), an hour with no messages is left unchanged, a
foreign file in a log's directory or a lake that is not local is refused with the reason, and a dry run says when a
backfill would shrink an hour. Real tansu, Redis and MariaDB."""
from __future__ import annotations

import dataclasses
import gzip
import json
from pathlib import Path

import pytest

from pseidon_dagster.core.hourswap import REBUILD_QUARANTINE_EXT
from pseidon_dagster.core.ingest import ingest
from pseidon_dagster.core.kafka import KafkaSource
from pseidon_dagster.core.partitioning import partition_dir
from pseidon_dagster.core.rebuild import REPLACED, UNCHANGED, Rebuilder, RebuildError
from tests.integration.core.test_ingest import BASE_TS, HOUR, add_log
from tests.integration.defs.test_backfill import H0, hourly, lines_of_hour, snapshot


def rebuild_quarantine(settings, topic: str, hour: int) -> list[dict]:
    d = Path(partition_dir(str(Path(settings.data_dir) / "quarantine"), f"raw/{topic}", hour))
    return [json.loads(line) for f in sorted(d.glob(f"*.{REBUILD_QUARANTINE_EXT}"))
            for line in gzip.decompress(f.read_bytes()).splitlines()]


def test_a_bad_message_of_a_rebuilt_hour_is_in_its_rebuild_quarantine_once(settings, log_table, kafka, store, group):
    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic)
    bad = f"{BASE_TS + HOUR + 5}|line\nbreak".encode()
    kafka.produce(topic, hourly(40, 2, 1) + [(0, bad)])
    ingest(settings, spec, store)

    for _ in range(2):  # the second backfill replaces the first one's quarantine file
        result = Rebuilder(settings, spec, store).run([H0 + 1])
        assert [(h.action, h.records_new, h.quarantined_new) for h in result.hours] == [(REPLACED, 20, 1)]
        records = rebuild_quarantine(settings, topic, H0 + 1)
        assert [(r["offset"], r["rebuild"], r["error"].split(":")[0]) for r in records] == [(40, True, "line break")]
    assert len(lines_of_hour(Path(settings.data_dir) / "lake", topic, H0 + 1)) == 20


def test_an_hour_without_messages_is_left_unchanged(settings, log_table, kafka, store, group):
    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, hourly(20, 2, 1))
    ingest(settings, spec, store)

    result = Rebuilder(settings, spec, store).run([H0 + 1, H0 + 5])

    empty = result.hours[1]
    assert (empty.action, empty.note) == (UNCHANGED, "no messages of this hour among the committed offsets")
    assert not Path(partition_dir(str(Path(settings.data_dir) / "lake"), f"raw/{topic}", H0 + 5)).exists()
    assert result.hours[0].action == REPLACED


def test_a_foreign_file_in_the_hours_directory_is_refused_and_the_hour_kept(settings, log_table, kafka, store, group):
    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, hourly(20, 2, 1))
    ingest(settings, spec, store)
    root = Path(settings.data_dir) / "lake"
    d = Path(partition_dir(str(root), f"raw/{topic}", H0))
    (d / ".hidden-editor-swap").write_text("ignored")
    (d / "notes.txt").write_text("someone else's")
    before = snapshot(root)

    with pytest.raises(RebuildError) as e:
        Rebuilder(settings, spec, store).run([H0])

    assert str(e.value) == (f"{d} holds notes.txt, which is not a file of log {topic!r}; a backfill replaces whole "
                            "directories, so a log's directories must not be shared")
    assert {k: v for k, v in snapshot(root).items() if not k.startswith(".rebuild/")} == before
    (d / "notes.txt").unlink()  # once the directory is the log's own, the next backfill completes and cleans up
    assert [h.action for h in Rebuilder(settings, spec, store).run([H0]).hours] == [REPLACED]
    assert not any(k.startswith(".rebuild/") for k in snapshot(root))
    assert len(lines_of_hour(root, topic, H0)) == 10


def test_no_hours_and_a_lake_that_is_not_local_are_refused(settings, log_table, kafka, store, group):
    spec = add_log(log_table, group, kafka.topic(1))
    with pytest.raises(RebuildError, match="^no hours to backfill$"):
        Rebuilder(settings, spec, store).run([])
    remote = dataclasses.replace(spec, base_partition="hdfs://nn:8020/lake")
    with pytest.raises(RebuildError) as e:
        Rebuilder(settings, remote, store)
    assert str(e.value) == (f"log {spec.log!r}: backfills swap hour directories atomically on local disk; "
                            "hdfs://nn:8020/lake is not local (HDFS/S3 lakes are not supported yet)")


def test_a_dry_run_says_when_the_backfill_would_shrink_an_hour(settings, log_table, kafka, store, group):
    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, hourly(40, 2, 1))
    ingest(settings, spec, store)

    class Expired(KafkaSource):
        """The real broker, but offsets 0-9 reported expired (tansu cannot delete records)."""

        def watermarks(self, topic, partitions=None, consumer=None):
            return {p: (max(lo, 10), hi) for p, (lo, hi) in super().watermarks(topic, partitions, consumer).items()}

    result = Rebuilder(settings, spec, store, Expired(settings)).run([H0], dry_run=True)

    assert result.hours[0].note == "would shrink from 20 to 15 records"
