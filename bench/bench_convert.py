"""Cost of turning parser rows into typed Parquet values, per row of a 12-column schema.

    .venv/bin/python bench/bench_convert.py [ROWS]

Row-wise: RowConverter(schema)(row) per message, as the ingest does today (json-like dicts with nested values, and
txt-like lists of strings), then with the columns built as ParquetFile.write builds them. Column-wise (when
RowConverter.table exists): the same rows into one Arrow table.
"""
from __future__ import annotations

import sys
import time

import pyarrow as pa

from pseidon_dagster.core import schemas
from pseidon_dagster.core.hive import schema_from_columns

JSON_COLS = [("ts", "timestamp"), ("user", "string"), ("amount", "decimal(10,2)"), ("n", "int"), ("big", "bigint"),
             ("price", "double"), ("ok", "boolean"), ("day", "date"), ("tags", "array<string>"),
             ("attrs", "map<string,string>"), ("geo", "struct<lat:double,lon:double>"), ("small", "smallint")]
TXT_COLS = [("ts", "timestamp"), ("user", "string"), ("amount", "decimal(10,2)"), ("n", "int"), ("big", "bigint"),
            ("price", "double"), ("ok", "boolean"), ("day", "date"), ("page", "string"), ("ref", "string"),
            ("ratio", "float"), ("small", "smallint")]


def json_row(i: int) -> dict:
    return {"ts": 1_790_000_000_000 + i, "user": f"user-{i}", "amount": f"{i % 1000}.25", "n": i, "big": i * 1000,
            "price": i / 7, "ok": i % 2 == 0, "day": "2026-11-20", "tags": ["a", f"t{i % 10}"],
            "attrs": {"k": "v", "i": str(i)}, "geo": {"lat": 1.5, "lon": -2.25}, "small": i % 100}


def txt_row(i: int) -> list[str]:
    return [str(1_790_000_000_000 + i), f"user-{i}", f"{i % 1000}.25", str(i), str(i * 1000), str(i / 7),
            "true" if i % 2 else "false", "2026-11-20", f"/p/{i}", "https://example.org/", "0.5", str(i % 100)]


def per_row_ns(fn, rows) -> float:
    """Best of 7 in CPU time of this process (other work on the machine disturbs wall time more)."""
    best = float("inf")
    for _ in range(7):
        t0 = time.process_time_ns()
        fn(rows)
        best = min(best, (time.process_time_ns() - t0) / len(rows))
    return best


def build(conv, rows):
    """Row-wise, then the columns as ParquetFile.write builds them."""
    converted = [conv(r) for r in rows]
    return [pa.array(col, type=t) for col, t in zip(zip(*converted), conv.schema.types)]


def main(n: int, module=schemas) -> None:
    for label, cols, make in (("json", JSON_COLS, json_row), ("txt", TXT_COLS, txt_row)):
        conv = module.RowConverter(schema_from_columns(cols))
        rows = [make(i) for i in range(n)]
        row_wise = per_row_ns(lambda rs, conv=conv: [conv(r) for r in rs], rows)
        print(f"{label:4} row-wise            {row_wise:7.0f} ns/row")
        print(f"{label:4} row-wise + columns  {per_row_ns(lambda rs, conv=conv: build(conv, rs), rows):7.0f} ns/row")
        if hasattr(conv, "table"):
            print(f"{label:4} column-wise table   {per_row_ns(conv.table, rows):7.0f} ns/row")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
