"""Typed rows for Parquet: Hive column types -> Arrow types, and per-column converters that name the column when a
value does not fit. The schema comes from the Hive table (catalog.hive_schema_for) or from
<schema-dir>/<log>.json:  {"columns": [{"name": "ts", "type": "bigint"}, {"name": "msg", "type": "string"}]}
"""
from __future__ import annotations

import datetime as dt
import decimal
import json
import os
import re
from typing import Any, Callable

import pyarrow as pa

from .formats import MessageError


class SchemaError(ValueError):
    pass


_SIMPLE = {
    "string": pa.string(), "tinyint": pa.int8(), "smallint": pa.int16(), "int": pa.int32(), "integer": pa.int32(),
    "bigint": pa.int64(), "float": pa.float32(), "double": pa.float64(), "boolean": pa.bool_(), "binary": pa.binary(),
    "timestamp": pa.timestamp("ms"), "date": pa.date32(),
}
_TOKEN = re.compile(r"\s*(?:([A-Za-z_][A-Za-z0-9_]*)|(\d+)|([<>(),:]))")
_NAME = re.compile(r"[a-z_][a-z0-9_]*\Z")


class _TypeParser:
    """Hive's column type grammar, whole (the text goes into CREATE TABLE, so a valid first word is not enough):

    type  := simple | double precision | timestamp with local time zone | varchar(n) | char(n)
           | decimal[(p[,s])] | array<type> | map<simple,type> | struct<name:type[,name:type]...>
    """

    def __init__(self, text: str):
        self.text = text
        self.tokens: list[str] = []
        s, pos = text.strip(), 0
        while pos < len(s):
            m = _TOKEN.match(s, pos)
            if not m:
                raise self.error(f"unexpected {s[pos:pos + 10]!r}")
            self.tokens.append(m.group(0).strip().lower())
            pos = m.end()
        self.i = 0

    def error(self, why: str) -> SchemaError:
        return SchemaError(f"unknown Hive type {self.text!r}: {why}")

    def take(self, want: str | None = None) -> str:
        tok = self.tokens[self.i] if self.i < len(self.tokens) else None
        if tok is None or (want is not None and tok != want):
            raise self.error(f"expected {want or 'a type'!r}, found {tok or 'the end'!r}")
        self.i += 1
        return tok

    def next_is(self, tok: str) -> bool:
        return self.i < len(self.tokens) and self.tokens[self.i] == tok

    def number(self, lo: int, hi: int, what: str) -> int:
        tok = self.take()
        if not tok.isdigit() or not lo <= int(tok) <= hi:
            raise self.error(f"{what} must be {lo}..{hi}, got {tok!r}")
        return int(tok)

    def whole(self) -> pa.DataType:
        t = self.type()
        if self.i != len(self.tokens):
            raise self.error(f"unexpected {self.tokens[self.i]!r} after the type")
        return t

    def type(self) -> pa.DataType:
        name = self.take()
        if name == "double" and self.next_is("precision"):
            self.take()
        elif name == "timestamp" and self.next_is("with"):
            for word in ("with", "local", "time", "zone"):
                self.take(word)
        if name in _SIMPLE:
            return _SIMPLE[name]
        if name in ("varchar", "char"):
            self.take("(")
            self.number(1, 65535 if name == "varchar" else 255, f"{name} length")
            self.take(")")
            return pa.string()
        if name == "decimal":
            precision, scale = 10, 0
            if self.next_is("("):
                self.take("(")
                precision = self.number(1, 38, "decimal precision")
                if self.next_is(","):
                    self.take(",")
                    scale = self.number(0, precision, "decimal scale")
                self.take(")")
            return pa.decimal128(precision, scale)
        if name == "array":
            self.take("<")
            item = self.type()
            self.take(">")
            return pa.list_(item)
        if name == "map":
            self.take("<")
            key = self.type()
            if pa.types.is_nested(key):
                raise self.error("a map key must be a primitive type")
            self.take(",")
            value = self.type()
            self.take(">")
            return pa.map_(key, value)
        if name == "struct":
            self.take("<")
            fields = []
            while True:
                field = self.take()
                if not _NAME.match(field):
                    raise self.error(f"{field!r} is not a struct field name")
                self.take(":")
                fields.append(pa.field(field, self.type()))
                if not self.next_is(","):
                    break
                self.take(",")
            self.take(">")
            return pa.struct(fields)
        raise self.error(f"{name!r} is not a Hive type this writer supports")


def hive_type(t: str) -> pa.DataType:
    """A Hive column type -> its Arrow type; SchemaError unless T is exactly one type of Hive's grammar."""
    if not isinstance(t, str):
        raise SchemaError(f"unknown Hive type {t!r}")
    return _TypeParser(t).whole()


def schema_from_columns(columns: list[tuple[str, str]]) -> pa.Schema:
    fields, seen = [], set()
    for n, t in columns:
        name = n.strip().lower()
        if name in seen:
            raise SchemaError(f"column {name!r} appears twice")
        seen.add(name)
        try:
            fields.append(pa.field(name, hive_type(t)))
        except SchemaError as e:
            raise SchemaError(f"column {name!r}: {e}") from None
    return pa.schema(fields)


