"""The `avro-txt` format: Confluent wire format (magic 0, 4-byte schema id, Avro binary) with a schema registry.

There is no Confluent Schema Registry server to install here, so these tests run a small stand-in: an `http.server`
in a thread on 127.0.0.1 (ephemeral port) that serves `GET /schemas/ids/{id}` -> `{"schema": "<json>"}` like the
real registry (404 with error_code 40403 for an unknown id), and can be told to answer 5xx or to go away, to
require HTTP basic auth (401 otherwise, like a registry with basic authentication), or to speak TLS (a self-signed
certificate made here, optionally requiring a client certificate).
"""
from __future__ import annotations

import base64
import datetime as dt
import io
import json
import multiprocessing
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

import fastavro
import pytest

from pseidon_dagster.core.formats import DescriptorError, MessageError, RegistryUnavailable, build_parser
from pseidon_dagster.core.formats import registry as registry_mod
from pseidon_dagster.core.formats.registry import client_for, normalize_url
from tests.unit.core.test_secret_reprs import everything_shown

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
    """`GET /schemas/ids/{id}` from a dict; `status` forces an HTTP status for every request. With AUTH (user,
    password) a request without those basic-auth credentials gets 401. With TLS (certificate file, key file[, CA file
    of client certificates]) it speaks HTTPS (and requires a client certificate when the CA file is given)."""

    def __init__(self, schemas: dict[int, object] | None = None, *, auth: tuple[str, str] | None = None,
                 tls: tuple[str, ...] | None = None, keep_alive: bool = False):
        self.schemas = {i: json.dumps(s) for i, s in (schemas or {}).items()}
        self.raw: dict[int, str] = {}  # id -> raw response body (for malformed answers)
        self.status: int | None = None
        self.hits = 0
        self.authorizations: list[str | None] = []  # the Authorization header of every request
        self.peers: list[tuple[str, int]] = []  # the client address of every request
        want = None if auth is None else "Basic " + base64.b64encode(":".join(auth).encode()).decode()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            if keep_alive:  # HTTP/1.1 like a real registry; headers and body in one segment (no delayed-ACK stall)
                protocol_version = "HTTP/1.1"
                disable_nagle_algorithm = True

            def do_GET(self):  # noqa: N802 - http.server API
                outer.hits += 1
                outer.authorizations.append(self.headers.get("Authorization"))
                outer.peers.append(self.client_address)
                parts = self.path.strip("/").split("/")
                code, body = 404, {"error_code": 40401, "message": "HTTP 404 Not Found"}
                if want is not None and self.headers.get("Authorization") != want:
                    code, body = 401, {"error_code": 401, "message": "Unauthorized"}
                elif outer.status is not None:
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
        scheme = "http"
        if tls is not None:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(tls[0], tls[1])
            if len(tls) > 2:
                ctx.verify_mode = ssl.CERT_REQUIRED
                ctx.load_verify_locations(tls[2])
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
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
    assert json.loads(line) == {"id": 7, "when": "2017-05-10T13:00:00+00:00",
                                "meta": {"time": 1494421200, "host": "h1"}, "raw": "\u0000\u00ffa", "tags": ["a", "b"],
                                "attrs": {"x": 1.5}, "ok": True, "day": "2017-05-10", "text": "multi\nline\n"}


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


# --- credentials, TLS, timeouts, forked workers -------------------------------------------------------------------

PASSWORD = "s3cr%t-p@ss:w/rd-" + "7f3a9c"  # percent, at, colon and slash: all must survive the URL's user-info


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()




def with_user_info(url: str, user: str, password: str) -> str:
    scheme, rest = url.split("://")
    return f"{scheme}://{quote(user, safe='')}:{quote(password, safe='')}@{rest}"


def test_no_credentials_are_sent_when_none_are_given(registry):
    parser("avro-txt:ts=0;msg=1", registry).line(encode(LINE_SCHEMA, {"timestamp": T, "line": "x"}, 1))
    assert registry.authorizations == [None]


def test_basic_auth_from_the_url_user_info_reaches_the_registry():
    r = FakeRegistry({1: LINE_SCHEMA}, auth=("etl", PASSWORD))
    try:
        p = build_parser("avro-txt:ts=0;msg=1", schema_registry_url=with_user_info(r.url, "etl", PASSWORD))
        assert p.line(encode(LINE_SCHEMA, {"timestamp": T, "line": "x"}, 1)) == (T, b"x\n")
        assert r.authorizations == [basic("etl", PASSWORD)]  # percent-decoded, sent as basic auth
        text = everything_shown(p, p.registry)
        assert PASSWORD not in text and quote(PASSWORD, safe="") not in text
    finally:
        r.close()


