"""The `avro-txt` format: Confluent wire format (magic 0, 4-byte schema id, Avro binary) with a schema registry.

There is no Confluent Schema Registry server to install here, so these tests run a small stand-in: an `http.server`
in a thread on 127.0.0.1 (ephemeral port) that serves `GET /schemas/ids/{id}` -> `{"schema": "<json>"}` like the
real registry (404 with error_code 40403 for an unknown id), and can be told to answer 5xx or to go away.
"""
from __future__ import annotations

import datetime as dt
import io
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import fastavro
import pytest

from pseidon_dagster.core.formats import DescriptorError, MessageError, RegistryUnavailable, build_parser
from pseidon_dagster.core.formats import registry as registry_mod
from pseidon_dagster.core.formats.registry import client_for, normalize_url

NOW = 1_700_000_000_123
T = 1494421200000

LINE_SCHEMA = {"type": "record", "name": "Line", "namespace": "pseidon.test",
               "fields": [{"name": "timestamp", "type": "long"}, {"name": "line", "type": "string"}]}
RICH_SCHEMA = {
    "type": "record", "name": "Event", "fields": [
        {"name": "id", "type": "int"},
        {"name": "when", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "meta", "type": {"type": "record", "name": "Meta", "fields": [
            {"name": "time", "type": "long"}, {"name": "host", "type": ["null", "string"], "default": None}]}},
        {"name": "raw", "type": "bytes"},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "attrs", "type": {"type": "map", "values": "double"}},
        {"name": "ok", "type": "boolean"},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "text", "type": ["null", "string"]},
    ]}
STRING_SCHEMA = "string"


class FakeRegistry:
    """`GET /schemas/ids/{id}` from a dict; `status` forces an HTTP status for every request."""

    def __init__(self, schemas: dict[int, object] | None = None):
        self.schemas = {i: json.dumps(s) for i, s in (schemas or {}).items()}
        self.raw: dict[int, str] = {}  # id -> raw response body (for malformed answers)
        self.status: int | None = None
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server API
                outer.hits += 1
                parts = self.path.strip("/").split("/")
                code, body = 404, {"error_code": 40401, "message": "HTTP 404 Not Found"}
                if outer.status is not None:
                    code, body = outer.status, {"error_code": outer.status * 100, "message": "forced"}
                elif len(parts) == 3 and parts[:2] == ["schemas", "ids"] and parts[2].isdigit():
                    sid = int(parts[2])
                    if sid in outer.raw:
                        code, body = 200, outer.raw[sid]
                    elif sid in outer.schemas:
                        code, body = 200, {"schema": outer.schemas[sid]}
                    else:
                        code, body = 404, {"error_code": 40403, "message": "Schema not found"}
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    monkeypatch.setattr(registry_mod, "RETRY_DELAYS", (0.01, 0.01))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def registry():
    r = FakeRegistry({1: LINE_SCHEMA, 2: RICH_SCHEMA, 3: STRING_SCHEMA})
    yield r
    r.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def encode(schema, record, schema_id: int) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(schema), record)
    return b"\x00" + schema_id.to_bytes(4, "big") + buf.getvalue()


def rich(i: int = 7) -> dict:
    return {"id": i, "when": dt.datetime(2017, 5, 10, 13, tzinfo=dt.timezone.utc),
            "meta": {"time": 1494421200, "host": "h1"}, "raw": b"\x00\xffa", "tags": ["a", "b"],
            "attrs": {"x": 1.5}, "ok": True, "day": dt.date(2017, 5, 10), "text": "multi\nline\n"}


def parser(desc: str, registry: FakeRegistry):
    return build_parser(desc, schema_registry_url=registry.url, now_ms=lambda: NOW)


# --- the original's case ----------------------------------------------------------------------------------------

def test_original_example_ts_0_msg_1_in_order(registry):
    """avro_format_test.clj: 1000 {timestamp, line} records with `avro-txt:ts=0;msg=1` give lines "0".."999"."""
    p = parser("avro-txt:ts=0;msg=1", registry)
    out = [p.line(encode(LINE_SCHEMA, {"timestamp": T + i, "line": str(i)}, 1)) for i in range(1000)]
    assert out == [(T + i, f"{i}\n".encode()) for i in range(1000)]
    assert registry.hits == 1  # the schema id was fetched once and cached


def test_fields_by_name(registry):
    p = parser("avro-txt:ts=timestamp;msg=line", registry)
    assert p.line(encode(LINE_SCHEMA, {"timestamp": T, "line": "hello"}, 1)) == (T, b"hello\n")
    assert p.row(encode(LINE_SCHEMA, {"timestamp": T, "line": "hello"}, 1)) == (T, {"line": "hello"})
    p = parser("avro-txt:ts=0;msg=1", registry)
    assert p.row(encode(LINE_SCHEMA, {"timestamp": T, "line": "hello"}, 1)) == (T, {"line": "hello"})


