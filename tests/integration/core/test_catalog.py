"""Hive partition registration, schemas and table creation.

Unit tests (no server) cover hive_url parsing, validation/quoting and the partitions a run registers. Tests marked
`hive` run real ingests (MariaDB pseidon_logs, tansu, Redis) against a real HiveServer2 (Spark's Thrift Server, see
tests/hive_fixtures.py) and count rows through Hive.
"""
from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import json

import pyarrow as pa
import pytest

from pseidon_dagster.core import hive
from pseidon_dagster.core.config import HivePartitionSettings, from_mapping
from pseidon_dagster.core.hive import (
    CatalogError,
    HiveCatalog,
    HiveTarget,
    create_table_for,
    describe_columns,
    hive_schema_for,
    parse_hive_url,
    partitions_for,
    registrar_for,
    same_location,
    storage_clause,
)
from pseidon_dagster.core.ingest import FileInfo, IngestResult, ingest
from pseidon_dagster.core.logtable import LogSpec
from pseidon_dagster.core.partitioning import HOUR_MS
from tests.integration.core.test_ingest import BASE_TS, HOUR, add_log, make_messages

BASE_HOUR = BASE_TS // HOUR_MS  # 2026-11-20 07:00 UTC


# -- hive_url ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("url,host,port,db,params", [
    ("//hive1:10000/logs", "hive1", 10000, "logs", {}),
    ("//hive1/logs", "hive1", 10000, "logs", {}),
    ("//hive1:10001", "hive1", 10001, "default", {}),
    ("//hive1:10001/", "hive1", 10001, "default", {}),
    ("jdbc:hive2://hive1:10002/logs", "hive1", 10002, "logs", {}),
    ("JDBC:HIVE2://hive1/logs", "hive1", 10000, "logs", {}),
    # the original turned this into the database name "_HOST@REALM" (section 5.2)
    ("//hive1:10000/logs;principal=hive/_HOST@REALM", "hive1", 10000, "logs", {"principal": "hive/_HOST@REALM"}),
    ("jdbc:hive2://hive1:10000/logs;principal=hive/_HOST@EXAMPLE.COM;ssl=false", "hive1", 10000, "logs",
     {"principal": "hive/_HOST@EXAMPLE.COM", "ssl": "false"}),
    ("//hive1:10000;principal=hive/_HOST@REALM", "hive1", 10000, "default", {"principal": "hive/_HOST@REALM"}),
    ("jdbc:hive2://h1:10000,h2:10000/logs;serviceDiscoveryMode=zooKeeper", "h1", 10000, "logs",
     {"serviceDiscoveryMode": "zooKeeper"}),
    ("//[::1]:10003/logs", "::1", 10003, "logs", {}),
    ("  //hive1:10000/logs  ", "hive1", 10000, "logs", {}),
])
def test_parse_hive_url(url, host, port, db, params):
    t = parse_hive_url(url)
    assert (t.host, t.port, t.database, t.params) == (host, port, db, params)


def test_parse_hive_url_hiveconf_and_hivevars():
    t = parse_hive_url("jdbc:hive2://h:10000/logs;auth=noSasl?hive.exec.dynamic.partition=true;a=b#x=1")
    assert t.database == "logs" and t.params == {"auth": "noSasl"}
    assert t.conf == {"hive.exec.dynamic.partition": "true", "a": "b"}


@pytest.mark.parametrize("url,match", [
    ("", "empty"),
    ("hive1:10000/logs", "neither"),
    ("jdbc:mysql://h:3306/db", "neither"),
    ("//:10000/logs", "no host"),
    ("//h:abc/logs", "not a number"),
    ("//h:70000/logs", "out of range"),
    ("//h:10000/bad-db", "not a valid Hive identifier"),
    ("//h:10000/db;oops", "not key=value"),
    ("//h:10000/x;DROP TABLE y", "not key=value"),
])
def test_parse_hive_url_rejects(url, match):
    with pytest.raises(CatalogError, match=match):
        parse_hive_url(url)


def test_password_in_url_is_masked_in_errors():
    with pytest.raises(CatalogError) as e:
        parse_hive_url("//h:10000/bad-db;password=hunter2")
    assert "hunter2" not in str(e.value)


# -- validation: nothing is sent -----------------------------------------------------------------------------------


class NoServer(HiveCatalog):
    """A catalog that fails the test if it ever tries to connect."""

    def _connect(self):
        raise AssertionError("SQL would have been sent")


