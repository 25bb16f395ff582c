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
    "string": pa.string(), "varchar": pa.string(), "char": pa.string(),
    "tinyint": pa.int8(), "smallint": pa.int16(), "int": pa.int32(), "integer": pa.int32(), "bigint": pa.int64(),
    "float": pa.float32(), "double": pa.float64(), "boolean": pa.bool_(), "binary": pa.binary(),
    "timestamp": pa.timestamp("ms"), "date": pa.date32(),
}


def _split_top(s: str) -> list[str]:
    """Split 'a:int,b:map<string,int>' on top-level commas."""
    out, depth, cur = [], 0, ""
    for ch in s:
        if ch in "<(":
            depth += 1
        elif ch in ">)":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur)
    return [x.strip() for x in out]


def hive_type(t: str) -> pa.DataType:
    s = t.strip().lower()
    base = re.match(r"^[a-z]+", s)
    if not base:
        raise SchemaError(f"unknown Hive type {t!r}")
    name = base.group(0)
    if name in ("varchar", "char"):
        return pa.string()
    if name == "decimal":
        m = re.match(r"decimal\s*\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)", s)
        return pa.decimal128(int(m.group(1)), int(m.group(2) or 0)) if m else pa.decimal128(10, 0)
    if name == "array":
        return pa.list_(hive_type(s[s.index("<") + 1:s.rindex(">")]))
    if name == "map":
        k, v = _split_top(s[s.index("<") + 1:s.rindex(">")])
        return pa.map_(hive_type(k), hive_type(v))
    if name == "struct":
        fields = []
        for part in _split_top(s[s.index("<") + 1:s.rindex(">")]):
            fname, _, ftype = part.partition(":")
            fields.append(pa.field(fname.strip(), hive_type(ftype)))
        return pa.struct(fields)
    if name in _SIMPLE:
        return _SIMPLE[name]
    raise SchemaError(f"unknown Hive type {t!r}")


def schema_from_columns(columns: list[tuple[str, str]]) -> pa.Schema:
    return pa.schema([pa.field(n.strip().lower(), hive_type(t)) for n, t in columns])


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
