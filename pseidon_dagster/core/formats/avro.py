"""`avro-txt`: Confluent wire-format Avro (magic byte 0, 4-byte big-endian schema id, Avro binary), e.g.
`avro-txt:ts=0;msg=1` (the original's example) or `avro-txt:ts_sec=meta.time`.

- Writer schemas come from the schema registry (registry.py: Confluent's client, with basic auth and TLS from
  :avro-schema-registry-url and :avro-schema-registry-config), cached per id.
- `ts` / `ts_ms` / `ts_sec`: a record field by index (schema field order) or by name / dotted path into nested
  records; a negative index uses the clock. Values convert like every format's (timestamps.py); Avro logical types
  (`timestamp-millis`, `timestamp-micros`, `date`) arrive as dates and convert to their instant.
- `msg`: one field by index or name; the line is its string form (below). Absent or negative: the whole record as
  compact JSON (the original could not express this).

String form of a selected field: strings as UTF-8, bytes/fixed as they are, null as an empty line, booleans as
true/false, numbers in decimal, dates and times ISO-8601, records/maps/arrays as compact JSON. One trailing newline
of the value is dropped, then `\\n` is appended.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import io
import json
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from .descriptor import Descriptor, DescriptorError, MessageError, check_keys
from .paths import MISSING, FieldPath
from .registry import WriterSchema, client_for
from .timestamps import as_int, clock, to_ms, ts_property

KNOWN_PROPS = ("ts", "ts_ms", "ts_sec", "msg")
_AVRO_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _json_default(v: Any) -> Any:
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).decode("latin-1")  # Avro's JSON encoding of bytes/fixed: one code point per byte
    if isinstance(v, (dt.datetime, dt.date, dt.time)):
        return v.isoformat()
    if isinstance(v, (decimal.Decimal, uuid.UUID)):
        return str(v)
    raise TypeError(f"{type(v).__name__} is not JSON serializable")


_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=_json_default).encode


def to_json(value: Any) -> bytes:
    try:
        return _encode(value).encode("utf-8")
    except (TypeError, ValueError, RecursionError, UnicodeEncodeError) as e:  # pragma: no cover - defensive
        raise MessageError(f"bad Avro payload: the record cannot be rendered as JSON: {type(e).__name__}: "
                           f"{str(e)[:160]}") from None


def text_of(v: Any) -> bytes:
    """The string form of one field value (see the module docstring)."""
    if type(v) is str:
        b = v.encode("utf-8")
    elif isinstance(v, (bytes, bytearray)):
        b = bytes(v)
    elif v is None:
        return b"\n"
    elif isinstance(v, bool):
        return b"true\n" if v else b"false\n"
    elif isinstance(v, (int, float)):
        return json.dumps(v).encode() + b"\n"
    elif isinstance(v, (dt.datetime, dt.date, dt.time)):
        return v.isoformat().encode() + b"\n"
    elif isinstance(v, (decimal.Decimal, uuid.UUID)):
        return str(v).encode() + b"\n"
    else:
        b = to_json(v)
    if b[-1:] == b"\n":
        b = b[:-2] if b[-2:-1] == b"\r" else b[:-1]
    return b + b"\n"


@dataclasses.dataclass(frozen=True)
class FieldRef:
    """A record field by schema index, or by name/dotted path."""

    prop: str
    index: int | None = None
    path: FieldPath | None = None

    @classmethod
    def parse(cls, key: str, raw: str, d: Descriptor) -> FieldRef | None:
        """None for a negative index (the clock for ts, the whole record for msg)."""
        i = as_int(raw)
        if i is not None:
            return None if i < 0 else cls(key, index=i)
        path = FieldPath(raw, f"{key}= in {d.text!r}")
        for part in path.parts:
            if not _AVRO_NAME.fullmatch(part):
                raise DescriptorError(
                    f"{key}={raw!r} in {d.text!r}: {part!r} is not an Avro field name; give a field index, a name, or "
                    f"a dotted path like meta.time")
        return cls(key, path=path)

    @property
    def text(self) -> str:
        return str(self.index) if self.path is None else self.path.text

    def get(self, ws: WriterSchema, rec: Any) -> tuple[str, Any]:
        """(field name, value); raises MessageError naming the field when the record has no such field."""
        what = "missing field" if self.prop == "msg" else "missing timestamp"
        if self.path is None:
            assert self.index is not None  # a FieldRef holds an index or a path (parse)
            if ws.fields is None:
                raise MessageError(f"{what}: {self.prop}={self.index} needs a record, but schema id {ws.id} "
                                   f"is a {ws.kind}")
            if self.index >= len(ws.fields):
                raise MessageError(f"{what}: {self.prop}={self.index} but schema id {ws.id} has "
                                   f"{len(ws.fields)} field{'' if len(ws.fields) == 1 else 's'}")
            name = ws.fields[self.index]
            return name, rec[name]
        v = self.path.get(rec)
        if v is MISSING:
            raise MessageError(f"{what}: schema id {ws.id} has no field {self.path.text!r} ({self.prop})")
        return self.path.text, v


@dataclasses.dataclass(frozen=True)
class AvroSpec:
    ts_key: str
    ts: FieldRef | None  # None = the clock
    mult: int
    msg: FieldRef | None  # None = the whole record

    @classmethod
    def from_descriptor(cls, d: Descriptor) -> AvroSpec:
        check_keys(d, KNOWN_PROPS)
        key, raw, mult = ts_property(d)
        ts = FieldRef.parse(key, raw, d)
        msg = None
        raw_msg = d.get("msg")
        if raw_msg is not None and raw_msg.strip():
            if "," in raw_msg or ":" in raw_msg:
                raise DescriptorError(
                    f"msg={raw_msg!r} in {d.text!r}: avro-txt selects one field (an index or a name), or omit msg for "
                    f"the whole record as JSON")
            msg = FieldRef.parse("msg", raw_msg, d)
        return cls(key, ts, mult, msg)


class AvroTxtParser:
    type = "avro-txt"

    def __init__(self, d: Descriptor, *, schema_registry_url: str | None = None,
                 schema_registry_config: Mapping[str, Any] | None = None, now_ms: Callable[[], int] | None = None):
        import fastavro

        self.descriptor = d
        self.spec = AvroSpec.from_descriptor(d)
        self.now_ms = clock(now_ms)
        self.registry = client_for(schema_registry_url, schema_registry_config)
        self._read = fastavro.schemaless_reader

    def decode(self, value: bytes) -> tuple[WriterSchema, Any]:
        """(writer schema, decoded datum) of one Confluent-framed message."""
        if len(value) < 5:
            raise MessageError(f"not Confluent Avro: the message has {len(value)} bytes, fewer than the 5-byte header")
        if value[0] != 0:
            raise MessageError(f"not Confluent Avro: the magic byte is 0x{value[0]:02x}, not 0x00")
        ws = self.registry.get(int.from_bytes(value[1:5], "big"))
        bio = io.BytesIO(value)
        bio.seek(5)
        try:
            rec = self._read(bio, ws.schema)
        except Exception as e:  # noqa: BLE001 - fastavro raises many types for bad input; all mean "bad payload"
            raise MessageError(f"bad Avro payload: it does not decode with schema id {ws.id}: "
                               f"{type(e).__name__}: {str(e)[:160]}") from None
        return ws, rec

    def _ts(self, ws: WriterSchema, rec: Any) -> int:
        ref = self.spec.ts
        if ref is None:
            return self.now_ms()
        _, v = ref.get(ws, rec)
        if type(v) is int:
            return v * self.spec.mult
        return to_ms(v, self.spec.mult)

    def line(self, value: bytes) -> tuple[int, bytes]:
        ws, rec = self.decode(value)
        ts = self._ts(ws, rec)
        ref = self.spec.msg
        if ref is None:
            return ts, to_json(rec) + b"\n"
        return ts, text_of(ref.get(ws, rec)[1])

    def row(self, value: bytes) -> tuple[int, dict]:
        """The selected field as {name: value}, or the whole record (a dict of top-level fields)."""
        ws, rec = self.decode(value)
        ts = self._ts(ws, rec)
        ref = self.spec.msg
        if ref is not None:
            name, v = ref.get(ws, rec)
            return ts, {name: v}
        if type(rec) is not dict:
            raise MessageError(f"not a record: schema id {ws.id} is a {ws.kind}; rows need a record "
                               f"(select a field with msg= or use a record schema)")
        return ts, rec
