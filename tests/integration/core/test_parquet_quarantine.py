"""A Parquet value that does not fit its column goes to quarantine at conversion time; building the file never fails
a batch (issue 8). ParquetFile with adversarial rows after conversion, then a real ingest (tansu, Redis, MariaDB)."""
from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from pseidon_dagster.core.formats import MessageError
from pseidon_dagster.core.hive import schema_from_columns
from pseidon_dagster.core.ingest import ingest
from pseidon_dagster.core.schemas import RowConverter
from pseidon_dagster.core.writers import ParquetFile
from tests.conftest import read_lines
from tests.integration.core.test_ingest import BASE_TS, add_log
from tests.integration.core.test_outputs import _parquet_settings
from tests.unit.core.hive.test_schemas_property import BAD, GOOD, any_values, hive_types, norm, plausible

COLUMNS = [("t", "bigint"), ("user", "string"), ("amount", "decimal(10,2)"), ("n", "int"), ("tags", "array<int>"),
           ("labels", "array<string>"), ("attrs", "map<string,int>"), ("geo", "struct<lat:double,lon:double>"),
           ("at", "timestamp")]


def write_and_read(path, schema, rows):
    f = ParquetFile(open(path, "wb"), schema)
    f.write(rows)
    f.close()
    return pq.read_table(path)


def test_parquet_file_builds_every_row_the_converter_passed(tmp_path):
    """Every example value of the issue, good and bad, each in its own row of a wide schema: the converter passes
    exactly the good ones, and one write of them builds and reads back; the column-wise path agrees."""
    examples = [(h, v, True) for h, v, _ in GOOD] + [(h, v, False) for h, v in BAD]
    hive_cols = sorted({h for h, _, _ in examples})
    schema = schema_from_columns([(f"c{i}", h) for i, h in enumerate(hive_cols)])
    conv = RowConverter(schema)
    raw = [[v if h == col else None for col in hive_cols] for h, v, _ in examples]
    rows = []
    for (h, _, good), r in zip(examples, raw):
        try:
            rows.append(conv(r))
            assert good
        except MessageError as e:
            assert not good and str(e).startswith(f"column c{hive_cols.index(h)}: ")
    assert len(rows) == len(GOOD)
    got = write_and_read(tmp_path / "rows.parquet", schema, rows).to_pylist()
    for i, f in enumerate(schema):
        assert [norm(f.type, r[f.name]) for r in got] == [norm(f.type, r[i]) for r in rows]

    table, bad = conv.table(raw)  # column-wise: the same verdicts, the same values
    assert sorted(bad) == list(range(len(GOOD), len(examples)))
    f = ParquetFile(open(tmp_path / "table.parquet", "wb"), schema)
    f.write_table(table)
    f.close()
    again = pq.read_table(tmp_path / "table.parquet").to_pylist()
    for f in schema:
        assert [norm(f.type, r[f.name]) for r in again] == [norm(f.type, r[f.name]) for r in got]


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_parquet_file_round_trips_generated_rows(tmp_path_factory, data):
    types = data.draw(st.lists(hive_types, min_size=1, max_size=4))
    schema = pa.schema([pa.field(f"c{i}", t) for i, t in enumerate(types)])
    conv = RowConverter(schema)
    rows = []
    for _ in range(data.draw(st.integers(1, 6))):
        raw = [data.draw(plausible(t) | any_values) for t in types]
        try:
            rows.append(conv(raw))
        except MessageError:
            pass
    if not rows:
        return
    t = write_and_read(tmp_path_factory.mktemp("pq") / "x.parquet", schema, rows)
    got = t.to_pylist()
    for i, f in enumerate(schema):
        assert [norm(f.type, r[f.name]) for r in got] == [norm(f.type, r[i]) for r in rows]


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
