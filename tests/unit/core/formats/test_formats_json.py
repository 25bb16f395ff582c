"""The `json` format (new; the original had no working JSON input). No servers needed."""
from __future__ import annotations

import json

import pytest

from pseidon_dagster.core.formats import DescriptorError, MessageError, build_parser

NOW = 1_700_000_000_123
T = 1494421200000


def parser(desc: str):
    return build_parser(desc, now_ms=lambda: NOW)


def test_whole_object_line_is_the_message_as_received():
    v = b'{"ts": 1494421200000, "b": [1, 2], "s": "\\u00e9 x"}'
    p = parser("json:ts=ts")
    assert p.line(v) == (T, v + b"\n")
    assert p.line(v + b"\n") == (T, v + b"\n")
    assert p.line(v + b"\r\n") == (T, v + b"\n")
    assert p.row(v) == (T, {"ts": T, "b": [1, 2], "s": "\u00e9 x"})


def test_pretty_printed_message_stays_one_line():
    v = b'{\r\n  "ts": 1494421200000,\n  "a": "x y"\n}\n'
    ts, line = parser("json:ts=ts").line(v)
    assert ts == T
    assert line.count(b"\n") == 1 and line.endswith(b"\n") and b"\r" not in line
    assert json.loads(line) == {"ts": T, "a": "x y"}


@pytest.mark.parametrize("desc, value, want", [
    ("json:ts=ts", {"ts": T}, T),
    ("json:ts_ms=ts", {"ts": T}, T),
    ("json:ts_sec=ts", {"ts": 1494421200}, T),
    ("json:ts_sec=ts", {"ts": 1494421200.5}, T + 500),
    ("json:ts_sec=ts", {"ts": "1494421200"}, T),
    ("json:ts=ts", {"ts": str(T)}, T),
    ("json:ts=ts", {"ts": "2017-05-10T13:00:00Z"}, T),
    ("json:ts_sec=ts", {"ts": "2017-05-10T13:00:00.5Z"}, T + 500),
    ("json:ts=meta.time", {"meta": {"time": T}}, T),
    ("json:ts_sec=a.b.c", {"a": {"b": {"c": 1494421200}}}, T),
    ("json:ts=items.1.t", {"items": [{"t": 1}, {"t": T}]}, T),
    ("json:ts=meta.time", {"meta.time": T, "meta": {"time": 1}}, T),  # a literal dotted key wins
    ("json:ts=-1", {"a": 1}, NOW),
    ("json: ts = 0 ", {"0": T}, T),  # non-negative integers are key names in JSON
    ("JSON:TS=ts", {"ts": T}, T),
])
def test_timestamps(desc, value, want):
    v = json.dumps(value).encode()
    assert parser(desc).line(v) == (want, v + b"\n")
    assert parser(desc).row(v)[0] == want


def test_msg_selects_fields_in_order_as_compact_json():
    p = parser("json:ts=t;msg=b, user.name ,a,missing,list.0")
    v = json.dumps({"a": 1, "b": "é", "t": T, "user": {"name": "n\n"}, "list": [[1, 2]]}).encode()
    ts, line = p.line(v)
    assert ts == T
    assert line == '{"b":"é","user.name":"n\\n","a":1,"missing":null,"list.0":[1,2]}\n'.encode()
    assert p.row(v) == (T, {"b": "é", "user.name": "n\n", "a": 1, "missing": None, "list.0": [1, 2]})


def test_msg_output_keeps_lone_surrogates_as_escapes():
    v = b'{"t": 1, "s": "\\ud800"}'
    ts, line = parser("json:ts=t;msg=s").line(v)
    assert line == b'{"s":"\\ud800"}\n'


@pytest.mark.parametrize("value, reason", [
    (b"", "invalid JSON"),
    (b"{", "invalid JSON"),
    (b"{'a': 1}", "invalid JSON"),
    (b'{"t": 1} x', "invalid JSON"),
    (b'{"t": NaN}', "invalid JSON"),
    (b'{"t": -Infinity}', "invalid JSON"),
    (b"[" * 50_000 + b"]" * 50_000, "invalid JSON"),
    (b'{"t": "a\nb"}', "invalid JSON"),  # raw control characters are not allowed in JSON strings
    (b"\xff{}", "invalid UTF-8"),
    (b'{"t": "\xc3"}', "invalid UTF-8"),
    ('{"t": 1}'.encode("utf-16"), "invalid UTF-8"),
    (b"[1, 2]", "not a JSON object: the message is an array"),
    (b'"x"', "not a JSON object: the message is a string"),
    (b"12", "not a JSON object: the message is a number"),
    (b"null", "not a JSON object: the message is null"),
    (b"true", "not a JSON object: the message is a boolean"),
    (b'{"x": 1}', "missing timestamp: field 't' (ts) is not in the message"),
    (b'{"t": null}', "bad timestamp: the value is null"),
    (b'{"t": true}', "bad timestamp: True"),
    (b'{"t": "soon"}', "bad timestamp: 'soon'"),
    (b'{"t": [1]}', "bad timestamp: [1]"),
    (b'{"t": 1' + b"0" * 5000 + b"}", "invalid JSON"),  # beyond Python's int digit limit
])
def test_bad_messages_are_message_errors(value, reason):
    for desc in ("json:ts=t", "json:ts=t;msg=a"):
        p = parser(desc)
        with pytest.raises(MessageError) as e:
            p.line(value)
        assert str(e.value).startswith(reason)
        with pytest.raises(MessageError):
            p.row(value)


def test_clock_timestamp_still_requires_an_object():
    with pytest.raises(MessageError, match="^not a JSON object"):
        parser("json:ts=-1").line(b"[]")
    assert parser("json:ts=-1").line(b"{}") == (NOW, b"{}\n")


def test_descriptor_errors():
    for desc in ("json", "json:msg=a", "json:ts=", "json:ts=.a", "json:ts=t;msg=a,", "json:ts=t;sep=tab",
                 "json:ts=t;msg=a,b,a"):
        with pytest.raises(DescriptorError):
            build_parser(desc)


def test_empty_msg_means_the_whole_object():
    v = b'{"t":1,"a":2}'
    assert parser("json:ts=t;msg=").line(v) == (1, v + b"\n")