def _spec(**kw) -> LogSpec:
    base = dict(log="clicks", format="txt:sep=pipe;ts=0", output_format="gzip", base_partition="/lake",
                log_partition="raw/clicks", hive_table_name="clicks", hive_url="//127.0.0.1:10000/logs",
                hive_user="etl", hive_password=None)
    base.update(kw)
    return LogSpec(**base)


SETTINGS = from_mapping({"data-dir": "/data"})


@pytest.mark.parametrize("table", [
    "t; DROP TABLE x", "t`; DROP TABLE x; --", "db.t.x", "db.", ".t", "t x", "t'", "1t", "db.t--", "`t`", "t\n",
    "dé.t",
])
def test_malicious_table_names_are_rejected(table):
    with pytest.raises(CatalogError):
        registrar_for(SETTINGS, _spec(hive_table_name=table))
    with pytest.raises(CatalogError):
        NoServer(HiveTarget("h")).add_partitions(None, table, [({"dt": "20261120"}, "/x")])
    with pytest.raises(CatalogError):
        NoServer(HiveTarget("h")).describe(table)


@pytest.mark.parametrize("values,location", [
    ({"dt": "2026' OR '1'='1"}, "/x"),
    ({"dt": "20261120') LOCATION '/etc'"}, "/x"),
    ({"dt": "2026 11 20"}, "/x"),
    ({"dt": ""}, "/x"),
    ({"dt; DROP": "20261120"}, "/x"),
    ({}, "/x"),
    ({"dt": "20261120"}, "/x' ; DROP TABLE t; --"),
    ({"dt": "20261120"}, "/x\nDROP TABLE t"),
    ({"dt": "20261120"}, "/x\\"),
    ({"dt": "20261120"}, ""),
])
def test_malicious_partitions_are_rejected(values, location):
    with pytest.raises(CatalogError):
        NoServer(HiveTarget("h")).add_partitions("logs", "clicks", [({"dt": "20261119"}, "/ok"), (values, location)])


def test_bad_partition_formats_and_columns_are_rejected():
    bad_fmt = dataclasses.replace(SETTINGS, hive=HivePartitionSettings(date_value="%Y-%m-%d %H"))
    spec = _spec()
    parts = partitions_for(bad_fmt, spec, [_file("/data/x/date=20261120/hour=2026112007/f.gz", BASE_HOUR)])
    with pytest.raises(CatalogError):
        NoServer(HiveTarget("h")).add_partitions("logs", "clicks", parts)
    bad_col = dataclasses.replace(SETTINGS, hive=HivePartitionSettings(date_column="dt`"))
    with pytest.raises(CatalogError):
        hive.catalog_for(bad_col, spec)
    with pytest.raises(CatalogError):
        NoServer(HiveTarget("h")).create_table("logs", "t", [("a", "string); DROP TABLE x; --")], ["dt"],
                                               "STORED AS PARQUET")
    with pytest.raises(CatalogError):
        NoServer(HiveTarget("h")).create_table("logs", "t", [("a b", "string")], ["dt"], "STORED AS PARQUET")


def test_transport_modes_other_than_binary_are_refused():
    with pytest.raises(CatalogError, match="transportMode=http"):
        HiveCatalog(parse_hive_url("//h:10001/db;transportMode=http;httpPath=cliservice"))


# -- what a run registers --------------------------------------------------------------------------------------


def _file(path, hour, kind="data"):
    return FileInfo(path, kind, hour, 0, 0, 10, 10, 100, 50)


def test_partitions_for_hourly_layout():
    spec = _spec()
    root = "/lake/raw/clicks"
    files = [
        _file(f"{root}/date=20261120/hour=2026112008/a.gz", BASE_HOUR + 1),
        _file(f"{root}/date=20261120/hour=2026112007/a.gz", BASE_HOUR),
        _file(f"{root}/date=20261120/hour=2026112007/b.gz", BASE_HOUR),
        _file("/tmp/pseidon-quarantine/raw/clicks/date=20261120/hour=2026112009/q.jsonl.gz", BASE_HOUR + 2,
              "quarantine"),
    ]
    assert partitions_for(SETTINGS, spec, files) == [
        ({"dt": "20261120", "hr": "2026112007"}, f"file://{root}/date=20261120/hour=2026112007"),
        ({"dt": "20261120", "hr": "2026112008"}, f"file://{root}/date=20261120/hour=2026112008"),
    ]


