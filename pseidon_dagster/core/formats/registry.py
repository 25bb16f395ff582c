"""Confluent Schema Registry client for `avro-txt`: `GET <url>/schemas/ids/{id}` -> `{"schema": "<Avro JSON>"}`.

- One client per normalised URL, shared by every parser in the process (`client_for`); every schema id seen is
  cached for the life of the process (ids are immutable in a registry). An id the registry does not know (404) is
  remembered for NEGATIVE_TTL_S so a topic full of such messages does not cost one request each.
- Failure split: the registry being unreachable (connection refused, timeout, 5xx after RETRY_DELAYS, any other
  non-404 HTTP error such as 401, or a response that is not a registry's) raises RegistryUnavailable, which must fail
  the run with nothing committed. An unknown id, or a registry schema that is not valid Avro, is a MessageError of the
  messages that use it.
"""
from __future__ import annotations

import dataclasses
import json
import threading
import time
import urllib.parse
from typing import Any

from .descriptor import MessageError

DEFAULT_URL = "http://localhost:8081"
DEFAULT_PORT = 8081
TIMEOUT_S = (2.0, 5.0)  # (connect, read)
RETRY_DELAYS = (0.2, 1.0)  # sleeps between the attempts of one fetch on connection errors and 5xx
NEGATIVE_TTL_S = 60.0


class RegistryUnavailable(RuntimeError):
    """The schema registry cannot be used right now: fail the run (commit nothing) instead of quarantining."""


def normalize_url(url: str | None) -> str:
    """Like the original, fixed: `http://` is prepended when there is no scheme, and `:8081` is appended whenever no
    port is given (the original appended it only when the text had no ':' at all, so `http://host` got none).
    A path prefix is kept; a trailing '/' is dropped."""
    raw = (url or "").strip() or DEFAULT_URL
    text = raw if "://" in raw else "http://" + raw
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port
    except ValueError as e:
        raise RegistryUnavailable(f"schema registry URL {raw!r} is invalid: {e}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RegistryUnavailable(f"schema registry URL {raw!r} is invalid: expected http(s)://host[:port][/path]")
    netloc = parts.netloc if port is not None else f"{parts.netloc}:{DEFAULT_PORT}"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


@dataclasses.dataclass(frozen=True)
class WriterSchema:
    id: int
    schema: Any  # fastavro parsed schema
    fields: tuple[str, ...] | None  # record field names in schema order; None when the schema is not a record
    kind: str  # "record", "string", ...


class RegistryClient:
    def __init__(self, url: str):
        self.url = url
        self._schemas: dict[int, WriterSchema | str] = {}  # str: why the id's schema is unusable
        self._missing: dict[int, float] = {}
        self._lock = threading.Lock()
        self._session = None
        self.requests = 0  # HTTP requests made, retries included

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
        body = self._fetch(schema_id)
        if body is None:
            self._missing[schema_id] = time.monotonic() + NEGATIVE_TTL_S
            raise MessageError(f"unknown schema id: {schema_id} is not in the registry at {self.url}")
        self._missing.pop(schema_id, None)
        entry = _parse_schema(schema_id, body)
        self._schemas[schema_id] = entry
        return entry

    def _fetch(self, schema_id: int) -> dict | None:
        """The registry's JSON answer, or None for 404."""
        import requests

        if self._session is None:
            self._session = requests.Session()
            self._session.headers["Accept"] = "application/vnd.schemaregistry.v1+json, application/json"
        url = f"{self.url}/schemas/ids/{schema_id}"
        problem = ""
        for attempt in range(len(RETRY_DELAYS) + 1):
            if attempt:
                time.sleep(RETRY_DELAYS[attempt - 1])
            self.requests += 1
            try:
                r = self._session.get(url, timeout=TIMEOUT_S)
            except (requests.ConnectionError, requests.Timeout) as e:
                problem = f"{type(e).__name__}: {e}"
                continue
            except requests.RequestException as e:
                raise RegistryUnavailable(f"schema registry {self.url}: {type(e).__name__}: {e}") from None
            if r.status_code == 404:
                return None
            if r.status_code >= 500:
                problem = f"HTTP {r.status_code} {r.text[:200]!r}"
                continue
            if r.status_code != 200:
                raise RegistryUnavailable(
                    f"schema registry {self.url} answered HTTP {r.status_code} for {url}: {r.text[:200]!r}")
            try:
                body = r.json()
            except ValueError:
                body = None
            if not isinstance(body, dict) or not isinstance(body.get("schema"), str):
                raise RegistryUnavailable(
                    f"{url} did not answer like a schema registry (expected a JSON object with a 'schema' string, "
                    f"got {r.text[:120]!r})")
            return body
        raise RegistryUnavailable(
            f"schema registry {self.url} is unavailable ({attempt + 1} attempts to read schema id {schema_id}; "
            f"last: {problem}); nothing was committed, the run can be retried")


def _parse_schema(schema_id: int, body: dict) -> WriterSchema | str:
    import fastavro

    kind = body.get("schemaType") or "AVRO"
    if kind != "AVRO":
        return f"unusable schema: id {schema_id} is a {kind} schema, not Avro"
    try:
        parsed = fastavro.parse_schema(json.loads(body["schema"]))
    except Exception as e:  # noqa: BLE001 - any failure means "this id's schema is unusable"
        refs = " (it uses schema references, which are not supported)" if body.get("references") else ""
        return (f"unusable schema: id {schema_id} is not a valid Avro schema{refs}: "
                f"{type(e).__name__}: {str(e)[:200]}")
    if isinstance(parsed, dict) and parsed.get("type") == "record":
        return WriterSchema(schema_id, parsed, tuple(f["name"] for f in parsed["fields"]), "record")
    kind = parsed.get("type") if isinstance(parsed, dict) else parsed
    return WriterSchema(schema_id, parsed, None, kind if isinstance(kind, str) else "union")


_CLIENTS: dict[str, RegistryClient] = {}
_CLIENTS_LOCK = threading.Lock()


def client_for(url: str | None) -> RegistryClient:
    """The process-wide client of a registry URL (normalised first)."""
    key = normalize_url(url)
    client = _CLIENTS.get(key)
    if client is None:
        with _CLIENTS_LOCK:
            client = _CLIENTS.setdefault(key, RegistryClient(key))
    return client
