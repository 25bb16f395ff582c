"""Backfills (issue 9): rebuilding hours of a log from Kafka -- exactly the hour's committed messages, swapped in
atomically, read once per window, byte-identical when repeated, never moving offsets, refusing to shrink, finishing
after a kill. Real tansu (whose time index answers the partition start: the rebuild reads more, never less), Redis,
MariaDB and the Hive Thrift Server."""
from __future__ import annotations

import collections
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from pseidon_dagster.core.ingest import ingest
from pseidon_dagster.core.kafka import KafkaSource
from pseidon_dagster.core.partitioning import FileName, hour_start, partition_dir
from pseidon_dagster.core.rebuild import REFUSED, REPLACED, Rebuilder
from pseidon_dagster.defs.ingest.checks import verify_continuity
from tests.conftest import read_lines, write_conf
from tests.integration.core.test_ingest import BASE_TS, HOUR, add_log, data_files

H0 = BASE_TS // HOUR


def hourly(n: int, hours: int, partitions: int, start: int = 0) -> list[tuple[int, bytes]]:
    """n messages, hours in turn over `hours` hours (so every partition has every hour), round-robin partitions."""
    return [(i % partitions, f"{BASE_TS + ((i // partitions) % hours) * HOUR + i}|m{i}".encode())
            for i in range(start, start + n)]


def hour_of(v: bytes) -> int:
    return int(v.split(b"|")[0]) // HOUR


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(f.relative_to(root)): f.read_bytes() for f in data_files(root)}


def lines_of_hour(root: Path, topic: str, hour: int) -> list[bytes]:
    d = Path(partition_dir(str(root), f"raw/{topic}", hour))
    return [line for f in sorted(d.glob("*.gz")) for line in read_lines(f)]


def test_rebuilt_hours_hold_exactly_their_messages_and_a_repeat_changes_no_byte(settings, log_table, kafka, store,
                                                                                group):
    topic = kafka.topic(3)
    spec = add_log(log_table, group, topic)
    first, second = hourly(600, 5, 3), hourly(300, 5, 3, start=600)
    kafka.produce(topic, first)
    ingest(settings, spec, store)  # two tail runs: each hour holds files of two segments per partition
    kafka.produce(topic, second)
    ingest(settings, spec, store)
    root = Path(settings.data_dir) / "lake"
    before = snapshot(root)
    offsets = store.all_offsets(topic)

    result = Rebuilder(settings, spec, store).run([H0 + 1, H0 + 2])

    assert [h.action for h in result.hours] == [REPLACED, REPLACED]
    assert len(result.reads) == 1  # one contiguous window: Kafka is read once
    produced = first + second
    for h in (H0 + 1, H0 + 2):
        want = collections.Counter(v for _, v in produced if hour_of(v) == h)
        assert collections.Counter(lines_of_hour(root, topic, h)) == want
        report = next(r for r in result.hours if r.hour == h)
        assert report.records_new == report.records_now == sum(want.values())
    after = snapshot(root)
    rebuilt_dirs = {f"hour={hour_start(h):%Y%m%d%H}" for h in (H0 + 1, H0 + 2)}
    untouched = {k: v for k, v in before.items() if not any(d in k for d in rebuilt_dirs)}
    assert len(untouched) == len(before) - 12  # 2 hours x 3 partitions x 2 segments were rebuilt
    assert {k: after[k] for k in untouched} == untouched  # other hours are not touched
    assert store.all_offsets(topic) == offsets  # offsets never move because of a backfill
    for h in range(H0, H0 + 5):
        assert verify_continuity(settings, spec, h).passed
    assert [p for p in Path(settings.data_dir).rglob(".*")] == []

    again = Rebuilder(settings, spec, store).run([H0 + 1, H0 + 2])
    assert [h.action for h in again.hours] == [REPLACED, REPLACED]
    assert snapshot(root) == after  # byte-identical


def test_two_windows_are_two_reads_and_deleted_or_never_ingested_hours_come_back(settings, log_table, kafka, store,
                                                                                 group):
    topic = kafka.topic(2)
    spec = add_log(log_table, group, topic)
    produced = hourly(400, 6, 2)
    kafka.produce(topic, produced)
    latest = dataclasses.replace(settings, kafka_use_earliest=False)
    ingest(latest, spec, store)  # a log new to the ETL: starts at the end, its history was never ingested
    assert store.all_offsets(topic) == {0: 200, 1: 200}
    root = Path(settings.data_dir) / "lake"
    assert data_files(root) == []

    result = Rebuilder(settings, spec, store).run([H0, H0 + 1, H0 + 4])

    assert len(result.reads) == 2
    for h in (H0, H0 + 1, H0 + 4):
        assert sorted(lines_of_hour(root, topic, h)) == sorted(v for _, v in produced if hour_of(v) == h)
    assert lines_of_hour(root, topic, H0 + 2) == []
    # an hour deleted by hand comes back
    d = Path(partition_dir(str(root), f"raw/{topic}", H0 + 4))
    for f in d.iterdir():
        f.unlink()
    Rebuilder(settings, spec, store).run([H0 + 4])
    assert sorted(lines_of_hour(root, topic, H0 + 4)) == sorted(v for _, v in produced if hour_of(v) == H0 + 4)


