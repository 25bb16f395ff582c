"""Retention (issue 14): expired hours leave Hive first, then the lake; expired quarantine files go too; a dry run
changes nothing; the log's other hours, its offsets and other logs are untouched."""
from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pseidon_dagster.core.ingest import ingest
from pseidon_dagster.core.partitioning import HOUR_MS, FileName
from pseidon_dagster.core.retention import Retention
from tests.conftest import write_conf
from tests.integration.core.test_ingest import add_log, data_files
from tests.integration.defs.test_backfill import H0, hourly


def keep_from(hour: int) -> int:
    """The keep that expires every hour before HOUR and none from it."""
    return int(time.time() * 1000) // HOUR_MS - hour


@pytest.mark.hive
def test_expired_hours_leave_hive_then_the_lake(tmp_path, settings, log_table, kafka, store, group, hive_port,
                                                 hive_db, hive_catalog):
    from pseidon_dagster.core.hive import create_table_for, registrar_for

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


def test_a_logs_retention_comes_from_its_row_else_the_config_and_the_schedule_runs_only_those(
        tmp_path, settings, mysql_url, kafka, store, group, instance):
    """:retention-hours / :quarantine-retention-hours of pseidon.edn, overridden per log by the optional
    pseidon_logs columns retention_hours / quarantine_retention_hours: retention_job without run config applies them,
    retention_schedule asks runs only for logs that have one, and a bad value names the log and the column."""
    import dataclasses

    import dagster as dg
    import sqlalchemy as sa

    from pseidon_dagster.core.logtable import LogConfigError, LogTable, create_table
    from pseidon_dagster.core.retention import keeps_for
    from pseidon_dagster.definitions import build_defs
    from pseidon_dagster.defs.ingest.constants import RESOURCE_KEY
    from pseidon_dagster.defs.ingest.resources import PseidonResource

    table = LogTable.from_url(mysql_url)
    with table.engine.begin() as c:
        c.execute(sa.text("DROP TABLE IF EXISTS pseidon_logs"))
    create_table(table.engine, with_retention=True)
    try:
        by_row, by_conf, bad = kafka.topic(2), kafka.topic(2), kafka.topic(2)
        keep = keep_from(H0 + 2)
        add_log(table, group, by_row, retention_hours=keep)  # expires hours H0, H0+1 of its own
        add_log(table, group, by_conf)                       # :quarantine-retention-hours only (below)
        with pytest.raises(LogConfigError, match=rf"{bad}.*retention_hours.*'0' is not a whole number"):
            add_log(table, group, bad, retention_hours=0)
        s = dataclasses.replace(settings, quarantine_retention_hours=10 ** 6)
        assert keeps_for(s, table.get(by_row, group)) == (keep, 10 ** 6)
        assert keeps_for(s, table.get(by_conf, group)) == (None, 10 ** 6)
        assert keeps_for(settings, table.get(by_conf, group)) == (None, None)

        for log in (by_row, by_conf):
            kafka.produce(log, hourly(200, 3, 2))
            ingest(settings, table.get(log, group), store)
        root = Path(settings.data_dir) / "lake" / "raw"
        pseidon = PseidonResource(config_path=str(write_conf(tmp_path / "p.edn", settings)))
        instance.add_dynamic_partitions("logs", [by_row, by_conf])
        defs = build_defs()
        result = defs.resolve_job_def("retention_job").execute_in_process(
            instance=instance, partition_key=by_row, resources={RESOURCE_KEY: pseidon})
        assert result.success
        assert {FileName.parse(f.name).hour for f in data_files(root / by_row)} == {H0 + 2}  # the row's retention
        result = defs.resolve_job_def("retention_job").execute_in_process(
            instance=instance, partition_key=by_conf, resources={RESOURCE_KEY: pseidon})
        assert result.success and len(data_files(root / by_conf)) == 6  # no retention: nothing dropped

        schedule, repo = defs.resolve_schedule_def("retention_schedule"), defs.get_repository_def()
        with dg.build_schedule_context(instance=instance, resources={RESOURCE_KEY: pseidon}, repository_def=repo,
                                       scheduled_execution_time=dt.datetime(2026, 12, 1, 3, 30)) as ctx:
            requests = schedule.evaluate_tick(ctx).run_requests
        assert [r.partition_key for r in requests] == [by_row]  # the log without a retention is left alone
        pseidon_all = PseidonResource(config_path=str(write_conf(tmp_path / "q.edn", settings,
                                                                 **{"retention-hours": 24 * 365})))
        with dg.build_schedule_context(instance=instance, resources={RESOURCE_KEY: pseidon_all}, repository_def=repo,
                                       scheduled_execution_time=dt.datetime(2026, 12, 1, 3, 30)) as ctx:
            requests = schedule.evaluate_tick(ctx).run_requests
        assert sorted(r.partition_key for r in requests) == sorted([by_row, by_conf])
    finally:
        table.engine.dispose()


def test_the_hours_window_follows_a_shorter_retention(tmp_path, settings, monkeypatch):
    from pseidon_dagster.defs.ingest import partitions

    now = dt.datetime(2026, 12, 1, 14, 25, tzinfo=dt.timezone.utc)
    monkeypatch.delenv("PSEIDON_HOURS_WINDOW_DAYS", raising=False)
    monkeypatch.setenv("PSEIDON_CONF", str(write_conf(tmp_path / "p.edn", settings, **{"retention-hours": 48})))
    assert partitions.window_start(now) == dt.datetime(2026, 11, 29, 14, tzinfo=dt.timezone.utc)
    monkeypatch.setenv("PSEIDON_CONF", str(write_conf(tmp_path / "q.edn", settings, **{"retention-hours": 24 * 30})))
    assert partitions.window_start(now) == dt.datetime(2026, 11, 24, tzinfo=dt.timezone.utc)  # the 7-day default
    monkeypatch.setenv("PSEIDON_CONF", str(tmp_path / "missing.edn"))
    assert partitions.window_start(now) == dt.datetime(2026, 11, 24, tzinfo=dt.timezone.utc)
