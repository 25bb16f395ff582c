"""Retention (issue 14): expired hours leave Hive first, then the lake; expired quarantine files go too; a dry run
changes nothing; the log's other hours, its offsets and other logs are untouched."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pseidon_dagster.core.ingest import ingest
from pseidon_dagster.core.partitioning import HOUR_MS, FileName
from pseidon_dagster.core.retention import Retention

from .conftest import write_conf
from .test_backfill import H0, hourly
from .test_ingest import add_log, data_files


def keep_from(hour: int) -> int:
    """The keep that expires every hour before HOUR and none from it."""
    return int(time.time() * 1000) // HOUR_MS - hour


@pytest.mark.hive
def test_expired_hours_leave_hive_then_the_lake(tmp_path, settings, log_table, kafka, store, group, hive_port,
                                                 hive_db, hive_catalog):
    from pseidon_dagster.core.catalog import create_table_for, registrar_for

    topic = kafka.topic(2)
    spec = add_log(log_table, group, topic, hive_url=f"//127.0.0.1:{hive_port}/{hive_db}", hive_table_name="t")
    create_table_for(settings, spec)
    kafka.produce(topic, hourly(300, 3, 2) + [(0, b"garbage")])
    ingest(settings, spec, store, register=registrar_for(settings, spec))
    root = Path(settings.data_dir) / "lake"
    offsets = store.all_offsets(topic)

    dry = Retention(settings, spec, store, keep_hours=keep_from(H0 + 2)).run_all(dry_run=True)
    assert [h.action for h in dry.hours] == ["would drop", "would drop"] and len(data_files(root)) == 6

    conf = write_conf(tmp_path / "p.edn", settings)
    out = subprocess.run([sys.executable, "-m", "pseidon_dagster.cli", "retention", topic, "--keep",
                          f"{keep_from(H0 + 2)}h", "--quarantine-keep=-1h", "--config", str(conf)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout.splitlines()[-1])
    assert [h["action"] for h in summary["hours"]] == ["dropped", "dropped"] and summary["quarantine_removed"] == 1
    assert hive_catalog.show_partitions(hive_db, "t") == ["dt=20261120/hr=2026112009"]
    assert {FileName.parse(f.name).hour for f in data_files(root)} == {H0 + 2}
    assert not (root / "raw" / topic / "date=20261120" / "hour=2026112007").exists()
    assert list((Path(settings.data_dir) / "quarantine").rglob("*.gz")) == []
    assert store.all_offsets(topic) == offsets
    assert Retention(settings, spec, store, keep_hours=keep_from(H0 + 2)).run_all().hours == []  # nothing left