def test_basic_auth_from_the_registry_config_reaches_the_registry():
    r = FakeRegistry({1: LINE_SCHEMA}, auth=("etl", PASSWORD))
    try:
        p = build_parser("avro-txt:ts=0;msg=1", schema_registry_url=r.url,
                         schema_registry_config={"basic.auth.user.info": f"etl:{PASSWORD}"})
        assert p.line(encode(LINE_SCHEMA, {"timestamp": T, "line": "x"}, 1)) == (T, b"x\n")
        assert r.authorizations == [basic("etl", PASSWORD)]
        assert PASSWORD not in everything_shown(p, p.registry)
        # the same URL without the credentials is another client, which the registry refuses
        with pytest.raises(RegistryUnavailable, match="HTTP 401"):
            parser("avro-txt:ts=0;msg=1", r).line(encode(LINE_SCHEMA, {"timestamp": T, "line": "x"}, 1))
    finally:
        r.close()


def test_wrong_credentials_fail_the_run_without_showing_them():
    wrong = "wrong-" + PASSWORD
    r = FakeRegistry({1: LINE_SCHEMA}, auth=("etl", PASSWORD))
    try:
        for url, conf in ((with_user_info(r.url, "etl", wrong), None),
                          (r.url, {"basic.auth.user.info": f"etl:{wrong}"})):
            p = build_parser("avro-txt:ts=0;msg=1", schema_registry_url=url, schema_registry_config=conf)
            with pytest.raises(RegistryUnavailable, match="HTTP 401") as e:
                p.line(encode(LINE_SCHEMA, {"timestamp": T, "line": "x"}, 1))
            text = everything_shown(e.value, p, p.registry)
            assert wrong not in text and quote(wrong, safe="") not in text and "127.0.0.1" in text
        assert r.hits == 2  # a 401 is not retried
    finally:
        r.close()


def test_reasons_and_errors_never_show_the_url_credentials():
    r = FakeRegistry({1: LINE_SCHEMA}, auth=("etl", PASSWORD))
    url = with_user_info(r.url, "etl", PASSWORD)
    secrets = (PASSWORD, quote(PASSWORD, safe=""))
    try:
        p = build_parser("avro-txt:ts=0;msg=1", schema_registry_url=url)
        v = encode(LINE_SCHEMA, {"timestamp": T, "line": "x"}, 1)
        with pytest.raises(MessageError, match=r"^unknown schema id: 256 is not in the registry at http://127") as e:
            p.line(b"\x00\x00\x00\x01\x00" + v[5:])  # the reason is written into the quarantine files
        errors = [e.value]
        r.status = 503
        with pytest.raises(RegistryUnavailable, match="HTTP 503") as e:
            p.line(v)
        errors.append(e.value)
    finally:
        r.close()
    with pytest.raises(RegistryUnavailable, match="is unavailable") as e:  # gone: connection refused
        p.line(v)
    errors.append(e.value)
    for bad in (f"http://etl:{PASSWORD}@registry:abc", f"etl:{PASSWORD}@registry:abc"):  # not percent-encoded
        with pytest.raises(RegistryUnavailable, match="invalid") as e:
            normalize_url(bad)
        errors.append(e.value)
    text = everything_shown(*errors, p, p.registry)
    assert not [s for s in secrets if s in text] and "7f3a9c" not in text


def test_credentials_in_both_the_url_and_the_config_are_refused():
    with pytest.raises(RegistryUnavailable, match="basic.auth.user.info") as e:
        build_parser("avro-txt:ts=0;msg=1", schema_registry_url=with_user_info("http://127.0.0.1:1", "etl", PASSWORD),
                     schema_registry_config={"basic.auth.user.info": f"etl:{PASSWORD}"})
    assert "7f3a9c" not in everything_shown(e.value)


@pytest.mark.parametrize("key", ["url", "timeout", "max.retries", "retries.wait.ms", "cache.capacity", "nope"])
def test_registry_config_keys_we_own_or_do_not_know_are_refused(key):
    with pytest.raises(RegistryUnavailable, match=repr(key)):
        build_parser("avro-txt:ts=0;msg=1", schema_registry_url="http://127.0.0.1:1",
                     schema_registry_config={key: "1"})