def load_schema_file(schema_dir: str, log: str) -> pa.Schema | None:
    path = os.path.join(schema_dir, f"{log}.json")
    if not os.path.exists(path):
        return None
    try:
        doc = json.load(open(path))
        cols = doc["columns"] if isinstance(doc, dict) else doc
        return schema_from_columns([(c["name"], c["type"]) for c in cols])
    except (ValueError, KeyError, TypeError) as e:
        raise SchemaError(f"{path}: {e}") from None


# -- converters ----------------------------------------------------------------------------------------------------

_INT_BOUNDS = {8: 2 ** 7, 16: 2 ** 15, 32: 2 ** 31, 64: 2 ** 63}
_TRUE, _FALSE = {"true", "1", "t", "yes"}, {"false", "0", "f", "no"}


def _to_int(bits: int) -> Callable[[Any], int]:
    lim = _INT_BOUNDS[bits]

    def conv(v):
        if isinstance(v, bool):
            raise ValueError("boolean")
        if isinstance(v, float):
            if not v.is_integer():
                raise ValueError("not a whole number")
            v = int(v)
        elif not isinstance(v, int):
            v = int(str(v).strip())
        if not -lim <= v < lim:
            raise ValueError(f"out of range for int{bits}")
        return v

    return conv


def _to_float(v):
    if isinstance(v, bool):
        raise ValueError("boolean")
    return float(v)


def _to_bool(v):
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise ValueError("not a boolean")


def _to_ts(v):
    if isinstance(v, bool):
        raise ValueError("boolean")
    if isinstance(v, (int, float)):
        return int(v)
    if isinstance(v, dt.datetime):
        return int((v if v.tzinfo else v.replace(tzinfo=dt.timezone.utc)).timestamp() * 1000)
    s = str(v).strip()
    if s.lstrip("-").isdigit():
        return int(s)
    d = dt.datetime.fromisoformat(s[:-1] + "+00:00" if s.endswith("Z") else s)
    return int((d if d.tzinfo else d.replace(tzinfo=dt.timezone.utc)).timestamp() * 1000)


def _to_date(v):
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    if isinstance(v, int) and not isinstance(v, bool):
        return dt.date(1970, 1, 1) + dt.timedelta(days=v)
    return dt.date.fromisoformat(str(v).strip()[:10])


def _to_str(v):
    if isinstance(v, str):
        return v
    if isinstance(v, (dict, list)):
        return json.dumps(v, separators=(",", ":"), ensure_ascii=False)
    if isinstance(v, bytes):
        return v.decode("utf-8")
    return str(v)


def _to_bytes(v):
    return v if isinstance(v, bytes) else str(v).encode("utf-8")


def _to_decimal(t: pa.Decimal128Type):
    q = decimal.Decimal(1).scaleb(-t.scale)

    def conv(v):
        if isinstance(v, bool):
            raise ValueError("boolean")
        d = decimal.Decimal(str(v).strip()).quantize(q)
        if len(d.as_tuple().digits) > t.precision:
            raise ValueError(f"more than {t.precision} digits")
        return d

    return conv


def converter(t: pa.DataType) -> Callable[[Any], Any]:
    if pa.types.is_string(t):
        return _to_str
    if pa.types.is_integer(t):
        return _to_int(t.bit_width)
    if pa.types.is_floating(t):
        return _to_float
    if pa.types.is_boolean(t):
        return _to_bool
    if pa.types.is_timestamp(t):
        return _to_ts
    if pa.types.is_date(t):
        return _to_date
    if pa.types.is_binary(t):
        return _to_bytes
    if pa.types.is_decimal(t):
        return _to_decimal(t)
    return lambda v: v  # nested types: pyarrow validates when the batch is built


class RowConverter:
    """Turns a parser row (list by position, or dict by name) into a tuple of column values."""

    def __init__(self, schema: pa.Schema):
        self.schema = schema
        self.names = [f.name for f in schema]
        self.convs = [converter(f.type) for f in schema]
        self.text_cols = [pa.types.is_string(f.type) for f in schema]

    def __call__(self, row) -> tuple:
        if isinstance(row, dict):
            lowered = {}
            for k, v in row.items():
                key = str(k).lower()
                lowered[key] = v
                lowered.setdefault(key.replace(".", "_"), v)  # json msg=user.name fills column user_name
            values = [lowered.get(n) for n in self.names]
        else:
            if len(row) > len(self.names):
                raise MessageError(f"{len(row)} fields but the schema has {len(self.names)} columns")
            values = list(row) + [None] * (len(self.names) - len(row))
        out = []
        for name, conv, is_text, v in zip(self.names, self.convs, self.text_cols, values):
            if v is None or (v == "" and not is_text):
                out.append(None)
                continue
            try:
                out.append(conv(v))
            except (ValueError, TypeError, ArithmeticError, UnicodeDecodeError) as e:
                shown = repr(v)[:60]
                raise MessageError(f"column {name}: cannot convert {shown} to {self.schema.field(name).type}"
                                   f" ({e})") from None
        return tuple(out)
