"""When the vectorised path (core/ingest/vector.py) takes a batch, and what it computes then: the batch's lines,
sizes, hours and rejects, and for Parquet its typed table. A batch it cannot decide exactly is given back (None) to
the message path; a clean batch must not be, or every run pays the slow path (test_vector.py checks that both paths
write the same bytes; this checks that the fast one is taken)."""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from pseidon_dagster.core.formats import build_parser
from pseidon_dagster.core.hive import schema_from_columns
from pseidon_dagster.core.ingest.decode import Decoder
from pseidon_dagster.core.ingest.route import Router
from pseidon_dagster.core.ingest.vector import VectorDecoder, runs
from pseidon_dagster.core.schemas import RowConverter

BASE = 1_795_000_000_000  # 2026-11-18 ...
HOUR = 3_600_000
SCHEMA = schema_from_columns([("ts", "bigint"), ("n", "int"), ("who", "string"), ("flag", "boolean")])


def text_vector(fmt="txt:sep=,;ts=0", lo=0, hi=10 ** 15):
    parser = build_parser(fmt)
    return VectorDecoder.for_parser(parser, Decoder.for_text(parser).parse, lo, hi)


def rows_vector(fmt="txt:sep=,;ts=0", lo=0, hi=10 ** 15, schema=SCHEMA):
    parser = build_parser(fmt)
    return VectorDecoder.for_parser(parser, Decoder.for_rows(parser, RowConverter(schema)).parse, lo, hi, schema)


def lines(n=64, start=0):
    return [f"{BASE + i * 600_000},{i},user{i % 3},{str(i % 2 == 0).lower()}".encode() for i in range(start, n)]


