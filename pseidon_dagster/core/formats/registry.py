"""The schema registry of `avro-txt`: the writer schema of a schema id, read with confluent-kafka's
SchemaRegistryClient (`GET <url>/schemas/ids/{id}`) behind a thin wrapper that keeps the product's semantics.

- Why Confluent's client (issue 13): it brings HTTP basic auth, TLS with a private CA or a client certificate, a proxy,
  and its own per-id cache, maintained upstream; the hand-written `requests` fetcher it replaces had none of those.
  Measured with bench/bench_registry.py (100,000 avro-txt messages through build_parser(...).line, the tests'
  stand-in registry on 127.0.0.1; the table is in docs/formats.md "The schema registry"): per message the same
  (2.3-2.8 us either way: the schema is a dict hit here, decoding is fastavro's); per fetch the same or faster
  (0.62-0.71 ms vs 0.63-0.95 ms kept alive; 1,000 ids 1.5-1.6 s vs 1.7-1.8 s); once per process ~0.15 s more for
  the first fetch (importing Authlib/httpx2, and a TLS context the client builds even for http://). Not a regression
  that matters, so the switch was made.
- One client per (normalised URL, client settings), shared by every parser in the process (`client_for`); every
  schema id seen is cached for the life of the process (ids are immutable in a registry), parsed, here; an id the
  registry does not know (404) is remembered for NEGATIVE_TTL_S so a topic full of such messages does not cost one
  request each.
- Credentials: the URL's user-info (percent-decoded) or `basic.auth.user.info` of :avro-schema-registry-config, sent
  as basic auth. The URL the client is given, and every message, hold no user-info; no repr shows either.
- Failure split: the registry being unreachable (connection refused, timeout, TLS failure, 408/429/5xx after
  RETRY_DELAYS, any other non-404 HTTP error such as 401, or a response that is not a registry's) raises
  RegistryUnavailable, which must fail the run with nothing committed. An unknown id, or a registry schema that is
  not valid Avro, is a MessageError of the messages that use it.
- Bounded: TIMEOUT_S per request, len(RETRY_DELAYS) + 1 attempts with jittered back-off (at most 0.2 s, then 0.4 s).
- Forked ingest workers drop the HTTP client they inherit (its kept-alive connections are the parent's) and keep
  the cache.
"""
from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any

from .descriptor import MessageError

DEFAULT_URL = "http://localhost:8081"
DEFAULT_PORT = 8081
TIMEOUT_S = (2.0, 5.0)  # (connect, read)
# the retries of one fetch on connection errors, timeouts, 408, 429 and 5xx: len() retries; the sleeps are jittered
# and doubling, at most RETRY_DELAYS[0] first and never above max(RETRY_DELAYS)
RETRY_DELAYS = (0.2, 1.0)
RETRIED_STATUS = (408, 429, 500, 502, 503, 504)  # what SchemaRegistryClient retries
NEGATIVE_TTL_S = 60.0

# SchemaRegistryClient settings that :avro-schema-registry-config may hold (bearer/OAuth auth is not offered)
CLIENT_KEYS = ("basic.auth.user.info", "ssl.ca.location", "ssl.certificate.location", "ssl.key.location",
               "ssl.key.password", "proxy")
_BOUNDED = "pseidon bounds the registry's timeouts and retries (an unreachable registry fails the run in seconds)"
OWNED_KEYS = {
    "url": "the URL is :avro-schema-registry-url",
    "timeout": _BOUNDED, "max.retries": _BOUNDED, "retries.wait.ms": _BOUNDED, "retries.max.wait.ms": _BOUNDED,
    "cache.capacity": "every schema id seen is cached for the life of the process",
    "cache.latest.ttl.sec": "only schemas by id are read",
}


class RegistryUnavailable(RuntimeError):
    """The schema registry cannot be used right now: fail the run (commit nothing) instead of quarantining."""


def check_config(config: Mapping[str, Any] | None, url: str | None = None) -> dict[str, str]:
    """The SchemaRegistryClient settings of CONFIG, checked; raises ValueError naming the key (never its value).
    URL: the registry URL, whose user-info must not be given twice."""
    out: dict[str, str] = {}
    for key, value in (config or {}).items():
        key = str(key)
        if key in OWNED_KEYS:
            raise ValueError(f"{key!r} cannot be set: {OWNED_KEYS[key]}")
        if key not in CLIENT_KEYS:
            raise ValueError(f"{key!r} is not a schema registry client setting (one of {', '.join(CLIENT_KEYS)})")
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{key!r} must be a non-empty string")
        out[key] = value
    if ":" not in out.get("basic.auth.user.info", ":"):
        raise ValueError("'basic.auth.user.info' must be user:password")
    for key in ("ssl.key.location", "ssl.key.password"):
        if key in out and "ssl.certificate.location" not in out:
            raise ValueError(f"{key!r} needs 'ssl.certificate.location'")
    if url is not None and "basic.auth.user.info" in out and _user_info(url)[1] is not None:
        raise ValueError("'basic.auth.user.info' cannot be set when the registry URL has user-info (user:password@) "
                         "as well")
    return out