def test_late_events_near_the_window_edges_stay_in_their_own_hours(settings, log_table, kafka, store, group):
    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic)
    # hour H0+1's messages, then H0+2's, with late events of H0+1 in the middle of H0+2's offsets
    early = [(0, f"{BASE_TS + HOUR + i}|early{i}".encode()) for i in range(50)]
    later = [(0, f"{BASE_TS + 2 * HOUR + i}|later{i}".encode()) for i in range(50)]
    late = [(0, f"{BASE_TS + 2 * HOUR - 1}|late{i}".encode()) for i in range(5)]  # hh:59:59.999 of H0+1
    kafka.produce(topic, early + later[:25] + late + later[25:])
    ingest(settings, spec, store)
    root = Path(settings.data_dir) / "lake"

    Rebuilder(settings, spec, store).run([H0 + 1])

    assert sorted(lines_of_hour(root, topic, H0 + 1)) == sorted(v for _, v in early + late)
    assert sorted(lines_of_hour(root, topic, H0 + 2)) == sorted(v for _, v in later)


def test_a_shrinking_rebuild_is_refused_and_reported_unless_allowed(settings, log_table, kafka, store, group):
    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic)
    produced = hourly(100, 2, 1)
    kafka.produce(topic, produced)
    ingest(settings, spec, store)
    root = Path(settings.data_dir) / "lake"
    before = snapshot(root)

    class Expired(KafkaSource):
        """The real broker, but offsets 0-19 reported expired (tansu cannot delete records)."""

        def watermarks(self, topic, partitions=None, consumer=None):
            return {p: (max(lo, 20), hi) for p, (lo, hi) in super().watermarks(topic, partitions, consumer).items()}

    refused = Rebuilder(settings, spec, store, Expired(settings)).run([H0, H0 + 1])
    assert [h.action for h in refused.hours] == [REFUSED, REFUSED]
    assert "kept as it is" in refused.hours[0].note
    assert refused.to_dict()["refused"] == [r["hour"] for r in refused.to_dict()["hours"]]
    assert snapshot(root) == before

    allowed = Rebuilder(settings, spec, store, Expired(settings)).run([H0, H0 + 1], allow_shrink=True)
    assert [h.action for h in allowed.hours] == [REPLACED, REPLACED]
    assert sum(h.records_new for h in allowed.hours) == 80


def test_dry_run_reports_per_hour_and_changes_nothing(settings, log_table, kafka, store, group):
    topic = kafka.topic(2)
    spec = add_log(log_table, group, topic)
    produced = hourly(200, 4, 2) + [(0, f"{BASE_TS + HOUR}|line\nbreak".encode())]
    kafka.produce(topic, produced)
    ingest(settings, spec, store)
    root = Path(settings.data_dir) / "lake"
    before = snapshot(root)

    result = Rebuilder(settings, spec, store).run([H0 + 1, H0 + 2], dry_run=True)

    assert snapshot(root) == before
    assert store.r.get(store.lease_key(topic)) is None
    h1 = result.hours[0].to_dict()
    assert h1["records_now"] == h1["records_new"] == 50 and h1["files_now"] == 2 and h1["quarantined_new"] == 1
    assert h1["action"] == "dry-run"


