"""Descriptor grammar, timestamps and the `txt` format.

Includes the original pseidon-etl test table (formats_test.clj, see original-behavior.md §1.1 and §7.1) and one test
per bug of the original that this version fixes (docs/formats.md, "Differences from pseidon-etl").
No servers needed.
"""
from __future__ import annotations

import datetime as dt
import decimal
import time

import pytest

from pseidon_dagster.core.formats import (
    Descriptor,
    DescriptorError,
    MessageError,
    RegistryUnavailable,
    build_parser,
    parse_descriptor,
)
from pseidon_dagster.core.formats.timestamps import to_ms
from pseidon_dagster.core.formats.txt import field_selector, separator

NOW = 1_700_000_000_123


def now():
    return NOW


def parse(desc: str, value: bytes):
    return build_parser(desc, now_ms=now).line(value)


# --- descriptor grammar ----------------------------------------------------------------------------------------

def test_parse_format_like_the_original():
    d = parse_descriptor("txt:ts=0;sep=byte1")
    assert d == Descriptor("txt", {"ts": "0", "sep": "byte1"}, "txt:ts=0;sep=byte1")


def test_whitespace_and_case_are_tolerated():
    d = parse_descriptor("  TXT :  ts = 0 ; SEP = Pipe ;; msg = 1 : ")
    assert d.type == "txt"
    assert d.props == {"ts": "0", "sep": "Pipe", "msg": "1 :"}
    assert parse("  TXT :  ts = 0 ; SEP = Pipe ;; msg = 1 : ", b"1|a|b\n") == (1, b"a|b\n")


def test_values_may_contain_colon_and_equals():
    assert parse_descriptor("txt:ts=0;sep=:").props["sep"] == ":"
    assert parse_descriptor("txt:ts=0;sep==").props["sep"] == "="
    assert parse("txt:ts=0;sep==", b"5=a=b") == (5, b"5=a=b\n")
    assert parse("txt:ts=0;sep=:;msg=1", b"5:a:b") == (5, b"a\n")


def test_bytes_descriptor_is_accepted():
    assert parse_descriptor(b"txt:ts=0").type == "txt"


@pytest.mark.parametrize("text, needle", [
    (None, "empty"),
    ("", "empty"),
    ("   ", "empty"),
    ("txt", "no timestamp property"),
    ("txt:", "no timestamp property"),
    ("txt:sep=pipe", "no timestamp property"),
    ("txt:sep=pipe;msg=1", "no timestamp property"),
    ("csv:ts=0", "unknown format type 'csv'"),
    ("avro:ts=0", "unknown format type 'avro'"),
    ("ts=0", "unknown format type"),
    ("txt:ts", "not key=value"),
    ("txt:ts=0;=5", "not key=value"),
    ("txt:ts=0;ts=1", "given twice"),
    ("txt:ts=0;TS=1", "given twice"),
    ("txt:ts=0;foo=1", "unknown txt property 'foo'"),
    ("txt:ts=0;sep=pipe;fields=1;x=2", "unknown txt properties 'fields', 'x'"),
    ("txt:ts=", "ts= has no value"),
    ("txt:ts=a", "ts='a'"),
    ("txt:ts=1.5", "ts='1.5'"),
    ("txt:ts_sec=x", "ts_sec='x'"),
    ("txt:ts=0;sep=", "sep= is empty"),
    ("txt:ts=0;sep=  ", "sep= is empty"),
    ("txt:ts=0;sep=ab", "sep='ab'"),
    ("txt:ts=0;sep=pipes", "sep='pipes'"),
    ("txt:ts=0;sep=\\q", "sep='\\\\q'"),
    ("txt:ts=0;sep=\\x1", "sep="),
    ("txt:ts=0;sep=\\x0g", "sep="),
    ("txt:ts=0;sep=\\ud800", "sep="),
    ("txt:ts=0;sep=\\n", "line break"),
    ("txt:ts=0;sep=\\x0d", "line break"),
    ("txt:ts=0;msg=a", "msg='a'"),
    ("txt:ts=0;msg=1:b", "'b' is not a usable integer"),
    ("txt:ts=0;msg=1.5", "msg='1.5'"),
    ("json:ts=0;sep=tab", "unknown json property 'sep'"),
    ("json:ts=a..b", "empty segment"),
    ("json:ts=t;msg=a,,b", "empty field name"),
    ("json:ts=t;msg=a,a", "twice"),
    ("json:msg=a", "no timestamp property"),
    ("avro-txt:ts=0;msg=1:2", "selects one field"),
    ("avro-txt:ts=0;msg=a,b", "selects one field"),
    ("avro-txt:ts=a-b", "not an Avro field name"),
    ("avro-txt:ts=0;sep=pipe", "unknown avro-txt property 'sep'"),
])
def test_invalid_descriptors_are_rejected_with_a_clear_message(text, needle):
    with pytest.raises(DescriptorError) as e:
        parse_descriptor(text)
    assert needle in str(e.value)
    if text is not None:
        with pytest.raises(DescriptorError):
            build_parser(text, schema_registry_url="http://127.0.0.1:1")


