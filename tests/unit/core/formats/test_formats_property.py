"""Property-based tests (hypothesis) of every parser:

- any message bytes give a valid result or a MessageError, never another exception;
- txt agrees with a straightforward model of the documented rules (the hot path is specialised per selection);
- json and avro-txt round-trip generated documents/records;
- any descriptor text, random or built from the grammar, builds a parser or raises DescriptorError, and
  parse_descriptor and build_parser agree.

avro-txt runs against the stand-in schema registry of test_formats_avro (http.server on 127.0.0.1; there is no
Confluent Schema Registry here).
"""
from __future__ import annotations

import decimal
import io
import json
import math

import fastavro
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pseidon_dagster.core.formats import DescriptorError, MessageError, build_parser, parse_descriptor
from pseidon_dagster.core.formats import registry as registry_mod
from pseidon_dagster.core.formats.timestamps import to_ms
from tests.unit.core.formats.test_formats_avro import LINE_SCHEMA, RICH_SCHEMA, FakeRegistry

NOW = 1_700_000_000_123
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def check_line(result) -> None:
    ts, line = result
    assert type(ts) is int
    assert type(line) is bytes and line.endswith(b"\n")


# --- txt ----------------------------------------------------------------------------------------------------------

SEPS = {"pipe": b"|", "tab": b"\t", "byte1": b"\x01", ",": b",", "\\x3b": b";"}
TOKENS = [b"1494421200000", b"1494421200", b"12.5", b"2017-05-10T13:00:00Z", b"", b"abc", b"-3", b" 7 ", b"\xff",
          "é".encode(), b"\n", b"\r", b"\r\n", b"9" * 30]


@st.composite
def txt_case(draw):
    sep_name = draw(st.sampled_from(sorted(SEPS)))
    sep = SEPS[sep_name]
    ts_key = draw(st.sampled_from(["ts", "ts_ms", "ts_sec"]))
    ts_idx = draw(st.integers(-2, 6))
    bound = st.one_of(st.just(""), st.integers(-3, 8).map(str))
    msg = draw(st.one_of(st.none(), st.integers(-2, 7).map(str),
                         st.tuples(bound, bound).map(lambda t: f"{t[0]}:{t[1]}"), st.sampled_from([":", "", " 1 : "])))
    desc = f"txt:sep={sep_name};{ts_key}={ts_idx}" + ("" if msg is None else f";msg={msg}")
    pieces = draw(st.lists(st.one_of(st.sampled_from(TOKENS), st.binary(max_size=6)), max_size=10))
    value = sep.join(pieces) if draw(st.booleans()) else b"".join(pieces + [sep] * draw(st.integers(0, 3)))
    return desc, sep, ts_idx, 1000 if ts_key == "ts_sec" else 1, msg, value


def model_select(fields: list[bytes], msg: str | None) -> list[bytes]:
    """The documented msg= rules, written independently of the implementation."""
    s = (msg or "").strip()
    n = len(fields)
    if s in ("", ":"):
        return fields
    if ":" not in s:
        i = int(s)
        if i < 0:
            return fields
        if i >= n:
            raise MessageError("missing field")
        return [fields[i]]
    a, b = s.split(":")[:2]
    start = max(int(a), 0) if a.strip() else 0
    end = int(b) if b.strip() else -1
    end = n if end <= -1 else min(end, n)
    if start >= n:
        return []
    if end <= start:
        return [fields[start]]
    return fields[start:end]


def model_txt(value: bytes, sep: bytes, ts_idx: int, mult: int, msg: str | None):
    if value.endswith(b"\r\n"):
        value = value[:-2]
    elif value.endswith(b"\n"):
        value = value[:-1]
    fields = value.split(sep)
    if ts_idx < 0:
        ts = NOW
    elif ts_idx >= len(fields):
        raise MessageError("missing timestamp")
    else:
        ts = to_ms(fields[ts_idx], mult)
    return ts, model_select(fields, msg)


