"""`json`: one JSON object per message, e.g. `json:ts_sec=meta.time;msg=id,user.name`.

- `ts` / `ts_ms` / `ts_sec` name the timestamp field: a top-level name or a dotted path (`meta.time`, `items.0.t`);
  a negative integer (`ts=-1`) uses the clock.
- `msg` selects fields (comma-separated names or dotted paths). Absent: the whole object.
- Line output without `msg`: the message bytes as received (after checking that they are one JSON object), with one
  trailing newline dropped and any CR/LF inside replaced by spaces (in valid JSON they can only be whitespace between
  tokens, so this keeps the document identical while keeping one line per message).
- Line output with `msg`: compact JSON of the selected fields in the given order, keyed by the path text; a selected
  field missing from the message is null.
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from .descriptor import Descriptor, DescriptorError, MessageError, check_keys
from .paths import MISSING, FieldPath
from .timestamps import as_int, clock, to_ms, ts_property

KNOWN_PROPS = ("ts", "ts_ms", "ts_sec", "msg")


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


_decode = json.JSONDecoder(parse_constant=_reject_constant).decode
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_encode_ascii = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True).encode


@dataclasses.dataclass(frozen=True)
class JsonSpec:
    ts_key: str
    ts_path: FieldPath | None  # None = the clock
    mult: int
    fields: tuple[FieldPath, ...] | None  # None = the whole object

    @classmethod
    def from_descriptor(cls, d: Descriptor) -> JsonSpec:
        check_keys(d, KNOWN_PROPS)
        key, raw, mult = ts_property(d)
        i = as_int(raw)
        ts_path = None if i is not None and i < 0 else FieldPath(raw, f"{key}= in {d.text!r}")
        fields = None
        msg = d.get("msg")
        if msg is not None and msg.strip():
            fields = tuple(FieldPath(p, f"msg= in {d.text!r}") for p in msg.split(","))
            seen = set()
            for f in fields:
                if f.text in seen:
                    raise DescriptorError(f"msg= in {d.text!r} selects {f.text!r} twice")
                seen.add(f.text)
        return cls(key, ts_path, mult, fields)


def encode(obj: Any) -> bytes:
    """Compact JSON as UTF-8; falls back to \\u escapes when a string holds a lone surrogate (legal in JSON text)."""
    try:
        return _encode(obj).encode("utf-8")
    except UnicodeEncodeError:
        return _encode_ascii(obj).encode("ascii")


class JsonParser:
    type = "json"

    def __init__(self, d: Descriptor, now_ms: Callable[[], int] | None = None):
        self.descriptor = d
        self.spec = JsonSpec.from_descriptor(d)
        self.now_ms = clock(now_ms)
        self._ts = self._build_ts()
        self.line = self._build_line()

    def _build_ts(self) -> Callable[[dict], int]:
        spec, now = self.spec, self.now_ms
        path, mult, key = spec.ts_path, spec.mult, spec.ts_key
        if path is None:
            return lambda obj: now()

        def ts(obj: dict) -> int:
            v = path.get(obj)
            if v is MISSING:
                raise MessageError(f"missing timestamp: field {path.text!r} ({key}) is not in the message")
            if type(v) is int:
                return v * mult
            return to_ms(v, mult)
        return ts

    @staticmethod
    def _load(value: bytes) -> dict:
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError as e:
            raise MessageError(f"invalid UTF-8: {e.reason} at byte {e.start}") from None
        try:
            obj = _decode(text)
        except RecursionError:
            raise MessageError("invalid JSON: nested too deeply") from None
        except ValueError as e:
            raise MessageError(f"invalid JSON: {str(e)[:200]}") from None
        if type(obj) is not dict:
            kind = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean",
                    type(None): "null"}.get(type(obj), type(obj).__name__)
            raise MessageError(f"not a JSON object: the message is {kind}")
        return obj

    def _build_line(self) -> Callable[[bytes], tuple[int, bytes]]:
        load, fields, ts_of = self._load, self.spec.fields, self._ts
        nl, cr = b"\n", b"\r"

        if fields is None:
            def line(value: bytes) -> tuple[int, bytes]:
                if value[-1:] == nl:
                    value = value[:-2] if value[-2:-1] == cr else value[:-1]
                ts = ts_of(load(value))
                if nl in value or cr in value:
                    value = value.replace(nl, b" ").replace(cr, b" ")
                return ts, value + nl
            return line

        def fields_line(value: bytes) -> tuple[int, bytes]:
            obj = load(value)
            ts = ts_of(obj)
            out = {}
            for f in fields:
                v = f.get(obj)
                out[f.text] = None if v is MISSING else v
            try:
                return ts, encode(out) + nl
            except RecursionError:  # pragma: no cover - anything the decoder accepted can be encoded
                raise MessageError("invalid JSON: nested too deeply") from None
        return fields_line

    def row(self, value: bytes) -> tuple[int, dict]:
        """Selected fields (keyed by the path text, missing = None), or every top-level field."""
        obj = self._load(value)
        ts = self._ts(obj)
        fields = self.spec.fields
        if fields is None:
            return ts, obj
        out = {}
        for f in fields:
            v = f.get(obj)
            out[f.text] = None if v is MISSING else v
        return ts, out
