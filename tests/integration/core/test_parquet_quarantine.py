"""A Parquet value that does not fit its column goes to quarantine at conversion time; building the file never fails
a batch (issue 8), through a real ingest (tansu, Redis, MariaDB). ParquetFile with adversarial rows after conversion:
tests/unit/core/test_file_writers.py."""
from __future__ import annotations

import json

import pyarrow.parquet as pq

from pseidon_dagster.core.ingest import ingest
from tests.conftest import read_lines
from tests.integration.core.test_ingest import BASE_TS, add_log
from tests.integration.core.test_outputs import _parquet_settings

COLUMNS = [("t", "bigint"), ("user", "string"), ("amount", "decimal(10,2)"), ("n", "int"), ("tags", "array<int>"),
           ("labels", "array<string>"), ("attrs", "map<string,int>"), ("geo", "struct<lat:double,lon:double>"),
           ("at", "timestamp")]


def _msg(i: int, **override) -> bytes:
    doc = {"t": BASE_TS + i * 1000, "user": f"u{i}", "amount": f"{i}.5", "n": i, "tags": [i, i + 1],
           "labels": ["a", f"l{i}"], "attrs": {"k": i}, "geo": {"lat": 1.5, "lon": -i},
           "at": "2026-11-20T08:00:00+01:00"}
    doc.update(override)
    return json.dumps(doc).encode()


def test_values_that_do_not_fit_go_to_quarantine_and_the_run_commits(settings, log_table, kafka, store, group,
                                                                      tmp_path):
    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic, fmt="json:ts=t", out="parquet")
    s = _parquet_settings(settings, tmp_path, topic, COLUMNS)
    bad = [  # (column named in the reason, message)
        ("user", _msg(100).replace(b'"u100"', b'"\\ud800"')),  # a lone surrogate: legal JSON, not UTF-8
        ("labels", _msg(101).replace(b'"l101"', b'"x\\udfffy"')),
        ("amount", _msg(102).replace(b'"102.5"', b"1e400")),  # json reads 1e400 as infinity
        ("amount", _msg(103, amount="123456789.5")),
        ("n", _msg(104, n=2 ** 31)),
        ("n", _msg(105, n=True)),
        ("tags", _msg(106, tags=[1, True])),
        ("tags", _msg(107, tags="1,2")),
        ("attrs", _msg(108, attrs={"k": "x"})),
        ("geo", _msg(109, geo="north")),
        ("geo", _msg(110, geo={"lat": [1]})),
        ("at", _msg(111, at="9999-12-31T23:30:00-05:00")),
    ]
    good = [_msg(i) for i in range(30)]
    messages = good[:10] + [m for _, m in bad] + good[10:]
    kafka.produce(topic, [(0, m) for m in messages])

    result = ingest(s, spec, store)

    assert result.committed
    assert store.all_offsets(topic) == {0: len(messages)}
    assert (result.read, result.written, result.quarantined) == (len(messages), 30, len(bad))
    rows = sorted((r for f in result.data_files for r in pq.read_table(f.path).to_pylist()), key=lambda r: r["n"])
    assert [r["user"] for r in rows] == [f"u{i}" for i in range(30)]
    r3 = rows[3]
    assert (str(r3["amount"]), r3["tags"], r3["labels"], r3["attrs"], r3["geo"]) == (
        "3.50", [3, 4], ["a", "l3"], [("k", 3)], {"lat": 1.5, "lon": -3.0})
    assert r3["at"].isoformat() == "2026-11-20T07:00:00"
    records = [json.loads(line) for f in result.files if f.kind == "quarantine" for line in read_lines(f.path)]
    by_offset = {r["offset"]: r["error"] for r in records}
    assert sorted(by_offset) == list(range(10, 10 + len(bad)))
    for k, (column, _) in enumerate(bad):
        assert by_offset[10 + k].startswith(f"column {column}: "), by_offset[10 + k]
