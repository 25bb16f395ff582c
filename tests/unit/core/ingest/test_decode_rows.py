"""Decoding values into Parquet rows (core/ingest/decode.py, and the vector path's reasons): a value that does not fit
the schema is quarantined with the converter's words and keeps its event time (a rebuild files it under its hour);
a tombstone is filtered; the conversion error wins over the window when both apply."""
from __future__ import annotations

from pseidon_dagster.core.formats import build_parser
from pseidon_dagster.core.hive import schema_from_columns
from pseidon_dagster.core.ingest.decode import Decoder
from pseidon_dagster.core.ingest.vector import VectorDecoder
from pseidon_dagster.core.schemas import RowConverter

SCHEMA = schema_from_columns([("ts", "bigint"), ("n", "int"), ("who", "string"), ("flag", "boolean")])
T = 1_795_000_000_000
UNFIT = "column n: cannot convert '8.5' to int32 (invalid literal for int() with base 10: '8.5')"


def rows_decoder() -> Decoder:
    return Decoder.for_rows(build_parser("txt:sep=,;ts=0"), RowConverter(SCHEMA))


def test_a_row_that_does_not_fit_keeps_its_event_time_and_the_converters_words():
    ts, out, sizes, bad = rows_decoder().decode([f"{T},8.5,x,true".encode(), f"{T + 1},1,x,true".encode(), None,
                                                 b"bad"])
    assert ts == [T, T + 1, None, None]
    assert out == [None, (T + 1, 1, "x", True), None, None]
    assert sizes == [24, 22, 0, 3]  # rows: the input's size, also of a bad one
    assert bad == {0: UNFIT, 3: "bad timestamp: b'bad' is not an integer, a decimal number or an ISO-8601 date"}


def test_text_lines_count_their_output_bytes():
    ts, out, sizes, bad = Decoder.for_text(build_parser("txt:sep=,;ts=0")).decode([f"{T},a".encode(), None])
    assert ts == [T, None] and out == [f"{T},a\n".encode(), None] and sizes == [len(f"{T},a\n"), 0] and bad == {}


def test_on_the_vector_path_a_row_outside_the_window_that_does_not_fit_says_why_it_does_not_fit():
    parser = build_parser("txt:sep=,;ts=0")
    vector = VectorDecoder.for_parser(parser, rows_decoder().parse, T, T + 1000, SCHEMA)
    values = [f"{T + i},{i},x,true".encode() for i in range(64)]
    values[3] = f"{T + 5000},8.5,x,true".encode()  # outside the window and not an int
    values[4] = f"{T + 5000},4,x,true".encode()  # outside the window only
    batch = vector.decode(values)
    assert batch is not None
    assert batch.bad == {3: UNFIT, 4: f"timestamp {T + 5000} outside the accepted window [{T}, {T + 1000}] (see "
                                      ":writer :allow-all-ts)"}
    text = VectorDecoder.for_parser(parser, Decoder.for_text(parser).parse, T, T + 1000)
    assert text.decode(values).bad[3].startswith(f"timestamp {T + 5000} outside the accepted window")
