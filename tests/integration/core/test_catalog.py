"""Hive partition registration, schemas and table creation against a real HiveServer2 (Spark's Thrift Server, see
tests/hive_fixtures.py): real ingests (MariaDB pseidon_logs, tansu, Redis), rows counted through Hive. The same
without a server (hive_url parsing, SQL quoting, which partitions a run registers): tests/unit/core/hive/.
"""
from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import gzip
import json

import pyarrow as pa
import pytest
import sqlalchemy as sa

from pseidon_dagster.core.config import from_mapping
from pseidon_dagster.core.hive import CatalogError, create_table_for, hive_schema_for, registrar_for
from pseidon_dagster.core.ingest import Ingestor, ingest
from pseidon_dagster.core.partitioning import HOUR_MS
from tests.integration.core.test_ingest import BASE_TS, HOUR, add_log, make_messages
from tests.unit.core.hive.test_registration import file_info, log_spec, result_of

BASE_HOUR = BASE_TS // HOUR_MS  # 2026-11-20 07:00 UTC


PIPE_COLUMNS = [("ts", "bigint"), ("msg", "string"), ("x", "string")]


def _expected_by_hour(msgs) -> dict[tuple[str, str], int]:
    out = collections.Counter()
    for _, v in msgs:
        t = dt.datetime.fromtimestamp(int(v.split(b"|")[0]) / 1000, dt.timezone.utc)
        out[(f"{t:%Y%m%d}", f"{t:%Y%m%d%H}")] += 1
    return dict(out)


def _counts(cat, db, table) -> dict[tuple[str, str], int]:
    rows = cat.execute(f"SELECT dt, hr, count(*) FROM `{db}`.`{table}` GROUP BY dt, hr", fetch=True)
    return {(d, h): n for d, h, n in rows}


@pytest.mark.hive
def test_ingest_registers_every_hour_and_hive_counts_match(settings, log_table, kafka, store, group, hive_port,
                                                           hive_db, hive_catalog):
    topic = kafka.topic(3)
    spec = add_log(log_table, group, topic, hive_url=f"//127.0.0.1:{hive_port}/{hive_db}",
                   hive_table_name="events", hive_user="etl")
    ddl = create_table_for(settings, spec, PIPE_COLUMNS)
    assert "CREATE EXTERNAL TABLE IF NOT EXISTS" in ddl and "STORED AS TEXTFILE" in ddl
    assert hive_catalog.table_exists(hive_db, "events")
    msgs = make_messages(900, hours=4, partitions=3)
    kafka.produce(topic, msgs)

    result = ingest(settings, spec, store, register=registrar_for(settings, spec))

    expected = _expected_by_hour(msgs)
    specs = sorted(f"dt={d}/hr={h}" for d, h in expected)
    assert result.committed and result.written == 900
    assert sorted(result.registered) == specs
    assert hive_catalog.show_partitions(hive_db, "events") == specs
    assert _counts(hive_catalog, hive_db, "events") == expected
    rows = hive_catalog.execute(f"SELECT count(DISTINCT msg), min(x), max(x) FROM `{hive_db}`.`events`", fetch=True)
    assert rows == [(900, "x", "x")]
    # the schema read back from Hive (what the Parquet writer uses), without the partition columns
    assert hive_schema_for(settings, spec) == pa.schema([("ts", pa.int64()), ("msg", pa.string()),
                                                         ("x", pa.string())])


@pytest.mark.hive
def test_hive_down_blocks_the_commit_and_the_retry_registers(settings, log_table, kafka, store, group, hive_port,
                                                             hive_db, hive_catalog, redis_client):
    import socket

    fast = dataclasses.replace(settings, hive=dataclasses.replace(settings.hive, retries=1, retry_backoff_s=0.05))
    topic = kafka.topic(2)
    good_url = f"//127.0.0.1:{hive_port}/{hive_db}"
    spec = add_log(log_table, group, topic, hive_url=good_url, hive_table_name="events")
    create_table_for(fast, spec, PIPE_COLUMNS)
    first = make_messages(200, hours=2, partitions=2)
    kafka.produce(topic, first)
    assert ingest(fast, spec, store, register=registrar_for(fast, spec)).committed
    offsets_before = store.all_offsets(topic)
    assert offsets_before == {0: 100, 1: 100}

    # Hive goes away (the row now points at a closed port) while more data arrives
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    down = add_log(log_table, group, topic, hive_url=f"//127.0.0.1:{closed}/{hive_db}", hive_table_name="events")
    second = make_messages(300, hours=3, partitions=2, start=200)
    kafka.produce(topic, second)
    with pytest.raises(CatalogError) as e:
        ingest(fast, down, store, register=registrar_for(fast, down))
    msg = str(e.value)
    assert topic in msg and f"{hive_db}.events" in msg and "not reachable" in msg and "dt=20261120/hr=" in msg
    assert store.all_offsets(topic) == offsets_before  # nothing committed
    assert redis_client.get(store.plan_key(topic)) is not None  # the plan stays for the retry

    # Hive is back: the retry replays the same plan, registers, and commits
    kafka.produce(topic, make_messages(20, hours=1, partitions=2, start=500))
    back = add_log(log_table, group, topic, hive_url=good_url, hive_table_name="events")
    retry = ingest(fast, back, store, register=registrar_for(fast, back))
    assert retry.replayed and retry.committed and retry.written == 300
    assert store.all_offsets(topic) == {0: 250, 1: 250}
    assert redis_client.get(store.plan_key(topic)) is None

    written = first + second
    assert _counts(hive_catalog, hive_db, "events") == _expected_by_hour(written)
    rows = hive_catalog.execute(f"SELECT count(*), count(DISTINCT msg) FROM `{hive_db}`.`events`", fetch=True)
    assert rows == [(500, 500)]  # every message once: no duplicates from the failed run