def outcome(fn, *args):
    try:
        return fn(*args)
    except MessageError:
        return MessageError


@FAST
@given(txt_case())
def test_txt_agrees_with_the_model_for_any_bytes(case):
    desc, sep, ts_idx, mult, msg, value = case
    p = build_parser(desc, now_ms=lambda: NOW)
    want = outcome(model_txt, value, sep, ts_idx, mult, msg)
    got = outcome(p.line, value)
    row = outcome(p.row, value)
    if want is MessageError:
        assert got is MessageError and row is MessageError
        return
    ts, fields = want
    assert got == (ts, sep.join(fields) + b"\n")
    try:
        texts = [f.decode("utf-8") for f in fields]
    except UnicodeDecodeError:
        assert row is MessageError
    else:
        assert row == (ts, texts)


@FAST
@given(st.sampled_from(["txt:ts=0", "txt:sep=pipe;ts_sec=3;msg=1", "txt:sep=tab;ts=1;msg=2:", "txt:ts=-1;msg=0:2",
                        "txt:sep=comma;ts=2;msg=1:3", "txt:sep=space;ts=0;msg=5"]),
       st.binary(max_size=64))
def test_txt_random_bytes_only_message_errors(desc, value):
    p = build_parser(desc)
    for fn in (p.line, p.row):
        try:
            res = fn(value)
        except MessageError:
            continue
        assert type(res[0]) is int


# --- json ---------------------------------------------------------------------------------------------------------

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                         st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8))
json_values = st.recursive(
    json_scalars,
    lambda kids: st.one_of(st.lists(kids, max_size=4), st.dictionaries(st.text(max_size=5), kids, max_size=4)),
    max_leaves=12)
JSON_DESCS = ["json:ts=t", "json:ts_sec=t", "json:ts=a.b", "json:ts=-1", "json:ts=t;msg=a,b.c,t", "json:ts=-1;msg=x"]


@FAST
@given(st.sampled_from(JSON_DESCS), st.one_of(st.binary(max_size=40),
                                              json_values.map(lambda v: json.dumps(v).encode()),
                                              st.text(max_size=30).map(str.encode)))
def test_json_random_input_only_message_errors(desc, value):
    p = build_parser(desc, now_ms=lambda: NOW)
    for fn in (p.line, p.row):
        try:
            res = fn(value)
        except MessageError:
            continue
        assert type(res[0]) is int


@FAST
@given(st.dictionaries(st.text(max_size=5), json_values, max_size=5), st.integers(0, 2**41), st.booleans())
def test_json_round_trip(obj, t, pretty):
    obj["t"] = t
    value = json.dumps(obj, indent=2 if pretty else None, ensure_ascii=bool(t % 2)).encode()
    ts, line = build_parser("json:ts=t").line(value)
    check_line(line and (ts, line))
    assert ts == t
    assert line.count(b"\n") == 1
    assert json.loads(line) == obj
    ts, line = build_parser("json:ts_sec=t;msg=t,a,missing").line(value)
    assert ts == t * 1000
    assert json.loads(line) == {"t": t, "a": obj.get("a"), "missing": obj.get("missing")}


# --- avro-txt -----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def registry():
    r = FakeRegistry({1: LINE_SCHEMA, 2: RICH_SCHEMA})
    yield r
    r.close()


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    monkeypatch.setattr(registry_mod, "RETRY_DELAYS", (0.01, 0.01))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


AVRO_DESCS = ["avro-txt:ts=0;msg=1", "avro-txt:ts=timestamp", "avro-txt:ts_sec=-1;msg=line", "avro-txt:ts=when;msg=3",
              "avro-txt:ts=meta.time;msg=tags", "avro-txt:ts=-1"]


@FAST
@given(st.sampled_from(AVRO_DESCS),
       st.one_of(st.binary(max_size=40),
                 st.tuples(st.sampled_from([1, 2, 3]), st.binary(max_size=40)).map(
                     lambda t: b"\x00" + t[0].to_bytes(4, "big") + t[1])))
