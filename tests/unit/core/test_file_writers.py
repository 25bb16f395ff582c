"""The file writers without a server. Determinism: a replay (or a repeated backfill) must write byte-identical files
whatever the chunks its writers were handed (how a run's buffers are flushed depends on how consume() interleaved
partitions and on memory pressure, which a replay does not reproduce; ISA-L's deflate output depends on how its input
is split into compress() calls). ParquetFile: every row the converter passed builds and reads back (issue 8).
Replays through a real ingest: tests/integration/core/test_determinism.py and test_parquet_quarantine.py."""
from __future__ import annotations

import io
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pseidon_dagster.core.formats import MessageError
from pseidon_dagster.core.hive import schema_from_columns
from pseidon_dagster.core.output_formats import open_text
from pseidon_dagster.core.schemas import RowConverter
from pseidon_dagster.core.writers import ParquetFile
from tests.unit.core.hive.test_schemas_property import BAD, GOOD, any_values, hive_types, norm, plausible


class Sink(io.BytesIO):
    def close(self):  # keep the bytes readable after the writer closes its stream
        pass


def lines(n: int) -> bytes:
    return b"".join(f"{1795000000000 + i * 7919},{i},session-{i:016x},https://example.com/{i % 9973}\n".encode()
                    for i in range(n))


def write_text(codec: str, data: bytes, cuts: list[int]) -> bytes:
    out = Sink()
    f = open_text(out, codec)
    for a, b in zip([0] + cuts, cuts + [len(data)]):
        f.write(data[a:b])
    f.close()
    return out.getvalue()


@pytest.mark.parametrize("codec", ["gzip", "bzip2", "zstd", "txt"])
def test_text_files_do_not_depend_on_how_their_bytes_were_chunked(codec):
    data = lines(120_000)
    rnd = random.Random(7)
    whole = write_text(codec, data, [])
    for _ in range(3):
        cuts = sorted(rnd.sample(range(1, len(data)), 40))
        assert write_text(codec, data, cuts) == whole


def test_parquet_files_do_not_depend_on_how_their_rows_were_chunked():
    schema = pa.schema([("ts", pa.int64()), ("n", pa.int32()), ("s", pa.string())])
    rows = [(1795000000000 + i, i, f"s{i % 97}") for i in range(50_000)]

    def write(cuts):
        out = Sink()
        f = ParquetFile(out, schema, "snappy", row_group_bytes=200_000)
        for a, b in zip([0] + cuts, cuts + [len(rows)]):
            f.write(rows[a:b], [len(r[2]) + 12 for r in rows[a:b]])
        f.close()
        return out.getvalue()

    whole = write([])
    rnd = random.Random(3)
    for _ in range(3):
        assert write(sorted(rnd.sample(range(1, len(rows)), 30))) == whole


# -- ParquetFile after conversion ------------------------------------------------------------------------------------

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