def test_whole_record_as_compact_json_when_msg_is_absent(registry):
    for desc in ("avro-txt:ts=timestamp", "avro-txt:ts=0;msg=-1", "avro-txt:ts=0;msg="):
        ts, line = parser(desc, registry).line(encode(LINE_SCHEMA, {"timestamp": T, "line": "é\n"}, 1))
        assert (ts, line) == (T, b'{"timestamp":1494421200000,"line":"\xc3\xa9\\n"}\n')
    ts, line = parser("avro-txt:ts=id", registry).line(encode(RICH_SCHEMA, rich(), 2))
    assert ts == 7 and line.count(b"\n") == 1
    assert json.loads(line) == {"id": 7, "when": "2017-05-10T13:00:00+00:00", "meta": {"time": 1494421200, "host": "h1"},
                                "raw": "\u0000\u00ffa", "tags": ["a", "b"], "attrs": {"x": 1.5}, "ok": True,
                                "day": "2017-05-10", "text": "multi\nline\n"}


@pytest.mark.parametrize("desc, want", [
    ("avro-txt:ts=when", T),
    ("avro-txt:ts_sec=when", T),  # a date is an instant whatever the unit
    ("avro-txt:ts=1", T),
    ("avro-txt:ts_sec=meta.time", T),
    ("avro-txt:ts=day", 1494374400000),
    ("avro-txt:ts_sec=-1", NOW),
])
def test_timestamps(desc, want, registry):
    assert parser(desc, registry).line(encode(RICH_SCHEMA, rich(), 2))[0] == want


@pytest.mark.parametrize("msg, want", [
    ("id", b"7\n"), ("0", b"7\n"), ("meta.host", b"h1\n"), ("raw", b"\x00\xffa\n"), ("tags", b'["a","b"]\n'),
    ("attrs", b'{"x":1.5}\n'), ("ok", b"true\n"), ("day", b"2017-05-10\n"), ("text", b"multi\nline\n"),
    ("meta", b'{"time":1494421200,"host":"h1"}\n'), ("when", b"2017-05-10T13:00:00+00:00\n"),
])
def test_string_form_of_a_selected_field(msg, want, registry):
    assert parser(f"avro-txt:ts=when;msg={msg}", registry).line(encode(RICH_SCHEMA, rich(), 2)) == (T, want)


def test_null_field_gives_an_empty_line(registry):
    r = rich()
    r["text"] = None
    assert parser("avro-txt:ts=when;msg=text", registry).line(encode(RICH_SCHEMA, r, 2)) == (T, b"\n")


def test_row_is_the_whole_record(registry):
    ts, row = parser("avro-txt:ts=when", registry).row(encode(RICH_SCHEMA, rich(), 2))
    assert ts == T and row["meta"] == {"time": 1494421200, "host": "h1"} and row["raw"] == b"\x00\xffa"


def test_non_record_schema(registry):
    v = encode(STRING_SCHEMA, "just text", 3)
    assert parser("avro-txt:ts=-1", registry).line(v) == (NOW, b'"just text"\n')
    with pytest.raises(MessageError, match="^missing timestamp: ts=0 needs a record, but schema id 3 is a string"):
        parser("avro-txt:ts=0", registry).line(v)
    with pytest.raises(MessageError, match="^not a record"):
        parser("avro-txt:ts=-1", registry).row(v)


def test_missing_fields_are_message_errors(registry):
    v = encode(LINE_SCHEMA, {"timestamp": T, "line": "x"}, 1)
    with pytest.raises(MessageError, match="^missing field: msg=2 but schema id 1 has 2 fields"):
        parser("avro-txt:ts=0;msg=2", registry).line(v)
    with pytest.raises(MessageError, match="^missing field: schema id 1 has no field 'nope' \\(msg\\)"):
        parser("avro-txt:ts=0;msg=nope", registry).line(v)
    with pytest.raises(MessageError, match="^missing timestamp: schema id 1 has no field 'when' \\(ts\\)"):
        parser("avro-txt:ts=when", registry).line(v)
    with pytest.raises(MessageError, match="^bad timestamp: 'x'"):
        parser("avro-txt:ts=line", registry).line(v)


# --- payload errors -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, reason", [
    (b"", "not Confluent Avro: the message has 0 bytes"),
    (b"\x00\x00\x00", "not Confluent Avro: the message has 3 bytes"),
    (b'{"timestamp": 1}', "not Confluent Avro: the magic byte is 0x7b"),
    (b"\x01\x00\x00\x00\x01\x02", "not Confluent Avro: the magic byte is 0x01"),
    (b"\x00\x00\x00\x00\x01", "bad Avro payload: it does not decode with schema id 1"),  # truncated: no data at all
    (encode(LINE_SCHEMA, {"timestamp": T, "line": "hello"}, 1)[:-2], "bad Avro payload"),  # truncated string
    (b"\x00\x00\x00\x00\x01\x02\x06ab\xff", "bad Avro payload"),  # invalid UTF-8 in a string
    (b"\x00\x00\x00\x00\x01\x02\x81\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", "bad Avro payload"),  # huge length
])
def test_bad_payloads_are_message_errors(value, reason, registry):
    for desc in ("avro-txt:ts=0;msg=1", "avro-txt:ts=0"):
        with pytest.raises(MessageError) as e:
            parser(desc, registry).line(value)
        assert str(e.value).startswith(reason)