def test_build_parser_accepts_a_descriptor_object():
    p = build_parser(Descriptor("txt", {"ts": "0", "sep": "pipe"}, "txt:ts=0;sep=pipe"), now_ms=now)
    assert p.type == "txt"
    assert p.line(b"7|x") == (7, b"7|x\n")


def test_build_parser_does_not_contact_the_registry():
    p = build_parser("avro-txt:ts=0;msg=1", schema_registry_url="http://127.0.0.1:1")
    assert p.type == "avro-txt"


def test_registry_unavailable_is_a_runtime_error_not_a_message_error():
    assert issubclass(RegistryUnavailable, RuntimeError)
    assert not issubclass(RegistryUnavailable, MessageError)


# --- separators -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, sep", [
    (None, b"\x01"), ("byte1", b"\x01"), ("tab", b"\t"), ("space", b" "), ("semicolon", b";"), ("pipe", b"|"),
    ("comma", b","), ("TAB", b"\t"), ("Pipe", b"|"),
    (",", b","), ("|", b"|"), (":", b":"), ("=", b"="), ("#", b"#"), ("\\", b"\\"), ("t", b"t"), ("\t", b"\t"),
    ("\\t", b"\t"), ("\\x01", b"\x01"), ("\\u0001", b"\x01"), ("\\U00000001", b"\x01"), ("\\x3b", b";"),
    ("\\0", b"\x00"), ("\\\\", b"\\"), ("§", "§".encode()), ("\\u00a7", "§".encode()),
])
def test_separators(raw, sep):
    assert separator(raw) == sep


def test_literal_comma_separator_works():
    """Bug 2 of the original: `txt:sep=,;ts=0` (its own db.sql example) threw "No matching clause"."""
    assert parse("txt:sep=,;ts=0", b"1494421200000,a,b") == (1494421200000, b"1494421200000,a,b\n")
    assert parse("txt:sep=,;ts=0;msg=2", b"1,a,b") == (1, b"b\n")
    assert parse("txt:sep=comma;ts=0;msg=1", b"1,a,b") == (1, b"a\n")


@pytest.mark.parametrize("desc", ["txt:sep=tab;ts=0;msg=1", "txt:sep=\\t;ts=0;msg=1", "txt:sep=\\x09;ts=0;msg=1",
                                  "txt:sep=\\u0009;ts=0;msg=1"])
def test_escaped_separators(desc):
    assert parse(desc, b"3\tx\ty") == (3, b"x\n")


def test_multibyte_separator():
    assert parse("txt:sep=§;ts=1;msg=0", "é§5§x".encode()) == (5, "é\n".encode())


# --- the original test suite (formats_test.clj) -------------------------------------------------------------------

PIPE_SAMPLE = b"5|aasdfghjkl|adfgasdgsd|315532800|dsfsdfdsf"


def test_byte1_message_with_msg_1_renders_the_second_field():
    assert parse("txt:ts=0;sep=byte1;msg=1", b"1494421200000\x01hi") == (1494421200000, b"hi\n")
    assert parse("txt:ts=0;msg=1", b"1494421200000\x01hi") == (1494421200000, b"hi\n")  # byte1 is the default