@pytest.mark.hive
def test_date_only_layout_registers_days(settings, log_table, kafka, store, group, hive_port, hive_db,
                                         hive_catalog):
    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic, hive_url=f"//127.0.0.1:{hive_port}/{hive_db}", hive_table_name="daily")
    spec = dataclasses.replace(spec, date_format="date")
    ddl = create_table_for(settings, spec, PIPE_COLUMNS)
    assert "PARTITIONED BY (`dt` string)" in ddl
    msgs = [(0, f"{BASE_TS + i * 5 * HOUR}|m{i}|x".encode()) for i in range(12)]  # 07:00 on day 1 .. day 3
    kafka.produce(topic, msgs)

    result = ingest(settings, spec, store, register=registrar_for(settings, spec))

    assert result.registered == ["dt=20261120", "dt=20261121", "dt=20261122"]
    assert hive_catalog.show_partitions(hive_db, "daily") == result.registered
    rows = hive_catalog.execute(f"SELECT dt, count(*) FROM `{hive_db}`.`daily` GROUP BY dt ORDER BY dt", fetch=True)
    assert rows == [("20261120", 4), ("20261121", 5), ("20261122", 3)]


@pytest.mark.hive
def test_existing_partition_without_location_is_repointed(settings, log_table, kafka, store, group, hive_port,
                                                          hive_db, hive_catalog):
    """The original registered dt=/hr= partitions without LOCATION (Hive then reads <table>/dt=../hr=.., which is
    empty). Registering such a partition again moves it to the directory the files are in."""
    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic, hive_url=f"//127.0.0.1:{hive_port}/{hive_db}", hive_table_name="legacy")
    create_table_for(settings, spec, PIPE_COLUMNS)
    hive_catalog.execute(f"ALTER TABLE `{hive_db}`.`legacy` ADD IF NOT EXISTS PARTITION "
                         f"(dt='20261120', hr='2026112007')")
    msgs = [(0, f"{BASE_TS + i}|m{i}|x".encode()) for i in range(25)]
    kafka.produce(topic, msgs)

    ingest(settings, spec, store, register=registrar_for(settings, spec))

    assert _counts(hive_catalog, hive_db, "legacy") == {("20261120", "2026112007"): 25}


@pytest.mark.hive
def test_hive_schema_is_read_on_every_call(settings, hive_port, hive_db, hive_catalog):
    spec = log_spec(output_format="parquet", hive_url=f"//127.0.0.1:{hive_port}/{hive_db}", hive_table_name="typed",
                    base_partition=str(settings.data_dir))
    create_table_for(settings, spec, [("id", "bigint"), ("name", "varchar(20)"), ("code", "char(3)"),
                                      ("amount", "decimal(12,2)"), ("ratio", "float"), ("score", "double"),
                                      ("ok", "boolean"), ("small", "smallint"), ("tiny", "tinyint"),
                                      ("n", "int"), ("at", "timestamp"), ("day", "date"), ("raw", "binary"),
                                      ("tags", "array<string>"), ("attrs", "map<string,int>"),
                                      ("point", "struct<x:double,y:double>")])
    schema = hive_schema_for(settings, spec)
    assert schema.names == ["id", "name", "code", "amount", "ratio", "score", "ok", "small", "tiny", "n", "at",
                            "day", "raw", "tags", "attrs", "point"]
    assert schema.field("id").type == pa.int64() and schema.field("name").type == pa.string()
    assert schema.field("amount").type == pa.decimal128(12, 2) and schema.field("ratio").type == pa.float32()
    assert schema.field("tiny").type == pa.int8() and schema.field("day").type == pa.date32()
    assert pa.types.is_timestamp(schema.field("at").type) and schema.field("raw").type == pa.binary()
    assert schema.field("tags").type == pa.list_(pa.string())
    assert schema.field("attrs").type == pa.map_(pa.string(), pa.int32())
    assert schema.field("point").type == pa.struct([("x", pa.float64()), ("y", pa.float64())])

    hive_catalog.execute(f"ALTER TABLE `{hive_db}`.`typed` ADD COLUMNS (`extra` string)")
    assert hive_schema_for(settings, spec).names[-1] == "extra"  # no caching

    missing = dataclasses.replace(spec, hive_table_name="nope")
    with pytest.raises(CatalogError, match="nope"):
        hive_schema_for(settings, missing)
    assert hive_schema_for(settings, dataclasses.replace(spec, hive_url=None)) is None


