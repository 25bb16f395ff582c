"""Hive column types <-> Arrow types.

Hive -> Arrow: hive_type parses the whole type text with Hive's grammar (the text goes into CREATE TABLE, so a valid
first word is not enough); schema_from_columns builds a schema from [(name, type)], load_schema_file from
<schema-dir>/<log>.json:  {"columns": [{"name": "ts", "type": "bigint"}, {"name": "msg", "type": "string"}]}
Arrow -> Hive: arrow_columns / arrow_to_hive, for the types hive_type maps back. column_type checks a type for DDL.
"""
from __future__ import annotations

import json
import os
import re

import pyarrow as pa

from .errors import CatalogError

# -- Hive -> Arrow ----------------------------------------------------------------------------------------------


class SchemaError(ValueError):
    """A Hive type or schema with no Arrow equivalent (schemas.py raises it too: an Arrow type with no converter)."""


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


# -- Hive types in DDL -----------------------------------------------------------------------------------------

_HIVE_TYPE = re.compile(r"[A-Za-z0-9_<>,:() ]+\Z")


def column_type(t: str) -> str:
    """A column type for DDL: exactly one Hive type (hive_type parses it whole), stripped; else CatalogError."""
    if not isinstance(t, str) or not _HIVE_TYPE.match(t.strip()):
        raise CatalogError(f"column type {t!r} is not a Hive type")
    try:
        hive_type(t)
    except (SchemaError, ValueError) as e:
        raise CatalogError(f"column type {t!r}: {e}") from None
    return t.strip()


# -- Arrow -> Hive ----------------------------------------------------------------------------------------------


def arrow_columns(schema: pa.Schema) -> list[tuple[str, str]]:
    """pyarrow.Schema -> [(name, hive_type)] for the types hive_schema_for maps back."""
    return [(f.name, arrow_to_hive(f.type)) for f in schema]


def arrow_to_hive(t: pa.DataType) -> str:
    simple = [(pa.types.is_string, "string"), (pa.types.is_large_string, "string"), (pa.types.is_boolean, "boolean"),
              (pa.types.is_int8, "tinyint"), (pa.types.is_int16, "smallint"), (pa.types.is_int32, "int"),
              (pa.types.is_int64, "bigint"), (pa.types.is_float32, "float"), (pa.types.is_float64, "double"),
              (pa.types.is_timestamp, "timestamp"), (pa.types.is_date32, "date"), (pa.types.is_binary, "binary")]
    for test, name in simple:
        if test(t):
            return name
    if pa.types.is_decimal(t):
        return f"decimal({t.precision},{t.scale})"
    if pa.types.is_list(t):
        return f"array<{arrow_to_hive(t.value_type)}>"
    if pa.types.is_map(t):
        return f"map<{arrow_to_hive(t.key_type)},{arrow_to_hive(t.item_type)}>"
    if pa.types.is_struct(t):
        return "struct<" + ",".join(f"{f.name}:{arrow_to_hive(f.type)}" for f in t) + ">"
    raise CatalogError(f"no Hive type for Arrow type {t}")
