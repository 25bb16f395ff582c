"""Hive SQL text, validated and quoted; no I/O.

Every identifier is validated ([A-Za-z_][A-Za-z0-9_]*) and backtick-quoted, every partition value and LOCATION is
validated before any SQL is sent: a hostile hive_table_name such as `t; DROP TABLE x` raises CatalogError. No DDL
literal holds '$' (Hive substitutes ${env:..}, ${hivevar:..} in statements), and column types must parse as one
whole Hive type (types.column_type)."""
from __future__ import annotations

import re
from collections.abc import Sequence

from .. import paths
from ..formats import parse_descriptor
from ..formats.txt import separator
from ..model import LogSpec
from .errors import CatalogError
from .types import column_type

DEFAULT_DATABASE = "default"
TEXT_FORMATS = ("gzip", "txt", "bzip2", "zstd")

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_VALUE = re.compile(r"[0-9A-Za-z_-]+\Z")


# -- names ------------------------------------------------------------------------------------------------------


def is_identifier(name: str) -> bool:
    return isinstance(name, str) and bool(_IDENT.match(name))


def ident(name: str, what: str = "identifier") -> str:
    """A validated, backtick-quoted Hive identifier."""
    if not is_identifier(name):
        raise CatalogError(f"{what} {name!r} is not a valid Hive identifier ([A-Za-z_][A-Za-z0-9_]*)")
    return f"`{name}`"


def split_table(name: str, default_db: str) -> tuple[str, str]:
    """'table' or 'db.table' -> (db, table), both validated."""
    if not isinstance(name, str) or not name.strip():
        raise CatalogError("the Hive table name is empty")
    parts = name.split(".")
    if len(parts) == 1:
        db, table = default_db, parts[0]
    elif len(parts) == 2:
        db, table = parts
    else:
        raise CatalogError(f"Hive table name {name!r} must be table or db.table")
    ident(db, "Hive database")
    ident(table, f"Hive table name {name!r}: table")
    return db, table


def qualified(db: str | None, table: str, default_db: str = DEFAULT_DATABASE) -> str:
    """`db`.`table` from (db, 'table') or (None, 'db.table')."""
    d, t = split_table(table, db or default_db)
    return f"{ident(d)}.{ident(t)}"


# -- partitions and locations -----------------------------------------------------------------------------------


def partition_value(value: str, column: str = "partition") -> str:
    text = str(value)
    if not _VALUE.match(text):
        raise CatalogError(f"partition value {text!r} for {column} may only hold letters, digits, '_' and '-'")
    return f"'{text}'"


def partition_clause(values: dict[str, str]) -> str:
    if not values:
        raise CatalogError("a partition needs at least one column value")
    return ", ".join(f"{ident(k, 'partition column')}={partition_value(v, k)}" for k, v in values.items())


def partition_spec(values: dict[str, str]) -> str:
    """dt=20261120/hr=2026112007, as SHOW PARTITIONS prints it."""
    return "/".join(f"{k}={v}" for k, v in values.items())


def location_literal(location: str) -> str:
    if not isinstance(location, str) or not location.strip():
        raise CatalogError("a partition LOCATION is empty")
    problem = paths.text_problem(location)
    if problem:
        raise CatalogError(f"LOCATION {paths.redact_url(location)!r} {problem}")
    return f"'{location}'"


# -- CREATE TABLE -----------------------------------------------------------------------------------------------


def _sep_literal(sep: bytes) -> str:
    if len(sep) != 1:
        raise CatalogError(f"separator {sep!r} is more than one byte; Hive's text SerDe splits on a single byte")
    c = sep.decode("latin-1")
    if c.isprintable() and c not in "'\\\"`;$":  # '$' as an octal escape: no Hive variable substitution
        return f"'{c}'"
    return f"'\\{ord(c):03o}'"


_ESCAPED = " ESCAPED BY '\\\\'"
ESCAPED_PROPERTIES = {"serialization.escape.crlf": "true"}


def storage_clause(spec: LogSpec, columns: Sequence[tuple[str, str]] | None, escaped: bool = False
                   ) -> tuple[str, list[tuple[str, str]]]:
    """(storage clause, columns) for a log's output_format. ESCAPED: text lines escape `\\`, LF and CR
    (:writer :line-breaks "escape"), which Hive reads back with ESCAPED BY '\\' and serialization.escape.crlf."""
    if spec.output_format == "parquet":
        if not columns:
            raise CatalogError(f"log {spec.log!r} writes parquet: give the table's columns")
        return "STORED AS PARQUET", list(columns)
    if spec.output_format not in TEXT_FORMATS:
        raise CatalogError(f"log {spec.log!r}: no Hive storage for output_format {spec.output_format!r}")
    d = parse_descriptor(spec.format)
    if d.type == "txt" and columns:
        return (f"ROW FORMAT DELIMITED FIELDS TERMINATED BY {_sep_literal(separator(d.get('sep')))}"
                f"{_ESCAPED if escaped else ''} STORED AS TEXTFILE"), list(columns)
    # One `line` column holding the whole line: json and avro-txt lines, or txt without given columns. The field
    # terminator is the line terminator, which never occurs inside a line, so the line is never split.
    return (f"ROW FORMAT DELIMITED FIELDS TERMINATED BY '\\n'{_ESCAPED if escaped else ''} STORED AS TEXTFILE",
            list(columns) if columns else [("line", "string")])


def create_table_sql(name: str, columns: Sequence[tuple[str, str]], partition_columns: Sequence[str], storage: str,
                     location: str | None = None, external: bool = True,
                     properties: dict[str, str] | None = None) -> str:
    """CREATE [EXTERNAL] TABLE IF NOT EXISTS NAME (a qualified `db`.`table`); STORAGE is a storage_clause()."""
    if not columns:
        raise CatalogError(f"CREATE TABLE {name}: no columns")
    cols = ", ".join(f"{ident(n, 'column')} {column_type(t)}" for n, t in columns)
    parts = ", ".join(f"{ident(p, 'partition column')} string" for p in partition_columns)
    return (f"CREATE {'EXTERNAL ' if external else ''}TABLE IF NOT EXISTS {name} ({cols})"
            + (f" PARTITIONED BY ({parts})" if parts else "") + f" {storage}"
            + (f" LOCATION {location_literal(location)}" if location else "")
            # PROPERTIES are constants of this package (never row text)
            + (" TBLPROPERTIES (" + ", ".join(f"'{k}' = '{v}'" for k, v in sorted(properties.items())) + ")"
               if properties else ""))