def test_pipe_sample_ts_is_milliseconds():
    assert parse("txt:sep=pipe;ts=3;msg=1", PIPE_SAMPLE) == (315532800, b"aasdfghjkl\n")


def test_pipe_sample_ts_sec_is_seconds():
    assert parse("txt:sep=pipe;ts_sec=3;msg=1", PIPE_SAMPLE) == (315532800000, b"aasdfghjkl\n")


def test_pipe_sample_ts_sec_minus_one_is_now():
    assert parse("txt:sep=pipe;ts_sec=-1;msg=1", PIPE_SAMPLE) == (NOW, b"aasdfghjkl\n")
    ts, _ = build_parser("txt:sep=pipe;ts_sec=-1;msg=1").line(PIPE_SAMPLE)  # default clock: the wall clock
    assert abs(ts - time.time() * 1000) < 10_000


def test_readme_example():
    assert parse("txt:sep=pipe;msg=1:-1;ts=0", PIPE_SAMPLE) == (5, PIPE_SAMPLE[2:] + b"\n")


# Message with 6 fields, field i = str(1000 + i), so any field can be the timestamp.
FIELDS = [str(1000 + i).encode() for i in range(6)]
MSG6 = b"|".join(FIELDS)

# msg value -> selected field indexes (None: MessageError). The original's table first, then the array-parser cases,
# then more edges of the same rules.
SLICES = [
    # formats_test.clj splice table
    ("-1:-1", [0, 1, 2, 3, 4, 5]), ("-1:-10", [0, 1, 2, 3, 4, 5]), ("-100:-10", [0, 1, 2, 3, 4, 5]),
    (":-1", [0, 1, 2, 3, 4, 5]), ("-1:", [0, 1, 2, 3, 4, 5]),
    ("2:-1", [2, 3, 4, 5]), ("2:4", [2, 3]), ("2:3", [2]), ("2:2", [2]), ("2:1", [2]), ("2:1000", [2, 3, 4, 5]),
    ("10000:1000", []),
    # array-parser cases
    (":", [0, 1, 2, 3, 4, 5]), ("0:", [0, 1, 2, 3, 4, 5]), (":-1000", [0, 1, 2, 3, 4, 5]),
    (":100000", [0, 1, 2, 3, 4, 5]), ("0:1", [0]), ("0", [0]), ("1", [1]),
    # more of the same rules
    (None, [0, 1, 2, 3, 4, 5]), ("", [0, 1, 2, 3, 4, 5]), ("-1", [0, 1, 2, 3, 4, 5]), ("-7", [0, 1, 2, 3, 4, 5]),
    ("1:", [1, 2, 3, 4, 5]), ("0:0", [0]), ("5:", [5]), ("6:", []), ("6:2", []), ("5:5", [5]), ("3:6", [3, 4, 5]),
    ("3:7", [3, 4, 5]), (" 2 : 4 ", [2, 3]), ("2:4:1", [2, 3]), ("-5:2", [0, 1]), ("4:-2", [4, 5]), ("5", [5]),
    ("6", None), ("100", None),
]


@pytest.mark.parametrize("ts", [0, 1, 3, 5, -1])
@pytest.mark.parametrize("msg, want", SLICES)
def test_msg_slice_table(msg, want, ts):
    desc = f"txt:sep=pipe;ts={ts}" + ("" if msg is None else f";msg={msg}")
    p = build_parser(desc, now_ms=now)
    if want is None:
        with pytest.raises(MessageError, match=r"^missing field: msg=\d+ but the message has 6 fields"):
            p.line(MSG6)
        with pytest.raises(MessageError):
            p.row(MSG6)
        return
    expected_ts = NOW if ts < 0 else 1000 + ts
    assert p.line(MSG6) == (expected_ts, b"|".join(FIELDS[i] for i in want) + b"\n")
    assert p.row(MSG6) == (expected_ts, [FIELDS[i].decode() for i in want])
    assert p.line(MSG6 + b"\n") == p.line(MSG6)


