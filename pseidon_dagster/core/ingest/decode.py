"""Decode a batch of one partition's message values with the log's format descriptor (core/formats).

Text outputs get one output line per message (ending in "\\n"); Parquet outputs get a typed row (a tuple in schema
order, schemas.RowConverter). A value that cannot be decoded is marked bad with its reason (it goes to quarantine);
a null value (a tombstone) is filtered. The schema registry being unreachable is not the message's fault: it fails
the run, which commits nothing.
"""
from __future__ import annotations

from collections.abc import Callable

from ..formats import MessageError, RegistryUnavailable


class Unfit(MessageError):
    """A parsed message whose row does not fit the Parquet schema; it knows its event time."""

    def __init__(self, reason: str, ts: int):
        super().__init__(reason)
        self.ts = ts


class Decoder:
    def __init__(self, parse: Callable[[bytes], tuple[int, bytes | tuple]], rows: bool):
        self.parse = parse  # value -> (event ms, line or row); raises MessageError
        self.rows = rows

    @classmethod
    def for_text(cls, parser) -> Decoder:
        return cls(parser.line, rows=False)

    @classmethod
    def for_rows(cls, parser, convert) -> Decoder:
        row = parser.row

        def parse(value: bytes):
            ts, r = row(value)
            try:
                return ts, convert(r)
            except MessageError as e:
                raise Unfit(str(e), ts) from None

        return cls(parse, rows=True)

    def decode(self, values: list) -> tuple[list, list, list[int], dict[int, str]]:
        """(event ms or None, line/row or None, record bytes, {index: reason}) per value. None without a reason is
        a filtered (null) value. A bad value keeps its event time when it was read before the failure (a Parquet
        value that does not fit its column), so a rebuild can tell which hour it belongs to."""
        parse, rows = self.parse, self.rows
        ts: list = []
        out: list = []
        sizes: list[int] = []
        bad: dict[int, str] = {}
        t: int | None
        o: bytes | tuple | None
        for i, v in enumerate(values):
            if v is None:
                ts.append(None)
                out.append(None)
                sizes.append(0)
                continue
            try:
                t, o = parse(v)
            except MessageError as e:
                bad[i] = str(e)
                t, o = getattr(e, "ts", None), None
            except RegistryUnavailable:
                raise
            except Exception as e:  # noqa: BLE001 - a parser bug must not take the batch down
                bad[i] = f"{type(e).__name__}: {e}"
                t = o = None
            ts.append(t)
            out.append(o)
            # Parquet: the input size decides cuts (the row's Arrow size is not known until the file is written).
            sizes.append(len(v) if rows or o is None else len(o))
        return ts, out, sizes, bad