def test_a_registry_that_accepts_but_never_answers_fails_within_the_timeouts(monkeypatch):
    monkeypatch.setattr(registry_mod, "TIMEOUT_S", (0.3, 0.3))
    with socket.socket() as s:  # the kernel completes the connections; nobody ever reads or answers
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        p = build_parser("avro-txt:ts=0;msg=1", schema_registry_url=f"http://127.0.0.1:{s.getsockname()[1]}")
        t0 = time.monotonic()
        with pytest.raises(RegistryUnavailable, match="is unavailable .*3 attempts to read schema id 1.*Timeout"):
            p.line(encode(LINE_SCHEMA, {"timestamp": T, "line": "x"}, 1))
        assert 0.8 < time.monotonic() - t0 < 5  # three read timeouts of 0.3 s and two short back-offs


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 (it is its own CA) and its key, as PEM files."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    d = tmp_path_factory.mktemp("tls")
    (d / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    return str(d / "cert.pem"), str(d / "key.pem")


def test_a_tls_registry_is_read_with_its_ca_and_refused_without_it(tls_files, monkeypatch):
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    cert, key = tls_files
    r = FakeRegistry({1: LINE_SCHEMA}, tls=(cert, key))
    v = encode(LINE_SCHEMA, {"timestamp": T, "line": "x"}, 1)
    try:
        assert r.url.startswith("https://")
        with pytest.raises(RegistryUnavailable, match="(?i)certificate verify failed"):
            build_parser("avro-txt:ts=0;msg=1", schema_registry_url=r.url).line(v)
        p = build_parser("avro-txt:ts=0;msg=1", schema_registry_url=r.url,
                         schema_registry_config={"ssl.ca.location": cert})
        assert p.line(v) == (T, b"x\n")
    finally:
        r.close()


def test_a_registry_requiring_a_client_certificate(tls_files, monkeypatch):
    cert, key = tls_files
    r = FakeRegistry({1: LINE_SCHEMA}, tls=(cert, key, cert))  # the client's certificate must be signed by `cert`
    v = encode(LINE_SCHEMA, {"timestamp": T, "line": "x"}, 1)
    try:
        with pytest.raises(RegistryUnavailable, match="is unavailable"):
            build_parser("avro-txt:ts=0;msg=1", schema_registry_url=r.url,
                         schema_registry_config={"ssl.ca.location": cert}).line(v)
        p = build_parser("avro-txt:ts=0;msg=1", schema_registry_url=r.url, schema_registry_config={
            "ssl.ca.location": cert, "ssl.certificate.location": cert, "ssl.key.location": key})
        assert p.line(v) == (T, b"x\n")
    finally:
        r.close()


def _line_in_child(p, values, conn):
    try:
        conn.send([p.line(v) for v in values])
    except BaseException as e:  # noqa: BLE001 - reported to the test
        conn.send(repr(e))
    finally:
        conn.close()


def test_a_forked_worker_keeps_the_cache_and_opens_its_own_connection():
    """The ingest's workers are forked: a child must not write on the parent's kept-alive registry connection."""
    r = FakeRegistry({1: LINE_SCHEMA, 2: LINE_SCHEMA, 3: LINE_SCHEMA}, keep_alive=True)
    v1, v2, v3 = (encode(LINE_SCHEMA, {"timestamp": T, "line": str(i)}, i) for i in (1, 2, 3))
    try:
        p = parser("avro-txt:ts=0;msg=1", r)
        assert p.line(v1) == (T, b"1\n")
        ctx = multiprocessing.get_context("fork")
        recv, send = ctx.Pipe(duplex=False)
        child = ctx.Process(target=_line_in_child, args=(p, [v1, v2], send))
        child.start()
        send.close()
        assert recv.recv() == [(T, b"1\n"), (T, b"2\n")]
        child.join(10)
        assert r.hits == 2  # the child had id 1 from the parent's cache and fetched id 2 itself...
        assert r.peers[1] != r.peers[0]  # ...on a connection of its own
        assert p.line(v3) == (T, b"3\n")  # the parent still reads on its kept-alive connection
        assert r.peers[2] == r.peers[0]
    finally:
        r.close()