def test_field_selector_kinds():
    assert field_selector(None) == ("all", 0, 0)
    assert field_selector("1:") == ("tail", 1, -1)
    assert field_selector("2:4") == ("range", 2, 4)
    assert field_selector("2:1") == ("single", 2, 2)
    assert field_selector("3") == ("one", 3, 0)


# --- fixed bugs of the original -------------------------------------------------------------------------------------

def test_trailing_colon_is_kept():
    """Bug 3a: `msg=1:` was read as `msg=1` (Java split drops trailing empty strings)."""
    assert parse_descriptor("txt:ts=0;msg=1:").props["msg"] == "1:"
    assert parse("txt:sep=pipe;ts=0;msg=1:", b"9|a|b|c") == (9, b"a|b|c\n")


def test_empty_fields_are_kept():
    """Bug 3b: `100||b|` split into ["100", "b"] and shifted every later index."""
    p = build_parser("txt:sep=pipe;ts=0", now_ms=now)
    assert p.row(b"100||b|") == (100, ["100", "", "b", ""])
    assert p.line(b"100||b|") == (100, b"100||b|\n")
    assert parse("txt:sep=pipe;ts=0;msg=2", b"100||b|") == (100, b"b\n")
    assert parse("txt:sep=pipe;ts=0;msg=3", b"100||b|") == (100, b"\n")
    assert parse("txt:sep=pipe;ts=0;msg=1:3", b"100||b|") == (100, b"|b\n")
    assert parse("txt:sep=pipe;ts=2", b"||100") == (100, b"||100\n")
    assert parse("txt:sep=space;ts=0;msg=2", b"1  x") == (1, b"x\n")


def test_plain_index_out_of_range_is_a_message_error():
    """The original gave an empty line when i == field count and threw when i > count."""
    for msg in (3, 4):
        with pytest.raises(MessageError, match=f"missing field: msg={msg} but the message has 3 fields"):
            parse(f"txt:sep=pipe;ts=0;msg={msg}", b"1|a|b")


def test_timestamp_field_out_of_range_is_a_message_error():
    with pytest.raises(MessageError, match="missing timestamp: ts=3 but the message has 2 fields"):
        parse("txt:sep=pipe;ts=3", b"1|a")
    with pytest.raises(MessageError, match="missing timestamp: ts_sec=1 but the message has 1 field$"):
        parse("txt:sep=pipe;ts_sec=1;msg=0", b"1")


def test_ts_precedence():
    v = b"1|2|3"
    assert parse("txt:sep=pipe;ts_sec=2;ts_ms=1;ts=0", v)[0] == 1
    assert parse("txt:sep=pipe;ts_sec=2;ts_ms=1", v)[0] == 2
    assert parse("txt:sep=pipe;ts_sec=2", v)[0] == 3000
    assert parse("txt:sep=pipe;ts=-1;ts_sec=2", v)[0] == NOW
    assert parse("txt:sep=pipe;ts=-5", v)[0] == NOW
    assert parse("txt:sep=pipe;ts=007", b"0|1|2|3|4|5|6|7")[0] == 7


def test_trailing_newline_dropped_once():
    p = build_parser("txt:sep=pipe;ts=0", now_ms=now)
    assert p.line(b"1|a\n") == (1, b"1|a\n")
    assert p.line(b"1|a\r\n") == (1, b"1|a\n")
    assert p.line(b"1|a\n\n") == (1, b"1|a\n\n")
    assert p.line(b"1|a\r") == (1, b"1|a\r\n")
    assert p.row(b"1|a\r\n") == (1, ["1", "a"])
    assert parse("txt:sep=pipe;ts=-1", b"\n") == (NOW, b"\n")
    assert parse("txt:sep=pipe;ts=-1", b"") == (NOW, b"\n")