def test_reset_then_ingest_no_longer_duplicates(tmp_path, settings, log_table, kafka, store, group):
    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic)
    produced = hourly(1200, 1, 1)
    kafka.produce(topic, produced[:1000])
    ingest(settings, spec, store)
    kafka.produce(topic, produced[1000:])
    ingest(settings, spec, store)
    root = Path(settings.data_dir) / "lake"
    before = snapshot(root)
    conf = write_conf(tmp_path / "p.edn", settings)
    cli = [sys.executable, "-m", "pseidon_dagster.cli"]

    reset = subprocess.run([*cli, "offsets", "reset", topic, "--to", "earliest", "--config", str(conf)],
                           capture_output=True, text=True)
    assert reset.returncode == 0 and "moved back" in reset.stderr and "backfill" in reset.stderr
    out = subprocess.run([*cli, "ingest", topic, "--config", str(conf)], capture_output=True, text=True)

    assert out.returncode == 1
    assert "2 file(s) already in the lake" in out.stderr and "pseidon-dagster backfill" in out.stderr
    assert snapshot(root) == before and store.get(topic, [0]) == {0: 0}
    # the way out the message names: offsets back where they were, then rebuild the hour
    subprocess.run([*cli, "offsets", "reset", topic, "--to", "latest", "--config", str(conf)], check=True,
                   capture_output=True)
    assert store.load_reset_floor(topic) == {}
    rebuilt = subprocess.run([*cli, "backfill", topic, "--from", "2026-11-20T07:00", "--to", "2026-11-20T08:00",
                              "--config", str(conf)], capture_output=True, text=True)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert json.loads(rebuilt.stdout.splitlines()[-1])["hours"][0]["records_new"] == 1200
    lines = [line for f in data_files(root) for line in read_lines(f)]
    assert collections.Counter(lines) == collections.Counter(v for _, v in produced)


