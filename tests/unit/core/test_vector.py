"""The vectorised hot path (core/ingest/vector.py) decides exactly as the message-by-message path: for generated
batches of txt messages (good, bad, ISO and garbage timestamps, wrong field counts, line breaks, bytes that are not
UTF-8, values a Parquet column refuses), both paths write the same file names with the same bytes and the same
quarantine records -- so a replay writes the same bytes whichever path each of its batches took. No servers: the
stages run on messages as confluent-kafka hands them (offset, value, timestamp)."""
from __future__ import annotations

import os

import pyarrow as pa
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from pseidon_dagster.core.formats import build_parser
from pseidon_dagster.core.hive import schema_from_columns
from pseidon_dagster.core.ingest.decode import Decoder
from pseidon_dagster.core.ingest.route import Router
from pseidon_dagster.core.ingest.segment import CutRules, SegmentWriter
from pseidon_dagster.core.ingest.sink import Sink
from pseidon_dagster.core.ingest.vector import VectorDecoder
from pseidon_dagster.core.output_formats import open_text
from pseidon_dagster.core.schemas import RowConverter
from pseidon_dagster.core.writers import ParquetFile
from tests.unit.core.ingest.test_write_records import Msg

BASE = 1_795_000_000_000
HOUR = 3_600_000
EXAMPLES = int(os.environ.get("PSEIDON_PROPERTY_EXAMPLES", "60"))


def write(tmp, values: list, batches: list[int], fmt: str, schema, vectorised: bool, rules: CutRules,
          lo: int = 0, hi: int = 10 ** 15) -> dict[str, bytes]:
    parser = build_parser(fmt, now_ms=lambda: BASE)
    rows = schema is not None
    decoder = Decoder.for_rows(parser, RowConverter(schema)) if rows else Decoder.for_text(parser)
    router = Router(lo, hi, text=not rows)
    vector = VectorDecoder.for_parser(parser, decoder.parse, lo, hi, schema) if vectorised else None
    root = tmp / ("v" if vectorised else "s")
    noop = lambda **_: None  # noqa: E731
    if rows:
        data = Sink("data", str(root / "d"), "log", "raw", True, "parquet",
                    lambda s: ParquetFile(s, schema, "snappy", 3000), 1, noop, rows=True, flush_bytes=500)
    else:
        data = Sink("data", str(root / "d"), "log", "raw", True, "gz", lambda s: open_text(s, "gzip"), 1, noop,
                    flush_bytes=500)
    q = Sink("quarantine", str(root / "q"), "log", "raw", True, "jsonl.gz", lambda s: open_text(s, "gzip"), 1, noop)
    writer = SegmentWriter(rules, data, q, {0: 0}, BASE // HOUR)
    msgs = [Msg(i, v, BASE) for i, v in enumerate(values)]
    pos = 0
    for size in batches + [len(msgs)]:
        chunk = msgs[pos:pos + size]
        pos += len(chunk)
        if not chunk:
            continue
        vals = [m.value() for m in chunk]
        def record(i, reason, c=chunk):
            return (f"{c[i].offset()} {reason}\n".encode())
        batch = vector.decode(vals) if vector is not None else None
        if batch is not None:
            writer.add_runs(0, chunk, batch, record)
        else:
            ts, out, sizes, bad = decoder.decode(vals)
            hours = router.route(ts, out, sizes, bad)
            writer.add(0, [m.offset() for m in chunk], hours, out, sizes, bad, record)
        data.flush_all_if_over()
    writer.finish({0: len(msgs)})
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def good_line(i: int, hours: int = 3) -> bytes:
    return f"{BASE + (i * 7919) % (hours * HOUR)},{i},user{i % 7},{i % 3 == 0}".encode()


odd_values = st.sampled_from([
    b"", b"no-separators", b"2026-11-20T07:30:00Z,iso,x,true", b"-5,neg,x,true", b"99999999999999999999,big,x,t",
    b" 1795000000000,space,x,true", b"1795000000000,two\nlines,x,true", b"1795000000000,cr\r,x,true",
    b"1795000000000,\xff\xfe,x,true", b"1795000000000,a,b", b"1795000000000,a,b,c,d", b"abc,def,ghi,jkl",
    b"1795000000000,,x,", b"1795000000000,1,x,maybe", None, b"+1795000000000,plus,x,true",
    b"1795000000000,5e2,x,true", b"\xe2\x82\xac1795,euro,x,true",
])


@st.composite
def batches(draw):
    n = draw(st.integers(70, 700))
    values = [good_line(i) for i in range(n)]
    for _ in range(draw(st.integers(0, 8))):
        values[draw(st.integers(0, n - 1))] = draw(odd_values)
    cuts = draw(st.lists(st.integers(1, 300), max_size=6))
    rollover = draw(st.sampled_from([400, 2000, 10 ** 9]))
    open_per = draw(st.sampled_from([1, 2, 64]))
    return values, cuts, CutRules(rollover, open_per)


@hsettings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(batches())
def test_text_batches_write_what_the_message_path_writes(tmp_path_factory, case):
    values, cuts, rules = case
    tmp = tmp_path_factory.mktemp("text")
    fmt = "txt:sep=,;ts=0"
    assert write(tmp, values, cuts, fmt, None, True, rules) == write(tmp, values, cuts, fmt, None, False, rules)


SCHEMA = schema_from_columns([("ts", "bigint"), ("n", "int"), ("who", "string"), ("flag", "boolean")])


@hsettings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(batches())
def test_parquet_batches_write_what_the_message_path_writes(tmp_path_factory, case):
    values, cuts, rules = case
    tmp = tmp_path_factory.mktemp("parquet")
    fmt = "txt:sep=,;ts=0"
    assert write(tmp, values, cuts, fmt, SCHEMA, True, rules) == write(tmp, values, cuts, fmt, SCHEMA, False, rules)


def test_the_vector_path_is_taken_for_clean_batches_and_handles_the_window(tmp_path):
    parser = build_parser("txt:sep=,;ts=0")
    vector = VectorDecoder.for_parser(parser, Decoder.for_text(parser).parse, BASE, BASE + HOUR - 1)
    values = [f"{BASE + i * 60_000},{i},u,true".encode() for i in range(200)]  # 200 minutes: past the window
    batch = vector.decode(values)
    assert batch is not None and batch.good.sum() + len(batch.bad) == 200
    assert all("outside the accepted window" in r for r in batch.bad.values()) and batch.bad
    assert vector.decode(values[:10] + [b"a\nb"] + values[10:]) is None  # a line break: message by message
    assert VectorDecoder.for_parser(build_parser("txt:sep=,;ts=0;msg=1"), None, 0, 1) is None
    assert VectorDecoder.for_parser(build_parser("json:ts=t"), None, 0, 1) is None
    rules = CutRules(10 ** 9, 64)
    assert write(tmp_path, values, [], "txt:sep=,;ts=0", None, True, rules, BASE, BASE + HOUR - 1) == write(
        tmp_path, values, [], "txt:sep=,;ts=0", None, False, rules, BASE, BASE + HOUR - 1)
    assert isinstance(SCHEMA, pa.Schema)
