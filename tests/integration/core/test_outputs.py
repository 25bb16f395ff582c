"""Every output format end to end: files land, are readable, hold exactly what was produced."""
from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from pyarrow.fs import LocalFileSystem

from pseidon_dagster.core.ingest import IngestError, ingest
from pseidon_dagster.core.output_formats import count_records
from tests.conftest import read_lines
from tests.integration.core.test_ingest import BASE_TS, HOUR, add_log, make_messages


@pytest.mark.parametrize("out,ext", [("gzip", "gz"), ("json", "gz"), ("txt", "txt"), (None, "txt"),
                                     ("bzip2", "bz2"), ("zstd", "zst")])
def test_text_output_formats(settings, log_table, kafka, store, group, out, ext):
    topic = kafka.topic(2)
    spec = add_log(log_table, group, topic, out=out)
    msgs = make_messages(400, hours=2, partitions=2)
    kafka.produce(topic, msgs)

    result = ingest(settings, spec, store)

    assert result.written == 400
    assert {Path(f.path).name.rsplit(".", 1)[1] for f in result.files} == {ext}
    lines = [line for f in result.files for line in read_lines(f.path)]
    assert sorted(lines) == sorted(v for _, v in msgs)
    # the product's own reader (used by the record_counts check) agrees with the stdlib decoders
    assert [count_records(LocalFileSystem(), f.path) for f in result.files] == [
        len(read_lines(f.path)) for f in result.files]


def test_unknown_output_format_fails_only_that_log(log_table, group):
    log_table.upsert([dict(log="bad-out", format="txt:ts=0", output_format="snappy", base_partition="x",
                           log_partition="y", log_group=group, enabled=1),
                      dict(log="good", format="txt:ts=0", output_format="gzip", base_partition="x",
                           log_partition="y", log_group=group, enabled=1)])
    good, bad = log_table.logs(group)
    assert [s.log for s in good] == ["good"]
    assert len(bad) == 1 and bad[0].log == "bad-out" and bad[0].column == "output_format"
    assert "pseidon_logs row 'bad-out', column output_format" in str(bad[0])


def _parquet_settings(settings, tmp_path, log, columns):
    schema_dir = tmp_path / "schemas"
    schema_dir.mkdir(exist_ok=True)
    (schema_dir / f"{log}.json").write_text(json.dumps({"columns": [{"name": n, "type": t} for n, t in columns]}))
    return dataclasses.replace(settings, schema_dir=str(schema_dir))


def test_parquet_typed_columns_from_txt_with_quarantine(settings, log_table, kafka, store, group, tmp_path):
    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic, fmt="txt:sep=comma;ts=0", out="parquet")
    s = _parquet_settings(settings, tmp_path, topic, [("ts", "bigint"), ("user", "string"), ("amount", "double"),
                                                      ("ok", "boolean")])
    good = [(0, f"{BASE_TS + i * HOUR // 3},u{i},{i * 1.5},{'true' if i % 2 else 'false'}".encode())
            for i in range(30)]
    bad = [(0, f"{BASE_TS},ux,notanumber,true".encode())]
    kafka.produce(topic, good[:10] + bad + good[10:])

    result = ingest(s, spec, store)

    assert (result.written, result.quarantined) == (30, 1)
    data = [f for f in result.files if f.kind == "data"]
    assert all(f.path.endswith(".parquet") for f in data)
    rows = []
    for f in data:
        t = pq.read_table(f.path)
        assert count_records(LocalFileSystem(), f.path) == t.num_rows == f.records
        assert t.schema.field("amount").type == "double" and t.schema.field("ts").type == "int64"
        rows.extend(t.to_pylist())
    assert sorted(r["user"] for r in rows) == sorted(f"u{i}" for i in range(30))
    assert {r["user"]: r["amount"] for r in rows}["u3"] == 4.5
    assert {r["user"]: r["ok"] for r in rows}["u3"] is True
    q = [f for f in result.files if f.kind == "quarantine"][0]
    rec = json.loads(read_lines(q.path)[0])
    assert "column amount" in rec["error"] and rec["offset"] == 10


def test_parquet_without_schema_fails_clearly(settings, log_table, kafka, store, group, tmp_path):
    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic, out="parquet")
    kafka.produce(topic, make_messages(5, partitions=1))
    s = dataclasses.replace(settings, schema_dir=str(tmp_path / "none"))
    with pytest.raises(IngestError, match="has no schema"):
        ingest(s, spec, store)
    assert store.all_offsets(topic) == {}