@pytest.mark.hive
def test_parquet_registration_and_counts_through_hive(settings, log_table, kafka, store, group, hive_port, hive_db,
                                                      hive_catalog):
    topic = kafka.topic(2)
    spec = add_log(log_table, group, topic, fmt="txt:sep=comma;ts=0", out="parquet",
                   hive_url=f"//127.0.0.1:{hive_port}/{hive_db}", hive_table_name="sales")
    create_table_for(settings, spec, [("ts", "bigint"), ("customer", "string"), ("amount", "double")])
    msgs = [(i % 2, f"{BASE_TS + (i * 7919) % (3 * HOUR)},c{i % 7},{i}.5".encode()) for i in range(400)]
    kafka.produce(topic, msgs)

    # the Parquet writer takes its schema from the Hive table (hive.hive_schema_for)
    result = ingest(settings, spec, store, register=registrar_for(settings, spec))

    assert result.committed and result.written == 400 and result.quarantined == 0
    assert all(f.path.endswith(".parquet") for f in result.data_files)
    expected = collections.Counter()
    for _, v in msgs:
        t = dt.datetime.fromtimestamp(int(v.split(b",")[0]) / 1000, dt.timezone.utc)
        expected[(f"{t:%Y%m%d}", f"{t:%Y%m%d%H}")] += 1
    assert hive_catalog.show_partitions(hive_db, "sales") == sorted(f"dt={d}/hr={h}" for d, h in expected)
    assert _counts(hive_catalog, hive_db, "sales") == dict(expected)
    rows = hive_catalog.execute(f"SELECT count(DISTINCT customer), sum(amount) FROM `{hive_db}`.`sales`",
                                fetch=True)
    assert rows == [(7, sum(i + 0.5 for i in range(400)))]