def test_avro_random_bytes_only_message_errors(registry, desc, value):
    p = build_parser(desc, schema_registry_url=registry.url, now_ms=lambda: NOW)
    for fn in (p.line, p.row):
        try:
            res = fn(value)
        except MessageError:
            continue
        assert type(res[0]) is int


@FAST
@given(st.integers(-2**63, 2**63 - 1), st.text(max_size=20))
def test_avro_round_trip(registry, t, text):
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(LINE_SCHEMA), {"timestamp": t, "line": text})
    value = b"\x00\x00\x00\x00\x01" + buf.getvalue()
    p = build_parser("avro-txt:ts=0;msg=1", schema_registry_url=registry.url)
    body = text.encode()
    body = body[:-2] if body.endswith(b"\r\n") else body[:-1] if body.endswith(b"\n") else body
    assert p.line(value) == (t, body + b"\n")
    ts, line = build_parser("avro-txt:ts_sec=timestamp", schema_registry_url=registry.url).line(value)
    assert ts == t * 1000 and json.loads(line) == {"timestamp": t, "line": text}


# --- descriptors --------------------------------------------------------------------------------------------------

def check_descriptor(text) -> None:
    try:
        parse_descriptor(text)
        parsed = True
    except DescriptorError:
        parsed = False
    try:
        build_parser(text, schema_registry_url="http://127.0.0.1:1")
        built = True
    except DescriptorError:
        built = False
    assert parsed == built


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(max_size=40), st.text(alphabet="txtjsonavro-:;=,.| \\0123456789-tsmgepTS", max_size=40)))
def test_random_descriptor_text_only_descriptor_errors(text):
    check_descriptor(text)


KEYS = ["ts", "ts_ms", "ts_sec", "sep", "msg", "TS", " msg ", "Sep", "x", ""]
VALUES = st.one_of(
    st.integers(-3, 12).map(str),
    st.sampled_from(["", ":", "1:", ":2", "2:4", "-1:-1", "10000:1000", "1:2:3", "a:b", "1.5", "007", "١"]),
    st.sampled_from(["byte1", "tab", "space", "semicolon", "pipe", "comma", "PIPE", ",", "\\t", "\\x01",
                     "\\u0001", "\\U0010FFFF", "\\U00110000", "\\ud800", "\\x", "\\", "\\\\", "\\n", "ab", "§"]),
    st.sampled_from(["t", "meta.time", "a..b", ".a", "a.", "a,b", "a,,b", "a, b ,c", "items.0.t", "a-b", "_x"]),
    st.text(max_size=6),
    st.just("9" * 5000),
)


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(["txt", "TXT", " json ", "avro-txt", "Avro-Txt", "avro", "xml", ""]),
       st.lists(st.tuples(st.sampled_from(KEYS), VALUES, st.sampled_from(["=", " = ", "==", ""])), max_size=5),
       st.sampled_from([";", " ; ", ";;"]))
def test_structured_descriptors_only_descriptor_errors(kind, props, joiner):
    text = kind + ":" + joiner.join(k + eq + v for k, v, eq in props)
    check_descriptor(text)


# --- timestamps ---------------------------------------------------------------------------------------------------

@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(max_size=30), st.binary(max_size=30), st.integers(), st.floats(), st.decimals(),
                 st.datetimes(), st.dates(), st.from_regex(r"-?\d{1,25}(\.\d{0,12})?([eE][+-]?\d{1,4})?",
                                                           fullmatch=True)),
       st.sampled_from([1, 1000]))
def test_to_ms_returns_an_int_or_a_message_error(value, mult):
    try:
        ms = to_ms(value, mult)
    except MessageError as e:
        assert str(e).startswith("bad timestamp: ")
        return
    assert type(ms) is int
    if isinstance(value, float):
        assume(math.isfinite(value))
        assert abs(ms - value * mult) <= max(1, abs(value * mult) * 1e-12)
    if isinstance(value, decimal.Decimal) and value.is_finite():
        assert ms == math.floor(value * mult)