def test_partitions_for_date_only_layout_registers_each_day_once():
    spec = _spec(date_format="date")
    root = "/lake/raw/clicks"
    files = [_file(f"{root}/date=20261120/a.gz", BASE_HOUR + h) for h in range(0, 17)]  # 07:00 .. 23:00
    files.append(_file(f"{root}/date=20261121/a.gz", BASE_HOUR + 17))
    assert partitions_for(SETTINGS, spec, files) == [
        ({"dt": "20261120"}, f"file://{root}/date=20261120"),
        ({"dt": "20261121"}, f"file://{root}/date=20261121"),
    ]


def test_partitions_for_custom_columns_and_remote_storage():
    s = dataclasses.replace(SETTINGS, hive=HivePartitionSettings(date_column="day", hour_column="hour",
                                                                 date_value="%Y-%m-%d", hour_value="%H"))
    spec = _spec(base_partition="hdfs://nn1/log/pseidon")
    files = [_file("/log/pseidon/raw/clicks/date=20261120/hour=2026112007/a.gz", BASE_HOUR)]
    assert partitions_for(s, spec, files) == [
        ({"day": "2026-11-20", "hour": "07"}, "hdfs://nn1/log/pseidon/raw/clicks/date=20261120/hour=2026112007"),
    ]


def test_relative_base_partition_resolves_under_data_dir():
    spec = _spec(base_partition="lake")
    assert hive.table_location(SETTINGS, spec) == "file:///data/lake/raw/clicks"
    assert hive.table_location(SETTINGS, _spec(base_partition="s3://b/lake")) == "s3://b/lake/raw/clicks"


class RecordingCatalog:
    def __init__(self, fail: Exception | None = None):
        self.calls = []
        self.fail = fail

    def add_partitions(self, db, table, parts):
        self.calls.append((db, table, list(parts)))
        if self.fail:
            raise self.fail
        return [hive.partition_spec(v) for v, _ in parts]


def _result(files):
    r = IngestResult("clicks")
    r.files = files
    return r


def test_registrar_registers_distinct_partitions_and_returns_specs():
    rec = RecordingCatalog()
    spec = _spec(hive_table_name="logs2.clicks_raw")
    register = registrar_for(SETTINGS, spec, catalog_factory=lambda s, sp: (rec, "logs2", "clicks_raw"))
    files = [_file(f"/lake/raw/clicks/date=20261120/hour=20261120{h:02d}/p{p}.gz", BASE_HOUR + h - 7)
             for h in (7, 8, 9) for p in (0, 1)]
    assert register(_result(files)) == ["dt=20261120/hr=2026112007", "dt=20261120/hr=2026112008",
                                        "dt=20261120/hr=2026112009"]
    assert len(rec.calls) == 1 and rec.calls[0][:2] == ("logs2", "clicks_raw") and len(rec.calls[0][2]) == 3
    assert register(_result([])) == []


def test_registrar_failure_names_log_table_partitions_and_cause_but_no_password():
    rec = RecordingCatalog(CatalogError("HiveServer2 127.0.0.1:1/logs not reachable after 4 attempt(s)"))
    spec = _spec(hive_password="hunter2-pw")
    register = registrar_for(SETTINGS, spec, catalog_factory=lambda s, sp: (rec, "logs", "clicks"))
    files = [_file("/lake/raw/clicks/date=20261120/hour=2026112007/a.gz", BASE_HOUR)]
    with pytest.raises(CatalogError) as e:
        register(_result(files))
    msg = str(e.value)
    for part in ("'clicks'", "logs.clicks", "dt=20261120/hr=2026112007", "not reachable"):
        assert part in msg
    assert "hunter2-pw" not in msg


def test_retries_with_exponential_backoff_then_fails():
    slept = []
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cat = HiveCatalog(HiveTarget("127.0.0.1", port), "etl", "pw-secret", retries=3, backoff_s=0.5,
                      sleep=slept.append, timeout_s=2)
    with pytest.raises(CatalogError, match=r"not reachable after 4 attempt\(s\)") as e:
        cat.add_partitions("logs", "clicks", [({"dt": "20261120"}, "file:///x/date=20261120")])
    assert slept == [0.5, 1.0, 2.0]
    assert "pw-secret" not in str(e.value) and "pw-secret" not in repr(cat)


