"""Compaction (issue 14): a closed hour with many small files is rewritten into fewer files named for the union of
their ranges, through the backfill's atomic swap -- every message exactly once afterwards, offset_continuity
green, Hive counts unchanged, nothing to do (and no byte changed) when run again."""
from __future__ import annotations

import collections
import subprocess
import sys
from pathlib import Path

import pytest

from pseidon_dagster.core.compact import Compactor, compact
from pseidon_dagster.core.ingest import ingest
from pseidon_dagster.core.partitioning import FileName
from pseidon_dagster.defs.ingest.checks import verify_continuity
from tests.conftest import read_lines, write_conf
from tests.integration.core.test_ingest import add_log, data_files
from tests.integration.defs.test_backfill import H0, hourly, snapshot


def tail_runs(settings, spec, store, kafka, topic, runs: int, per_run: int, hours: int = 2, partitions: int = 2):
    produced = []
    for r in range(runs):
        msgs = hourly(per_run, hours, partitions, start=r * per_run)
        kafka.produce(topic, msgs)
        ingest(settings, spec, store)
        produced += msgs
    return produced


def test_an_hour_of_many_small_files_becomes_one_file_per_partition(settings, log_table, kafka, store, group):
    topic = kafka.topic(2)
    spec = add_log(log_table, group, topic)
    produced = tail_runs(settings, spec, store, kafka, topic, runs=6, per_run=40)
    root = Path(settings.data_dir) / "lake"
    assert len(data_files(root)) == 6 * 2 * 2  # runs x partitions x hours
    offsets = store.all_offsets(topic)

    result = compact(settings, spec, store, min_files=2)

    assert [h.action for h in result.hours] == ["replaced", "replaced"]
    names = [FileName.parse(f.name) for f in data_files(root)]
    assert len(names) == 4  # one file per (partition, hour)
    assert {(n.partition, n.start, n.end) for n in names} == {(0, 0, 120), (1, 0, 120)}
    lines = [line for f in data_files(root) for line in read_lines(f)]
    assert collections.Counter(lines) == collections.Counter(v for _, v in produced)
    for h in (H0, H0 + 1):
        assert verify_continuity(settings, spec, h).passed
    assert store.all_offsets(topic) == offsets
    assert [p for p in Path(settings.data_dir).rglob(".*")] == []
    before = snapshot(root)
    again = compact(settings, spec, store, min_files=2)
    assert again.hours == [] and snapshot(root) == before  # compact already: no candidate, no byte changed
    # the tail goes on after a compaction: its next files chain on
    kafka.produce(topic, hourly(20, 2, 2, start=240))
    ingest(settings, spec, store)
    for h in (H0, H0 + 1):
        assert verify_continuity(settings, spec, h).passed


def test_compaction_leaves_hours_the_tail_may_still_fill_and_respects_the_rollover_size(
        settings, log_table, kafka, store, group):
    import dataclasses

    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic)
    tail_runs(settings, spec, store, kafka, topic, runs=5, per_run=100, hours=1, partitions=1)
    c = Compactor(settings, spec, store, min_files=2)
    assert c.candidates(older_than_hours=10 ** 6) == []  # "closed" only a million hours ago: nothing is
    small = dataclasses.replace(settings, writer=dataclasses.replace(settings.writer, rollover_size=5000))
    result = Compactor(small, spec, store, min_files=2).run([H0])
    sizes = sorted(f.raw_bytes for f in result.hours[0].files)
    assert len(sizes) >= 2 and all(s <= 5000 for s in sizes[:-1])
    names = sorted((n.start, n.end) for n in (FileName.parse(f.name) for f in data_files(
        Path(settings.data_dir) / "lake")))
    assert all(a[1] == b[0] for a, b in zip(names, names[1:]))  # merged ranges still chain


@pytest.mark.hive
def test_hive_counts_do_not_change_and_the_cli_reports(tmp_path, settings, log_table, kafka, store, group,
                                                       hive_port, hive_db, hive_catalog):
    from pseidon_dagster.core.hive import create_table_for, registrar_for

    topic = kafka.topic(2)
    spec = add_log(log_table, group, topic, hive_url=f"//127.0.0.1:{hive_port}/{hive_db}", hive_table_name="t",
                   out="parquet")
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    (schemas / f"{topic}.json").write_text('{"columns": [{"name": "ts", "type": "bigint"}, '
                                           '{"name": "msg", "type": "string"}]}')
    import dataclasses

    s = dataclasses.replace(settings, schema_dir=str(schemas))
    create_table_for(s, spec)
    for r in range(4):
        kafka.produce(topic, hourly(50, 2, 2, start=r * 50))
        ingest(s, spec, store, register=registrar_for(s, spec))

    def counts():
        return hive_catalog.execute(f"SELECT hr, count(*) FROM `{hive_db}`.`t` GROUP BY hr ORDER BY hr", fetch=True)

    before = counts()
    conf = write_conf(tmp_path / "p.edn", s, **{"schema-dir": str(schemas)})
    out = subprocess.run([sys.executable, "-m", "pseidon_dagster.cli", "compact", topic, "--min-files", "1",
                          "--config", str(conf)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert '"replaced": 2' in out.stdout.splitlines()[-1]
    assert counts() == before == [("2026112007", 100), ("2026112008", 100)]
    assert len(data_files(Path(settings.data_dir) / "lake")) == 4


def test_the_dagster_compact_job_reports_the_hours_it_compacted(pseidon, instance, settings, log_table, kafka,
                                                                store, group):
    from pseidon_dagster.definitions import build_defs
    from pseidon_dagster.defs.ingest.constants import LAKE_FILES, RESOURCE_KEY

    topic = kafka.topic(2)
    spec = add_log(log_table, group, topic)
    tail_runs(settings, spec, store, kafka, topic, runs=6, per_run=40)
    instance.add_dynamic_partitions("logs", [topic])
    job = build_defs().resolve_job_def("compact_job")
    result = job.execute_in_process(instance=instance, partition_key=topic, resources={RESOURCE_KEY: pseidon},
                                    run_config={"ops": {"compact_log": {"config": {"min_files": 2}}}})
    assert result.success and result.dagster_run.tags["log"] == topic
    mats = [e.event_specific_data.materialization for e in result.all_events
            if e.event_type_value == "ASSET_MATERIALIZATION"]
    assert {str(m.partition) for m in mats} == {f"2026-11-20-07:00|{topic}", f"2026-11-20-08:00|{topic}"}
    assert all(m.asset_key == LAKE_FILES and m.metadata["files"].value == 2 for m in mats)
    assert len(data_files(Path(settings.data_dir) / "lake")) == 4