def test_a_clean_text_batch_is_one_buffer_of_lines_with_their_sizes_and_hours():
    values = lines(64)
    batch = text_vector().decode(values)
    assert batch is not None and batch.n == 64 and batch.table is None and batch.bad == {}
    assert batch.joined == b"\n".join(values) + b"\n"
    assert batch.sizes.tolist() == [len(v) + 1 for v in values]
    assert batch.starts.tolist() == np.cumsum([0] + [len(v) + 1 for v in values[:-1]]).tolist()
    assert batch.hours.tolist() == [(BASE + i * 600_000) // HOUR for i in range(64)]
    assert batch.good.all()
    assert batch.chunk(0, 2) == values[0] + b"\n" + values[1] + b"\n"
    assert batch.chunk(62, 64) == values[62] + b"\n" + values[63] + b"\n"


def test_small_batches_nulls_and_line_breaks_go_message_by_message():
    v = text_vector()
    assert v.decode(lines(63)) is None  # under 64: not worth it
    assert v.decode(lines(64)[:-1] + [None]) is None
    assert v.decode(lines(64)[:-1] + [b"1795000000000,a\rb,x,true"]) is None
    assert v.decode(lines(64)[:-1] + [b"1795000000000,a\nb,x,true"]) is None


def test_timestamps_that_are_not_plain_integers_are_read_by_the_message_parser():
    values = lines(64)
    values[3] = b"2026-11-20T07:30:00Z,iso,x,true"
    values[5] = b"not-a-time,x,y,z"
    values[7] = b"99999999999999999999,big,x,true"
    v = text_vector()
    batch = v.decode(values)
    assert batch is not None
    assert batch.hours[3] == 498_655 and batch.good[3]  # 2026-11-20 07:00 UTC
    assert set(batch.bad) == {5, 7} and not batch.good[5] and not batch.good[7]
    assert batch.good.sum() == 62


def test_the_timestamp_field_may_be_any_field_and_short_lines_are_rejected_by_the_parser():
    v = text_vector("txt:sep=,;ts=1")
    values = [f"x{i},{BASE + i},y".encode() for i in range(64)]
    values[9] = b"only-one-field"
    batch = v.decode(values)
    assert batch is not None and set(batch.bad) == {9}
    assert batch.hours[10] == (BASE + 10) // HOUR


def test_events_outside_the_window_are_rejected_with_the_routers_words():
    values = lines(64)
    v = text_vector(lo=BASE, hi=BASE + 10 * 600_000)
    batch = v.decode(values)
    assert batch is not None
    assert sorted(batch.bad) == list(range(11, 64)) and batch.good.sum() == 11
    assert batch.bad[11] == (f"timestamp {BASE + 11 * 600_000} outside the accepted window [{BASE}, "
                             f"{BASE + 6_000_000}] (see :writer :allow-all-ts)")


def test_only_descriptors_it_decides_exactly_get_a_vector_decoder():
    assert text_vector() is not None
    parse = None
    assert VectorDecoder.for_parser(build_parser("txt:sep=,;ts=0;msg=1"), parse, 0, 1) is None
    assert VectorDecoder.for_parser(build_parser("json:ts=t"), parse, 0, 1) is None
    assert VectorDecoder.for_parser(build_parser("txt:sep=,;ts=0"), parse, 0, 1, line_breaks="escape") is None
    assert VectorDecoder.for_parser(build_parser("txt:sep=,;ts=0"), parse, 0, 1, SCHEMA, "escape") is not None
    assert VectorDecoder.for_parser(build_parser("txt:sep=,;ts=0"), parse, 0, 1, None, "quarantine") is not None


def test_a_clean_parquet_batch_is_a_typed_table():
    values = lines(64)
    batch = rows_vector().decode(values)
    assert batch is not None and batch.joined is None and batch.bad == {}
    expected = pa.table({"ts": pa.array([BASE + i * 600_000 for i in range(64)], pa.int64()),
                         "n": pa.array(list(range(64)), pa.int32()),
                         "who": pa.array([f"user{i % 3}" for i in range(64)], pa.string()),
                         "flag": pa.array([i % 2 == 0 for i in range(64)], pa.bool_())}, schema=SCHEMA)
    assert batch.table.equals(expected)
    assert batch.sizes.tolist() == [len(v) for v in values]
    assert batch.hours.tolist() == [(BASE + i * 600_000) // HOUR for i in range(64)]


def test_a_rejected_row_keeps_its_place_and_does_not_stop_the_table():
    values = lines(64)
    values[4] = b"not-a-time,x"  # bad timestamp and a field short: quarantined, its row never written
    batch = rows_vector().decode(values)
    assert batch is not None and set(batch.bad) == {4} and batch.table.num_rows == 64
    assert batch.table.column("n")[5].as_py() == 5 and batch.table.column("who")[63].as_py() == "user0"


def test_parquet_batches_it_cannot_convert_exactly_go_message_by_message():
    v = rows_vector()
    short = lines(64)
    short[10] = f"{BASE},10,who".encode()  # a good timestamp but three fields
    assert v.decode(short) is None
    not_utf8 = lines(64)
    not_utf8[2] = f"{BASE},2,\xff,true".encode("latin-1")
    assert v.decode(not_utf8) is None
    not_an_int = lines(64)
    not_an_int[8] = f"{BASE},8.5,x,true".encode()  # the row converter's job (its exact error)
    assert v.decode(not_an_int) is None
    assert v.decode(lines(64)[:-1] + [None]) is None


def test_runs_are_spans_of_one_hour_or_of_rejects():
    hours = np.array([5, 5, 6, 6, 6, 7, 7, 5], dtype=np.int64)
    good = np.array([True, True, True, False, False, True, True, True])
    assert runs(hours, good) == [(0, 2), (2, 3), (3, 5), (5, 7), (7, 8)]
    assert runs(np.array([1, 2], dtype=np.int64), np.array([False, False])) == [(0, 2)]
    assert runs(np.array([3], dtype=np.int64), np.array([True])) == [(0, 1)]


def test_timestamps_in_seconds_are_read_as_milliseconds():
    v = text_vector("txt:sep=,;ts_sec=0")
    values = [f"{BASE // 1000 + i * 3600},{i}".encode() for i in range(64)]
    batch = v.decode(values)
    assert batch is not None and batch.bad == {}
    assert batch.hours.tolist() == [BASE // HOUR + i for i in range(64)]


def test_a_short_line_stays_rejected_when_another_timestamp_of_the_batch_is_not_an_integer():
    v = text_vector("txt:sep=,;ts=1")
    values = [f"x{i},{BASE + i},y".encode() for i in range(64)]
    values[9] = b"only-one-field"  # no timestamp field at all
    values[10] = b"x,2026-11-20T07:30:00Z,y"  # not an integer: the batch takes the slower check
    values[11] = b"x,soon,y"
    batch = v.decode(values)
    assert batch is not None and set(batch.bad) == {9, 11}
    assert not batch.good[9] and batch.good[10] and batch.hours[10] == 498_655
    assert batch.good.sum() == 62 and (batch.hours[batch.good] > 0).all()


def test_a_timestamp_field_that_is_not_utf8_sends_the_batch_to_the_parser_message_by_message():
    values = lines(64)
    values[5] = b"\xff\xfe17950,x,y,z"
    batch = text_vector().decode(values)
    assert batch is not None and set(batch.bad) == {5} and batch.bad[5].startswith("bad timestamp")
    assert batch.hours.tolist()[:5] == [(BASE + i * 600_000) // HOUR for i in range(5)]
    assert batch.good.sum() == 63


def test_seconds_too_large_for_milliseconds_are_checked_by_the_parser():
    v = text_vector("txt:sep=,;ts_sec=0")
    values = [f"{BASE // 1000 + i},{i}".encode() for i in range(64)]
    values[3] = b"9300000000000000,big"  # * 1000 does not fit 64 bits
    batch = v.decode(values)
    assert batch is not None and set(batch.bad) == {3}
    assert batch.bad[3] == (f"timestamp {9_300_000_000_000_000 * 1000} outside the accepted window [0, {10 ** 15}] "
                            "(see :writer :allow-all-ts)")


def test_dates_at_either_end_of_the_window_are_accepted():
    lo = 1_795_158_000_000  # 2026-11-20T07:00:00Z
    hi = lo + 1_800_000  # 2026-11-20T07:30:00Z
    values = [f"{lo + i},{i},x,true".encode() for i in range(64)]
    values[0] = b"2026-11-20T07:00:00Z,a,x,true"
    values[1] = b"2026-11-20T07:30:00Z,b,x,true"
    values[2] = b"2026-11-20T07:30:00.001Z,c,x,true"
    batch = text_vector(lo=lo, hi=hi).decode(values)
    assert batch is not None and batch.good[0] and batch.good[1] and set(batch.bad) == {2}


def test_a_parser_bug_is_quarantined_with_the_words_of_the_message_path():
    parser = build_parser("txt:sep=,;ts=0")

    def buggy(value):  # a parser that fails on one value with an error it does not mean (not a MessageError)
        if value.startswith(b"bug"):
            raise ZeroDivisionError("division by zero")
        return parser.line(value)

    values = lines(64)
    values[4] = b"bug,4,x,true"
    batch = VectorDecoder.for_parser(parser, buggy, 0, 10 ** 15).decode(values)
    assert batch is not None and batch.bad == {4: "ZeroDivisionError: division by zero"}
    assert batch.good.sum() == 63
    ts, out, sizes, bad = Decoder(buggy, rows=False).decode(values)  # the message path: the same record
    hours = Router(0, 10 ** 15, text=True).route(ts, out, sizes, bad)
    assert bad == batch.bad and hours[4] is None and hours[5] == batch.hours[5]