# -- DESCRIBE parsing, locations, storage -------------------------------------------------------------------------


def test_describe_columns_spark_and_hive_styles():
    spark = [("ts", "bigint", None), ("msg", "string", None), ("dt", "string", None), ("hr", "string", None),
             ("# Partition Information", "", ""), ("# col_name", "data_type", "comment"),
             ("dt", "string", None), ("hr", "string", None)]
    hive = [("ts                  ", "bigint              ", ""), ("Msg                 ", "varchar(10)", ""),
            ("dt                  ", "string              ", ""), ("", None, None),
            ("# Partition Information", None, None), ("# col_name            ", "data_type           ", "comment"),
            ("", None, None), ("dt                  ", "string              ", "")]
    assert describe_columns(spark) == [("ts", "bigint"), ("msg", "string")]
    assert describe_columns(hive) == [("ts", "bigint"), ("msg", "varchar(10)")]


@pytest.mark.parametrize("a,b,same", [
    ("file:/x/date=1", "file:///x/date=1", True),
    ("file:/x/date=1/", "/x/date=1", True),
    ("hdfs://nn:8020/x", "hdfs://nn/x", True),
    ("hdfs://nn/x", "file:///x", False),
    ("file:/x/dt=1/hr=2", "file:///x/date=1/hour=2", False),
])
def test_same_location(a, b, same):
    assert same_location(a, b) is same


@pytest.mark.parametrize("fmt,columns,clause", [
    ("txt:sep=pipe;ts=0", [("a", "string")], "ROW FORMAT DELIMITED FIELDS TERMINATED BY '|' STORED AS TEXTFILE"),
    ("txt:ts=0", [("a", "string")], "ROW FORMAT DELIMITED FIELDS TERMINATED BY '\\001' STORED AS TEXTFILE"),
    ("txt:sep=tab;ts=0", [("a", "string")], "ROW FORMAT DELIMITED FIELDS TERMINATED BY '\\011' STORED AS TEXTFILE"),
    ("txt:sep=semicolon;ts=0", [("a", "string")],
     "ROW FORMAT DELIMITED FIELDS TERMINATED BY '\\073' STORED AS TEXTFILE"),
    ("txt:sep=comma;ts=0", None, "ROW FORMAT DELIMITED FIELDS TERMINATED BY '\\n' STORED AS TEXTFILE"),
])
def test_text_storage_clauses(fmt, columns, clause):
    got, cols = storage_clause(_spec(format=fmt), columns)
    assert got == clause
    assert cols == (columns or [("line", "string")])


def test_parquet_storage_needs_columns():
    with pytest.raises(CatalogError, match="give the table's columns"):
        storage_clause(_spec(output_format="parquet"), None)
    assert storage_clause(_spec(output_format="parquet"), [("a", "int")]) == ("STORED AS PARQUET", [("a", "int")])


def test_arrow_columns_round_trip():
    from pseidon_dagster.core.hive import schema_from_columns

    cols = [("a", "bigint"), ("b", "string"), ("c", "decimal(12,2)"), ("d", "array<int>"),
            ("e", "map<string,double>"), ("f", "struct<x:int,y:string>"), ("g", "date"), ("h", "boolean")]
    assert hive.arrow_columns(schema_from_columns(cols)) == cols


# -- against a real HiveServer2 ----------------------------------------------------------------------------------

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
    spec = _spec(output_format="parquet", hive_url=f"//127.0.0.1:{hive_port}/{hive_db}", hive_table_name="typed",
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


def test_json_dump_of_registered_specs_is_stable():
    # IngestResult.to_json carries `registered`; the specs are plain strings
    r = _result([])
    r.registered = ["dt=20261120/hr=2026112007"]
    assert json.loads(r.to_json())["registered"] == ["dt=20261120/hr=2026112007"]


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


def test_registrar_follows_the_row_as_the_plan_froze_it():
    rec = RecordingCatalog()
    now_hourly = _spec()  # the row today
    register = registrar_for(SETTINGS, now_hourly, catalog_factory=lambda s, sp: (rec, "logs", "clicks"))
    result = _result([_file("/lake/raw/clicks/date=20261120/a.gz", BASE_HOUR)])
    result.spec = _spec(date_format="date")  # the plan being replayed was made when the log was date-only
    assert register(result) == ["dt=20261120"]