def test_unknown_schema_id_is_a_message_error_and_cached_briefly(registry):
    p = parser("avro-txt:ts=0;msg=1", registry)
    v = encode(LINE_SCHEMA, {"timestamp": T, "line": "x"}, 1)
    unknown = b"\x00\x00\x00\x01\x00" + v[5:]  # schema id 256
    for _ in range(3):
        with pytest.raises(MessageError, match=r"^unknown schema id: 256 is not in the registry at http://127"):
            p.line(unknown)
    assert registry.hits == 1
    assert p.line(v) == (T, b"x\n")


def test_invalid_schema_from_the_registry_is_a_message_error(registry):
    registry.schemas[9] = json.dumps({"type": "record", "name": "X", "fields": [{"name": "a", "type": "nope"}]})
    registry.raw[10] = json.dumps({"schema": '{"type": "string"}', "schemaType": "PROTOBUF"})
    p = parser("avro-txt:ts=-1", registry)
    for _ in range(2):
        with pytest.raises(MessageError, match="^unusable schema: id 9 is not a valid Avro schema"):
            p.line(b"\x00\x00\x00\x00\x09\x02")
        with pytest.raises(MessageError, match="^unusable schema: id 10 is a PROTOBUF schema"):
            p.line(b"\x00\x00\x00\x00\x0a\x02")
    assert registry.hits == 2


# --- registry availability ----------------------------------------------------------------------------------------

def test_registry_down_raises_registry_unavailable():
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    p = build_parser("avro-txt:ts=0;msg=1", schema_registry_url=url)
    with pytest.raises(RegistryUnavailable, match="is unavailable .*3 attempts to read schema id 1"):
        p.line(encode(LINE_SCHEMA, {"timestamp": T, "line": "x"}, 1))


@pytest.mark.parametrize("status", [500, 503])
def test_registry_5xx_raises_registry_unavailable_after_retries(status, registry):
    registry.status = status
    p = parser("avro-txt:ts=0;msg=1", registry)
    with pytest.raises(RegistryUnavailable, match=f"HTTP {status}"):
        p.line(encode(LINE_SCHEMA, {"timestamp": T, "line": "x"}, 1))
    assert registry.hits == 3
    registry.status = None  # it comes back: nothing bad was cached
    assert p.line(encode(LINE_SCHEMA, {"timestamp": T, "line": "x"}, 1)) == (T, b"x\n")


@pytest.mark.parametrize("status", [401, 403])
def test_registry_auth_errors_raise_registry_unavailable(status, registry):
    registry.status = status
    with pytest.raises(RegistryUnavailable, match=f"HTTP {status}"):
        parser("avro-txt:ts=0;msg=1", registry).line(encode(LINE_SCHEMA, {"timestamp": T, "line": "x"}, 1))
    assert registry.hits == 1


def test_something_else_at_the_registry_url_raises_registry_unavailable(registry):
    registry.raw[1] = "<html>hello</html>"
    with pytest.raises(RegistryUnavailable, match="did not answer like a schema registry"):
        parser("avro-txt:ts=0;msg=1", registry).line(encode(LINE_SCHEMA, {"timestamp": T, "line": "x"}, 1))


def test_one_client_per_url_shared_by_parsers(registry):
    a = parser("avro-txt:ts=0;msg=1", registry)
    b = build_parser("avro-txt:ts=timestamp", schema_registry_url=registry.url + "/", now_ms=lambda: NOW)
    assert a.registry is b.registry is client_for(registry.url.removeprefix("http://"))
    v = encode(LINE_SCHEMA, {"timestamp": T, "line": "x"}, 1)
    a.line(v)
    b.line(v)
    assert registry.hits == 1


@pytest.mark.parametrize("url, want", [
    (None, "http://localhost:8081"),
    ("", "http://localhost:8081"),
    ("localhost", "http://localhost:8081"),
    ("registry", "http://registry:8081"),
    ("registry:9000", "http://registry:9000"),
    ("http://registry", "http://registry:8081"),  # the original added no port here
    ("http://registry:8081/", "http://registry:8081"),
    ("https://registry/sr/", "https://registry:8081/sr"),
    ("https://registry:443", "https://registry:443"),
    (" http://user:pw@registry ", "http://user:pw@registry:8081"),
    ("[::1]", "http://[::1]:8081"),
    ("http://[::1]:9000", "http://[::1]:9000"),
])
def test_registry_url_normalisation(url, want):
    assert normalize_url(url) == want


@pytest.mark.parametrize("url", ["http://registry:abc", "ftp://registry", "http://", "http://:8081"])
def test_invalid_registry_url(url):
    with pytest.raises(RegistryUnavailable, match="invalid"):
        normalize_url(url)


def test_descriptor_errors():
    for desc in ("avro-txt", "avro-txt:msg=1", "avro-txt:ts=0;msg=1,2", "avro-txt:ts=0;msg=0:", "avro-txt:ts=a b",
                 "avro-txt:ts=0;sep=tab", "avro-txt:ts=9x"):
        with pytest.raises(DescriptorError):
            build_parser(desc, schema_registry_url="http://127.0.0.1:1")