def test_date_only_layout(settings, log_table, kafka, store, group, mysql_url):
    import sqlalchemy as sa

    with log_table.engine.begin() as c:
        c.execute(sa.text("ALTER TABLE pseidon_logs ADD COLUMN date_format varchar(100) DEFAULT 'datehour'"))
    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic, date_format="date")
    assert not spec.hourly
    kafka.produce(topic, [(0, f"{BASE_TS + (i % 3) * HOUR + i}|m{i}".encode()) for i in range(30)])
    result = ingest(settings, spec, store)
    dirs = collections.Counter(Path(f.path).parent.name for f in result.files)
    day = dt.datetime.fromtimestamp(BASE_TS / 1000, dt.timezone.utc)
    assert set(dirs) == {f"date={day:%Y%m%d}"}
    assert len(result.files) == 3  # one file per event hour, in the day's directory


def test_memory_stays_bounded_and_flushes_do_not_change_contents(settings, log_table, kafka, store, group,
                                                                 monkeypatch):
    """Peak Python memory of a run does not grow with the backlog: 3x the input, about the same peak."""
    import tracemalloc

    from pseidon_dagster.core import ingest as ingest_mod

    monkeypatch.setattr(ingest_mod.sink, "MAX_BUFFERED_TEXT", 2 << 20)
    pad = "p" * 200
    peaks, produced = [], []
    for n in (40_000, 120_000):  # both well past one consume() batch (10,000 messages)
        topic = kafka.topic(3)
        spec = add_log(log_table, group, topic)
        msgs = [(i % 3, f"{BASE_TS + (i * 7919) % (8 * HOUR)}|{i}|{pad}".encode()) for i in range(n)]
        kafka.produce(topic, msgs)  # 8 hours x 3 partitions = 24 files open at once
        tracemalloc.start()
        try:
            result = ingest(settings, spec, store)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        assert result.written == n
        lines = [line for f in result.files for line in read_lines(f.path)]
        assert sorted(lines) == sorted(v for _, v in msgs)
        produced.append(sum(len(v) for _, v in msgs))
    assert produced[1] > 26e6
    assert peaks[1] < 1.5 * peaks[0], f"peaks {peaks} for inputs of {produced} bytes"


def test_parquet_files_are_readable_by_duckdb(settings, log_table, kafka, store, group, tmp_path):
    import duckdb

    topic = kafka.topic(2)
    spec = add_log(log_table, group, topic, fmt="txt:sep=pipe;ts=0", out="parquet")
    s = _parquet_settings(settings, tmp_path, topic, [("ts", "bigint"), ("msg", "string"), ("x", "string")])
    kafka.produce(topic, make_messages(300, hours=3, partitions=2))

    result = ingest(s, spec, store)

    root = f"{settings.data_dir}/lake/raw/{topic}"
    rows = duckdb.sql(f"SELECT hour, count(*), count(DISTINCT msg) FROM read_parquet('{root}/*/*/*.parquet', "
                      f"hive_partitioning = true) GROUP BY hour ORDER BY hour").fetchall()
    per_hour = collections.Counter(str(dt.datetime.fromtimestamp(f.hour * 3600, dt.timezone.utc).strftime("%Y%m%d%H"))
                                   for f in result.data_files for _ in range(f.records))
    assert [(str(h), n, d) for h, n, d in rows] == [(h, n, n) for h, n in sorted(per_hour.items())]
    assert sum(n for _, n, _ in rows) == 300


def test_timestamp_window_and_years_that_are_not_four_digits(settings, log_table, kafka, store, group):
    import time

    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic)
    now = int(time.time() * 1000)
    msgs = [(0, f"{now}|now".encode()),
            (0, f"{now - 40 * 24 * HOUR}|40 days ago".encode()),
            (0, f"{now + 3 * HOUR}|3 hours ahead".encode()),
            (0, f"{now * 1000}|microseconds read as ms".encode())]
    kafka.produce(topic, msgs)
    windowed = dataclasses.replace(settings, writer=dataclasses.replace(settings.writer, allow_all_ts=False))

    result = ingest(windowed, spec, store)

    assert (result.written, result.quarantined) == (1, 3)
    q = [json.loads(line) for f in result.files if f.kind == "quarantine" for line in read_lines(f.path)]
    assert [r["offset"] for r in q] == [1, 2, 3]
    assert all("outside the accepted window" in r["error"] for r in q)

    # :allow-all-ts accepts any 4-digit year, but never a 5-digit one (no path nothing can load)
    topic2 = kafka.topic(1)
    spec2 = add_log(log_table, group, topic2)
    kafka.produce(topic2, msgs)
    result2 = ingest(settings, spec2, store)
    assert (result2.written, result2.quarantined) == (3, 1)
    assert all(len(Path(f.path).parent.name) == len("hour=2026112007") for f in result2.data_files)