def test_cli_backfill_prints_a_report_and_a_json_summary(tmp_path, settings, log_table, kafka, store, group):
    topic = kafka.topic(2)
    add_log(log_table, group, topic)
    kafka.produce(topic, hourly(300, 3, 2))
    ingest(settings, log_table.get(topic, group), store)
    conf = write_conf(tmp_path / "p.edn", settings)
    out = subprocess.run([sys.executable, "-m", "pseidon_dagster.cli", "backfill", topic, "--from",
                          "2026-11-20T07:00", "--to", "2026-11-20T09:00", "--dry-run", "--config", str(conf)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["dry_run"] and [h["hour"] for h in summary["hours"]] == ["2026-11-20T07:00", "2026-11-20T08:00"]
    assert [h["records_new"] for h in summary["hours"]] == [100, 100]
    assert "2026-11-20T07:00  now       100 records" in out.stderr
    bad = subprocess.run([sys.executable, "-m", "pseidon_dagster.cli", "backfill", topic, "--from",
                          "2026-11-20T07:30", "--to", "2026-11-20T09:00", "--config", str(conf)],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "not on the hour" in bad.stderr


@pytest.mark.hive
def test_hive_counts_follow_the_swap_and_a_sigkill_during_it_leaves_a_readable_hour(
        tmp_path, settings, log_table, kafka, store, group, hive_port, hive_db, hive_catalog):
    from pseidon_dagster.core.hive import create_table_for, registrar_for

    topic = kafka.topic(2)
    spec = add_log(log_table, group, topic, hive_url=f"//127.0.0.1:{hive_port}/{hive_db}", hive_table_name="t")
    create_table_for(settings, spec)
    produced = hourly(400, 2, 2)
    kafka.produce(topic, produced[:300])
    ingest(settings, spec, store, register=registrar_for(settings, spec))
    kafka.produce(topic, produced[300:])
    ingest(settings, spec, store, register=registrar_for(settings, spec))

    def counts():
        rows = hive_catalog.execute(f"SELECT hr, count(*) FROM `{hive_db}`.`t` GROUP BY hr ORDER BY hr", fetch=True)
        return {hr: n for hr, n in rows}

    want = {"2026112007": 200, "2026112008": 200}
    assert counts() == want
    # duplicate an hour's records by hand (the situation a backfill repairs), then rebuild it through Hive
    d = Path(partition_dir(str(Path(settings.data_dir) / "lake"), f"raw/{topic}", H0))
    f = sorted(d.glob("*.gz"))[0]
    name = FileName.parse(f.name)
    (d / str(dataclasses.replace(name, start=name.start + 1, end=name.end + 1))).write_bytes(f.read_bytes())
    assert counts()["2026112007"] > 200
    result = Rebuilder(settings, spec, store).run([H0], allow_shrink=True)
    assert result.hours[0].action == REPLACED and counts() == want

    # a backfill killed at each point of the swap leaves a readable hour, and the next run finishes it
    conf = write_conf(tmp_path / "p.edn", settings, **{"lease-ttl-ms": 2000})
    cli = [sys.executable, "-m", "pseidon_dagster.cli", "backfill", topic, "--from", "2026-11-20T07:00", "--to",
           "2026-11-20T09:00", "--config", str(conf)]
    for point in ("swap-hive-new", "swap-exchanged"):
        proc = subprocess.Popen(cli, env={**os.environ, "PSEIDON_FAILPOINTS": f"{point}=30"},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state = store.load_rebuild(topic) or {}
            steps = [h["step"] for h in state.get("hours", {}).values()]
            if ("hive-new" in steps and point == "swap-hive-new") or ("hive-new" in steps and point ==
                                                                      "swap-exchanged" and _exchanged(state)):
                break
            time.sleep(0.05)
        time.sleep(0.3)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert counts() == want, point  # readable, complete, never a mix
        after = subprocess.run(cli, capture_output=True, text=True, timeout=120)
        assert after.returncode == 0, after.stderr[-2000:]
        assert counts() == want and store.load_rebuild(topic) is None
        assert [p for p in Path(settings.data_dir).rglob(".*")] == []


def _exchanged(state) -> bool:
    return any(os.path.isdir(h["fresh"] + ".old") for h in state["hours"].values())


# --- through Dagster -----------------------------------------------------------------------------------------------

def backfill_run(instance, pseidon, log: str, first: str, last: str, **config):
    """What the backfill daemon launches for a backfill of lake_files over log x [first, last] with the single-run
    backfill policy: one run of the asset job carrying the partition range tags."""
    from pseidon_dagster.defs.ingest.assets import rebuild_hours
    from pseidon_dagster.defs.ingest.constants import RESOURCE_KEY

    return dg.materialize(
        [rebuild_hours], instance=instance, resources={RESOURCE_KEY: pseidon}, raise_on_error=False,
        tags={"dagster/asset_partition_range_start": f"{first}|{log}",
              "dagster/asset_partition_range_end": f"{last}|{log}"},
        run_config={"ops": {"rebuild_hours": {"config": config}}} if config else None)


def test_a_dagster_backfill_of_a_log_and_hour_range_rebuilds_exactly_those_hours(
        pseidon, instance, settings, log_table, kafka, store, group):
    from pseidon_dagster.defs.ingest.constants import LAKE_FILES, OFFSET_CONTINUITY, RECORD_COUNTS

    topic, other = kafka.topic(2), kafka.topic(1)
    spec = add_log(log_table, group, topic)
    add_log(log_table, group, other)
    produced = hourly(600, 6, 2)
    kafka.produce(topic, produced)
    kafka.produce(other, hourly(60, 6, 1))
    ingest(settings, spec, store)
    ingest(settings, log_table.get(other, group), store)
    instance.add_dynamic_partitions("logs", [topic, other])
    root = Path(settings.data_dir) / "lake"
    before = snapshot(root)
    offsets = store.all_offsets(topic), store.all_offsets(other)

    result = backfill_run(instance, pseidon, topic, "2026-11-20-08:00", "2026-11-20-10:00")

    assert result.success
    keys = {f"2026-11-20-{h:02d}:00|{topic}" for h in (8, 9, 10)}
    mats = {str(e.event_specific_data.materialization.partition): e.event_specific_data.materialization
            for e in result.all_events if e.event_type_value == "ASSET_MATERIALIZATION"}
    assert set(mats) == keys
    for key, mat in mats.items():
        h = _hour(key)
        want = sorted(v for _, v in produced if hour_of(v) == h)
        assert sorted(lines_of_hour(root, topic, h)) == want
        assert mat.metadata["records"].value == len(want) and mat.metadata["action"].value == "replaced"
    assert keys <= instance.get_materialized_partitions(LAKE_FILES)
    checks = {}
    for name in (OFFSET_CONTINUITY, RECORD_COUNTS):
        key = dg.AssetCheckKey(LAKE_FILES, name)
        for rec in instance.event_log_storage.get_asset_check_execution_history(key, limit=100):
            checks[(name, rec.partition)] = rec.status.value
    assert {checks[(n, k)] for n in (OFFSET_CONTINUITY, RECORD_COUNTS) for k in keys} == {"SUCCEEDED"}
    after = snapshot(root)
    assert {k: v for k, v in after.items() if other in k} == {k: v for k, v in before.items() if other in k}
    assert (store.all_offsets(topic), store.all_offsets(other)) == offsets
    # the same backfill again changes no byte
    assert backfill_run(instance, pseidon, topic, "2026-11-20-08:00", "2026-11-20-10:00").success
    assert snapshot(root) == after

    dry = backfill_run(instance, pseidon, topic, "2026-11-20-07:00", "2026-11-20-07:00", dry_run=True)
    assert dry.success
    observed = [e.event_specific_data.asset_observation for e in dry.all_events
                if e.event_type_value == "ASSET_OBSERVATION"]
    assert len(observed) == 1 and observed[0].metadata["records_before"].value == 100
    assert observed[0].metadata["records"].value == 100 and snapshot(root) == after


def _hour(key: str) -> int:
    import datetime as _dt

    t = _dt.datetime.strptime(key.split("|")[0], "%Y-%m-%d-%H:%M").replace(tzinfo=_dt.timezone.utc)
    return int(t.timestamp()) // 3600