@pytest.mark.parametrize("field, desc, want", [
    (b"1494421200000", "ts=0", 1494421200000),
    (b" 1494421200000 ", "ts=0", 1494421200000),
    (b"1494421200", "ts_sec=0", 1494421200000),
    (b"1494421200.5", "ts_sec=0", 1494421200500),
    (b"1494421200.123", "ts_sec=0", 1494421200123),
    (b"1494421200123.9", "ts=0", 1494421200123),
    (b"1.4944212e9", "ts_sec=0", 1494421200000),
    (b"2017-05-10T13:00:00Z", "ts=0", 1494421200000),
    (b"2017-05-10T13:00:00Z", "ts_sec=0", 1494421200000),
    (b"2017-05-10T15:00:00.250+02:00", "ts=0", 1494421200250),
    (b"2017-05-10 13:00:00", "ts=0", 1494421200000),
    (b"2017-05-10", "ts=0", 1494374400000),
])
def test_txt_timestamp_values(field, desc, want):
    v = field + b"|x"
    assert parse(f"txt:sep=pipe;{desc}", v) == (want, v + b"\n")
    assert parse(f"txt:sep=pipe;{desc};msg=1", v) == (want, b"x\n")
    assert parse(f"txt:sep=pipe;{desc};msg=1:", v) == (want, b"x\n")


@pytest.mark.parametrize("field", [b"", b"abc", b"0x10", b"NaN", b"inf", b"12:30", b"\xff\xfe", b"1e400", b"true",
                                   b"2017-13-45T00:00:00"])
def test_bad_txt_timestamps_are_message_errors_naming_the_value(field):
    for desc in ("txt:sep=pipe;ts=0", "txt:sep=pipe;ts=0;msg=1", "txt:sep=pipe;ts=0;msg=1:",
                 "txt:sep=pipe;ts=0;msg=0:1"):
        with pytest.raises(MessageError, match=r"^bad timestamp: b?'") as e:
            parse(desc, field + b"|x")
        assert repr(field)[:20] in str(e.value) or field == b""


def test_long_bad_timestamp_is_truncated_in_the_reason():
    with pytest.raises(MessageError) as e:
        parse("txt:sep=pipe;ts=0", b"x" * 10_000 + b"|y")
    assert len(str(e.value)) < 200
    assert "10003 chars" in str(e.value)


def test_row_rejects_invalid_utf8_in_selected_fields_only():
    p = build_parser("txt:sep=pipe;ts=0;msg=1", now_ms=now)
    assert p.row(b"1|ok|\xff") == (1, ["ok"])
    with pytest.raises(MessageError, match="^invalid UTF-8"):
        p.row(b"1|\xff|ok")
    assert p.line(b"1|\xff|ok") == (1, b"\xff\n")  # lines pass bytes through


# --- timestamp conversion ---------------------------------------------------------------------------------------

UTC = dt.timezone.utc


@pytest.mark.parametrize("value, mult, want", [
    (5, 1, 5), (5, 1000, 5000), (-5, 1, -5), ("123", 1, 123), ("+123", 1, 123), (b"123", 1000, 123000),
    (1494421200.5, 1000, 1494421200500), (1494421200.123, 1000, 1494421200123), ("1494421200.123", 1000, 1494421200123),
    (decimal.Decimal("1.5"), 1000, 1500), ("1e3", 1, 1000), (".5", 1000, 500), ("-1.5", 1, -2),
    (dt.datetime(2017, 5, 10, 13, tzinfo=UTC), 1000, 1494421200000),
    (dt.datetime(2017, 5, 10, 13), 1, 1494421200000), (dt.date(2017, 5, 10), 1, 1494374400000),
    ("2017-05-10T13:00:00.123456Z", 1, 1494421200123), ("2017-05-10T13:00:00z", 1, 1494421200000),
    ("20170510T130000Z", 1, 1494421200000),
])
def test_to_ms(value, mult, want):
    assert to_ms(value, mult) == want


@pytest.mark.parametrize("value", [None, True, False, "", " ", "abc", "NaN", "Infinity", "-inf", float("nan"),
                                   float("inf"), "1e30", "9" * 25 + ".5", decimal.Decimal("NaN"), [1], {"a": 1},
                                   b"\xff", "١٢٣", "12:30:00", "0x10", "2017-05-10T13:00:00X"])
def test_to_ms_rejects(value):
    with pytest.raises(MessageError, match="^bad timestamp: "):
        to_ms(value, 1)