def _user_info(url: str) -> tuple[str, str | None]:
    """(URL without its user-info, "user:password" percent-decoded or None)."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    info, _, host = parts.netloc.rpartition("@")
    user, _, password = info.partition(":")
    bare = urllib.parse.urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return bare, f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}"


def normalize_url(url: str | None) -> str:
    """Like the original, fixed: `http://` is prepended when there is no scheme, and `:8081` is appended whenever no
    port is given (the original appended it only when the text had no ':' at all, so `http://host` got none).
    A path prefix is kept; a trailing '/' is dropped."""
    raw = (url or "").strip() or DEFAULT_URL
    text = raw if "://" in raw else "http://" + raw
    scheme, sep, rest = text.partition("://")
    shown = scheme + sep + ("***@" + rest.rpartition("@")[2] if "@" in rest else rest)  # no password in an error
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port
    except ValueError as e:
        raise RegistryUnavailable(f"schema registry URL {shown!r} is invalid: {e}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RegistryUnavailable(f"schema registry URL {shown!r} is invalid: expected http(s)://host[:port][/path]")
    netloc = parts.netloc if port is not None else f"{parts.netloc}:{DEFAULT_PORT}"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


@dataclasses.dataclass(frozen=True)
class WriterSchema:
    id: int
    schema: Any  # fastavro parsed schema
    fields: tuple[str, ...] | None  # record field names in schema order; None when the schema is not a record
    kind: str  # "record", "string", ...


class RegistryClient:
    """The writer schemas of one registry (URL and client settings); see the module docstring."""

    def __init__(self, url: str, config: Mapping[str, str] | None = None):
        """URL: normalised (normalize_url), possibly with user-info; CONFIG: checked settings (check_config)."""
        self.url, auth = _user_info(url)  # what messages show: never the credentials
        self._conf = dict(config or {})
        if auth is not None:
            self._conf["basic.auth.user.info"] = auth
        self._schemas: dict[int, WriterSchema | str] = {}  # str: why the id's schema is unusable
        self._missing: dict[int, float] = {}
        self._lock = threading.Lock()
        self._client = None  # confluent_kafka SchemaRegistryClient, made at the first fetch

    def __repr__(self) -> str:
        return f"RegistryClient({self.url!r})"

    def get(self, schema_id: int) -> WriterSchema:
        """The writer schema of an id; raises MessageError (unknown/invalid id) or RegistryUnavailable."""
        hit = self._schemas.get(schema_id)
        if hit is None:
            with self._lock:
                hit = self._schemas.get(schema_id)
                if hit is None:
                    hit = self._load(schema_id)
        if type(hit) is WriterSchema:
            return hit
        raise MessageError(hit)

    def _load(self, schema_id: int) -> WriterSchema | str:
        expires = self._missing.get(schema_id)
        if expires is not None and time.monotonic() < expires:
            raise MessageError(f"unknown schema id: {schema_id} is not in the registry at {self.url}")
        schema = self._fetch(schema_id)
        if schema is None:
            self._missing[schema_id] = time.monotonic() + NEGATIVE_TTL_S
            raise MessageError(f"unknown schema id: {schema_id} is not in the registry at {self.url}")
        self._missing.pop(schema_id, None)
        entry = _parse_schema(schema_id, schema)
        self._schemas[schema_id] = entry
        return entry

    def _registry(self):
        if self._client is None:
            try:
                from confluent_kafka.schema_registry import SchemaRegistryClient
            except ImportError as e:
                raise RegistryUnavailable(f"avro-txt needs confluent-kafka[schemaregistry]: {e}") from None
            connect, read = TIMEOUT_S
            conf = {**self._conf, "url": self.url, "timeout": (connect, read, read, read),
                    "max.retries": len(RETRY_DELAYS), "retries.wait.ms": RETRY_DELAYS[0] * 1000 if RETRY_DELAYS else 0,
                    "retries.max.wait.ms": max(RETRY_DELAYS, default=0) * 1000}
            try:
                self._client = SchemaRegistryClient(conf)
            except Exception as e:  # noqa: BLE001 - unreadable certificate or key, a wrong key password, ...
                raise RegistryUnavailable(f"schema registry {self.url}: the client settings cannot be used: "
                                          f"{type(e).__name__}: {str(e)[:200]}") from None
        return self._client

    def _fetch(self, schema_id: int):
        """The registry's Schema of an id, or None for 404."""
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        attempts = len(RETRY_DELAYS) + 1
        try:
            schema = self._registry().get_schema(schema_id)
        except SchemaRegistryError as e:
            status = e.http_status_code
            if status == 404:
                return None
            last = f"HTTP {status} {str(e.error_message)[:200]!r}"
            if status in RETRIED_STATUS or status >= 500:
                raise RegistryUnavailable(self._unavailable(schema_id, attempts if status in RETRIED_STATUS else 1,
                                                            last)) from None
            raise RegistryUnavailable(f"schema registry {self.url} answered {last} for schema id {schema_id}"
                                      ) from None
        except (ValueError, TypeError, KeyError, AttributeError) as e:  # not JSON, or not the registry's JSON
            raise RegistryUnavailable(self._not_a_registry(schema_id, f"{type(e).__name__}: {str(e)[:120]}")
                                      ) from None
        except RegistryUnavailable:
            raise
        except Exception as e:  # noqa: BLE001 - httpx's errors after the retries: refused, timeout, TLS, ...
            raise RegistryUnavailable(self._unavailable(schema_id, attempts, f"{type(e).__name__}: {str(e)[:200]}")
                                      ) from None
        if not isinstance(getattr(schema, "schema_str", None), str):
            raise RegistryUnavailable(self._not_a_registry(schema_id, "no 'schema' string"))
        return schema

    def _unavailable(self, schema_id: int, attempts: int, last: str) -> str:
        return (f"schema registry {self.url} is unavailable ({attempts} attempt{'s' if attempts > 1 else ''} to read "
                f"schema id {schema_id}; last: {last}); nothing was committed, the run can be retried")

    def _not_a_registry(self, schema_id: int, why: str) -> str:
        return (f"{self.url}/schemas/ids/{schema_id} did not answer like a schema registry (expected a JSON object "
                f"with a 'schema' string): {why}")

    def _after_fork_in_child(self) -> None:
        """A forked process must not use the parent's connections (nor close them: TLS would tell the server)."""
        self._lock = threading.Lock()
        self._client = None


