"""json and avro-txt end to end through a real ingest (tansu, Redis, MariaDB): text and Parquet outputs, good and
malformed messages mixed, counts adding up. The schema registry is the local stand-in from test_formats_avro
(there is no Confluent Schema Registry server to install here)."""
from __future__ import annotations

import dataclasses
import json

import pyarrow.parquet as pq
import pytest

from pseidon_dagster.core.formats import RegistryUnavailable
from pseidon_dagster.core.ingest import ingest
from tests.conftest import read_lines
from tests.integration.core.test_ingest import BASE_TS, HOUR, add_log
from tests.integration.core.test_outputs import _parquet_settings
from tests.unit.core.formats.test_formats_avro import LINE_SCHEMA, FakeRegistry, encode


def test_json_to_gzip_selects_fields_and_quarantines_bad_messages(settings, log_table, kafka, store, group):
    topic = kafka.topic(2)
    spec = add_log(log_table, group, topic, fmt="json:ts=meta.time;msg=user,meta.page", out="gzip")
    good = [(i % 2, json.dumps({"user": f"u{i}", "meta": {"time": BASE_TS + i * HOUR // 4, "page": f"/p{i}"},
                                "noise": "x" * 10}).encode()) for i in range(40)]
    bad = [(0, b"{not json"), (1, b'{"user": "nots"}'), (0, b"[1,2]")]
    kafka.produce(topic, good[:20] + bad + good[20:])

    result = ingest(settings, spec, store)

    assert (result.read, result.written, result.quarantined) == (43, 40, 3)
    lines = sorted((json.loads(line) for f in result.data_files for line in read_lines(f.path)),
                   key=lambda d: d["user"])
    assert lines == sorted(({"user": f"u{i}", "meta.page": f"/p{i}"} for i in range(40)), key=lambda d: d["user"])
    assert len({f.hour for f in result.data_files}) == 10
    reasons = [json.loads(line)["error"] for f in result.files if f.kind == "quarantine" for line in read_lines(f.path)]
    assert len(reasons) == 3 and all(reasons)


def test_json_to_parquet_maps_fields_by_name(settings, log_table, kafka, store, group, tmp_path):
    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic, fmt="json:ts_sec=t", out="parquet")
    s = _parquet_settings(settings, tmp_path, topic, [("t", "bigint"), ("User", "string"), ("amount", "decimal(10,2)"),
                                                      ("tags", "array<string>")])
    msgs = [(0, json.dumps({"t": BASE_TS // 1000 + i, "user": f"u{i}", "amount": f"{i}.25", "tags": ["a", str(i)],
                            "extra": 1}).encode()) for i in range(25)]
    msgs.insert(5, (0, json.dumps({"t": BASE_TS // 1000, "user": "bad", "amount": "lots"}).encode()))
    kafka.produce(topic, msgs)

    result = ingest(s, spec, store)

    assert (result.written, result.quarantined) == (25, 1)
    rows = [r for f in result.data_files for r in pq.read_table(f.path).to_pylist()]
    assert sorted(r["user"] for r in rows) == sorted(f"u{i}" for i in range(25))
    r3 = next(r for r in rows if r["user"] == "u3")
    assert str(r3["amount"]) == "3.25" and r3["tags"] == ["a", "3"] and r3["t"] == BASE_TS // 1000 + 3
    q = [json.loads(line) for f in result.files if f.kind == "quarantine" for line in read_lines(f.path)]
    assert "column amount" in q[0]["error"]


def test_avro_txt_end_to_end_with_a_registry(settings, log_table, kafka, store, group, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    registry = FakeRegistry({7: LINE_SCHEMA})
    try:
        s = dataclasses.replace(settings, avro_schema_registry_url=registry.url)
        topic = kafka.topic(2)
        spec = add_log(log_table, group, topic, fmt="avro-txt:ts=0;msg=1", out="gzip")
        good = [(i % 2, encode(LINE_SCHEMA, {"timestamp": BASE_TS + i * 1000, "line": f"line {i}"}, 7))
                for i in range(30)]
        bad = [(0, b"\x01garbage"), (1, encode(LINE_SCHEMA, {"timestamp": BASE_TS, "line": "x"}, 99))]
        kafka.produce(topic, good + bad)

        result = ingest(s, spec, store)

        assert (result.read, result.written, result.quarantined) == (32, 30, 2)
        lines = sorted(line for f in result.data_files for line in read_lines(f.path))
        assert lines == sorted(f"line {i}".encode() for i in range(30))

        registry.close()  # registry gone: the next run fails, commits nothing, and is replayed later
        kafka.produce(topic, [(0, encode(LINE_SCHEMA, {"timestamp": BASE_TS, "line": "later"}, 8))])
        before = store.all_offsets(topic)
        with pytest.raises(RegistryUnavailable):
            ingest(s, spec, store)
        assert store.all_offsets(topic) == before
    finally:
        registry.close()