@pytest.mark.hive
def test_cli_creates_the_table_and_lists_partitions(settings, log_table, kafka, store, group, hive_port, hive_db,
                                                    hive_catalog, tmp_path):
    import subprocess
    import sys

    topic = kafka.topic(1)
    add_log(log_table, group, topic, hive_url=f"//127.0.0.1:{hive_port}/{hive_db}", hive_table_name="clicks")
    kafka.produce(topic, make_messages(40, hours=2, partitions=1))
    conf = tmp_path / "pseidon.edn"
    conf.write_text(f'{{:etl-db-host "{settings.etl_db_url}" :etl-group "{group}" :kafka-use-earliest true '
                    f':kafka-brokers "{settings.bootstrap_servers}" :redis-conf {{:host "127.0.0.1:6379"}} '
                    f':data-dir "{settings.data_dir}" :writer {{:allow-all-ts true}}}}')
    cli = [sys.executable, "-m", "pseidon_dagster.cli"]

    made = subprocess.run(cli + ["hive", "create-table", topic, "--config", str(conf)], capture_output=True,
                          text=True)
    assert made.returncode == 0, made.stderr
    assert "CREATE EXTERNAL TABLE IF NOT EXISTS" in made.stdout and hive_catalog.table_exists(hive_db, "clicks")
    run = subprocess.run(cli + ["ingest", topic, "--config", str(conf)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    listed = subprocess.run(cli + ["hive", "partitions", topic, "--config", str(conf)], capture_output=True,
                            text=True, check=True).stdout.split()
    assert listed == sorted(summary["registered"]) and len(listed) >= 1
    rows = hive_catalog.execute(f"SELECT count(*) FROM `{hive_db}`.`clicks`", fetch=True)
    assert rows == [(40,)]


# -- the registration hook on its own ------------------------------------------------------------------------------


def _gz_lines(path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress("".join(f"{line}\n" for line in lines).encode()))


@pytest.mark.hive
def test_registrar_registers_distinct_partitions_and_returns_specs(tmp_path, hive_port, hive_db, hive_catalog):
    """Two files in each of three hours: three partitions, each at its hour's directory (Hive reads their rows);
    the table is named db.table in hive_table_name, the hive_url's database is another one."""
    s = from_mapping({"data-dir": str(tmp_path), "hive": {"retries": 1, "retry-backoff-ms": 50}})
    spec = log_spec(base_partition=str(tmp_path / "lake"), hive_url=f"//127.0.0.1:{hive_port}/default",
                    hive_table_name=f"{hive_db}.clicks_raw")
    create_table_for(s, spec, PIPE_COLUMNS)
    files = []
    for h in (7, 8, 9):
        for p in (0, 1):
            path = tmp_path / f"lake/raw/clicks/date=20261120/hour=20261120{h:02d}/p{p}.gz"
            _gz_lines(path, [f"{BASE_TS + (h - 7) * HOUR + i}|m{h}-{p}-{i}|x" for i in range(p + 2)])
            files.append(file_info(str(path), BASE_HOUR + h - 7))

    register = registrar_for(s, spec)
    specs = ["dt=20261120/hr=2026112007", "dt=20261120/hr=2026112008", "dt=20261120/hr=2026112009"]
    assert register(result_of(files)) == specs
    assert hive_catalog.show_partitions(hive_db, "clicks_raw") == specs
    assert not hive_catalog.table_exists("default", "clicks_raw")
    assert _counts(hive_catalog, hive_db, "clicks_raw") == {("20261120", f"20261120{h:02d}"): 5 for h in (7, 8, 9)}
    assert register(result_of(files)) == specs  # again: idempotent, still three partitions
    assert hive_catalog.show_partitions(hive_db, "clicks_raw") == specs


@pytest.mark.hive
def test_registration_follows_the_row_the_plan_froze(settings, log_table, kafka, store, group, hive_port, hive_db,
                                                     hive_catalog):
    """Dagster's register step re-reads the row. The plan froze the layout (date_format, with format, output_format,
    base_partition, log_partition and quarantine: plan.FROZEN_ROW_FIELDS); a row changed to date-only after the
    stage must not make the register step add date-only partitions to the hourly table the files were written for.
    (hive_url and hive_table_name are not frozen: registration goes where the row points now.)"""
    with log_table.engine.begin() as c:
        c.execute(sa.text("ALTER TABLE pseidon_logs ADD COLUMN date_format varchar(100) DEFAULT 'datehour'"))
    topic = kafka.topic(2)
    hive_url = f"//127.0.0.1:{hive_port}/{hive_db}"
    spec = add_log(log_table, group, topic, hive_url=hive_url, hive_table_name="events")
    create_table_for(settings, spec, PIPE_COLUMNS)
    msgs = [(i % 2, f"{BASE_TS + i * HOUR // 40}|m{i}|x".encode()) for i in range(120)]  # 40 an hour, 3 hours
    kafka.produce(topic, msgs)
    staged = Ingestor(settings, spec, store, owner="run-1").stage()
    assert staged.plan_id and not staged.committed

    changed = add_log(log_table, group, topic, hive_url=hive_url, hive_table_name="events", date_format="date")
    assert not changed.hourly
    ing = Ingestor(settings, changed, store, owner="run-1", register=registrar_for(settings, changed))
    result = store.load_staged(topic, staged.plan_id)  # as the register op reads it
    ing.register_files(result)
    ing.commit(result)

    expected = _expected_by_hour(msgs)
    assert result.committed and store.all_offsets(topic) == {0: 60, 1: 60}
    assert hive_catalog.show_partitions(hive_db, "events") == sorted(f"dt={d}/hr={h}" for d, h in expected)
    assert _counts(hive_catalog, hive_db, "events") == expected


@pytest.mark.hive
def test_the_run_summary_names_the_partitions_hive_shows(settings, log_table, kafka, store, group, hive_port,
                                                         hive_db, hive_catalog):
    """IngestResult.to_json (what the CLI prints and Dagster logs) carries the partitions the run registered."""
    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic, hive_url=f"//127.0.0.1:{hive_port}/{hive_db}", hive_table_name="events")
    create_table_for(settings, spec, PIPE_COLUMNS)
    kafka.produce(topic, [(0, f"{BASE_TS + i * HOUR // 10}|m{i}|x".encode()) for i in range(20)])  # 07:00-08:54

    summary = json.loads(ingest(settings, spec, store, register=registrar_for(settings, spec)).to_json())

    assert sorted(summary["registered"]) == hive_catalog.show_partitions(hive_db, "events")
    assert summary["registered"] == ["dt=20261120/hr=2026112007", "dt=20261120/hr=2026112008"]