def _parse_schema(schema_id: int, schema) -> WriterSchema | str:
    import fastavro

    kind = schema.schema_type or "AVRO"
    if kind != "AVRO":
        return f"unusable schema: id {schema_id} is a {kind} schema, not Avro"
    try:
        parsed = fastavro.parse_schema(json.loads(schema.schema_str))
    except Exception as e:  # noqa: BLE001 - any failure means "this id's schema is unusable"
        refs = " (it uses schema references, which are not supported)" if schema.references else ""
        return (f"unusable schema: id {schema_id} is not a valid Avro schema{refs}: "
                f"{type(e).__name__}: {str(e)[:200]}")
    if isinstance(parsed, dict) and parsed.get("type") == "record":
        return WriterSchema(schema_id, parsed, tuple(f["name"] for f in parsed["fields"]), "record")
    kind = parsed.get("type") if isinstance(parsed, dict) else parsed
    return WriterSchema(schema_id, parsed, None, kind if isinstance(kind, str) else "union")


_CLIENTS: dict[tuple[str, tuple[tuple[str, str], ...]], RegistryClient] = {}
_CLIENTS_LOCK = threading.Lock()


def client_for(url: str | None, config: Mapping[str, Any] | None = None) -> RegistryClient:
    """The process-wide client of a registry URL (normalised first) and client settings (checked first)."""
    key_url = normalize_url(url)
    try:
        conf = check_config(config, key_url)
    except ValueError as e:
        raise RegistryUnavailable(f"the schema registry client settings are invalid: {e}") from None
    key = (key_url, tuple(sorted(conf.items())))
    client = _CLIENTS.get(key)
    if client is None:
        with _CLIENTS_LOCK:
            client = _CLIENTS.setdefault(key, RegistryClient(key_url, conf))
    return client


def _after_fork_in_child() -> None:
    global _CLIENTS_LOCK
    _CLIENTS_LOCK = threading.Lock()
    for client in list(_CLIENTS.values()):
        client._after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)
