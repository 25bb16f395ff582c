"""The hot path: a whole batch of `txt` messages decoded and routed with pyarrow and numpy instead of message by
message in Python.

For a batch of one partition's values it computes every message's event time (the timestamp field, split and cast
by Arrow), its hour, the window check, and -- for text outputs -- one buffer holding every line (`b"\\n".join`),
from which runs of consecutive messages of one hour are written as single slices; for Parquet, the typed columns
(split by Arrow, cast with schemas.cast_text_column's exactness rules) from which runs are written as table slices.

It never decides differently from the per-message path (decode.py, route.py): a message whose timestamp field is not
plain digits is parsed by the per-message parser (ISO dates, missing fields, their exact error), and a batch it
cannot handle exactly -- a null value, a line break inside a message, bytes that are not UTF-8 (Parquet), a value
Arrow would convert differently -- is given back (None) to the per-message path. Equivalence is property-tested
(tests/unit/core/test_vector.py), so a replay writes the same bytes whichever path a batch takes.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..formats import MessageError, RegistryUnavailable
from ..formats.txt import ALL, TxtParser
from ..partitioning import HOUR_MS
from ..schemas import cast_text_column

_DIGITS = r"^-?[0-9]{1,18}$"


@dataclasses.dataclass
class VectorBatch:
    n: int
    hours: np.ndarray  # event hour per message (meaningful where good)
    good: np.ndarray  # bool: the message is written
    sizes: np.ndarray  # int64: bytes per record (line length; a Parquet row's input length)
    bad: dict[int, str]  # index -> quarantine reason
    joined: bytes | None = None  # text: every line, each followed by "\n"
    starts: np.ndarray | None = None  # text: where line i starts in `joined`
    table: pa.Table | None = None  # Parquet: one row per message (rows of bad messages are never written)

    def chunk(self, a: int, b: int) -> bytes:
        """Lines a..b-1 (consecutive messages), as one piece of the text file."""
        joined, starts = self.joined, self.starts
        if joined is None or starts is None:
            raise ValueError("VectorBatch.chunk: a Parquet batch has no text lines")
        end = int(starts[b]) if b < self.n else len(joined)
        return joined[int(starts[a]):end]


class VectorDecoder:
    def __init__(self, parser: TxtParser, parse, lo_ms: int, hi_ms: int, schema: pa.Schema | None):
        self.parser = parser
        self.parse = parse  # the per-message parse (decode.Decoder.parse): for what the batch cannot decide
        self.sep = parser.sep
        self.idx = parser.spec.ts_index
        self.mult = parser.spec.mult
        self.lo_ms, self.hi_ms = lo_ms, hi_ms
        self.schema = schema

    @classmethod
    def for_parser(cls, parser, parse, lo_ms: int, hi_ms: int, schema: pa.Schema | None = None,
                   line_breaks: str = "quarantine") -> VectorDecoder | None:
        """A vector decoder when the descriptor is one it handles exactly: `txt` keeping every field (msg absent),
        a one-byte separator and a timestamp field (not the clock); text outputs that do not escape line breaks."""
        if not isinstance(parser, TxtParser):
            return None
        spec = parser.spec
        if spec.kind != ALL or len(parser.sep) != 1 or spec.ts_index < 0:
            return None
        if schema is None and line_breaks != "quarantine":
            return None
        return cls(parser, parse, lo_ms, hi_ms, schema)

    def decode(self, values: list) -> VectorBatch | None:
        n = len(values)
        if n < 64:
            return None  # not worth it
        joined: bytes | None
        starts: np.ndarray | None
        if self.schema is None:
            try:
                joined = b"\n".join(values) + b"\n"
            except TypeError:  # a null value (tombstone)
                return None
            data = np.frombuffer(joined, dtype=np.uint8)
            ends = np.flatnonzero(data == 10)
            if len(ends) != n or np.count_nonzero(data == 13):
                return None  # a line break inside a message: the per-message path quarantines it exactly
            starts = np.empty(n, dtype=np.int64)
            starts[0] = 0
            starts[1:] = ends[:-1] + 1
            sizes = ends - starts + 1
            text = None
            # the lines as an Arrow binary array over the same buffer (each value keeps its "\n"): no copy
            offsets = np.append(starts, len(joined)).astype(np.int32)
            raw = pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(joined)])
        else:
            try:
                raw = pa.array(values, pa.binary())
                text = raw.cast(pa.string())  # Parquet columns are text: valid UTF-8 only
            except (pa.ArrowException, TypeError):
                return None
            if raw.null_count:
                return None
            offs = np.frombuffer(raw.buffers()[1], dtype=np.int32, count=n + 1, offset=raw.offset * 4)
            sizes = np.diff(offs).astype(np.int64)
            joined = starts = None
        ts, bad = self._timestamps(raw, values)
        good = np.ones(n, dtype=bool)
        for i in bad:
            good[i] = False
        out_of_window = good & ((ts < self.lo_ms) | (ts > self.hi_ms))
        for i in np.flatnonzero(out_of_window).tolist():
            bad[i] = self._reason(values[i]) or self.window_reason(int(ts[i]))
        good &= ~out_of_window
        hours = np.floor_divide(ts, HOUR_MS)
        batch = VectorBatch(n, hours, good, sizes, bad, joined, starts)
        if self.schema is not None:
            table = self._table(text, good, self.schema)
            if table is None:
                return None
            batch.table = table
        return batch

    def _reason(self, value: bytes) -> str | None:
        """For Parquet a row's conversion is checked before its window (as decode.py, then route.py do)."""
        if self.schema is None:
            return None
        try:
            self.parse(value)
        except MessageError as e:
            return str(e)
        return None

    def window_reason(self, t: int) -> str:  # the words of route.Router
        return f"timestamp {t} outside the accepted window [{self.lo_ms}, {self.hi_ms}] (see :writer :allow-all-ts)"

    def _timestamps(self, raw: pa.Array, values: list) -> tuple[np.ndarray, dict[int, str]]:
        """Event ms per message: the timestamp field split and cast by Arrow where it is a plain integer (what
        Arrow casts, Python's int() reads the same), the per-message parser for the others (ISO dates, missing
        fields, their exact errors)."""
        idx, n = self.idx, len(values)
        parts = pc.split_pattern(raw, self.sep, max_splits=idx + 1)
        ok = np.ones(n, dtype=bool)
        if idx:
            ok = pc.list_value_length(parts).to_numpy(zero_copy_only=False) > idx
            if not ok.all():
                parts = pc.if_else(pa.array(ok), parts, pa.scalar([b"0"] * (idx + 1), parts.type))
        field = pc.list_element(parts, idx)
        try:
            ints = field.cast(pa.string()).cast(pa.int64()).to_numpy()
        except pa.ArrowException:  # some field is not an integer (or not UTF-8): find which
            try:
                text = field.cast(pa.string())
                ok &= pc.fill_null(pc.match_substring_regex(text, _DIGITS), False).to_numpy(zero_copy_only=False)
                ints = pc.if_else(pa.array(ok), text, "0").cast(pa.int64()).to_numpy()
            except pa.ArrowException:
                ok[:] = False
                ints = np.zeros(n, dtype=np.int64)
        ok &= np.abs(ints) <= 10 ** 15  # beyond year 9999 in ms, seconds * 1000 could overflow: per message
        ts = np.where(ok, ints, 0) * self.mult
        bad: dict[int, str] = {}
        for i in np.flatnonzero(~ok).tolist():  # the per-message parser decides these (and words any error)
            try:
                t, _ = self.parse(values[i])
                if self.lo_ms <= t <= self.hi_ms:
                    ts[i] = t
                else:  # (it may not even fit an int64)
                    bad[i] = self.window_reason(t)
            except MessageError as e:
                bad[i] = str(e)
            except RegistryUnavailable:
                raise
            except Exception as e:  # noqa: BLE001 - as decode.py: a parser bug must not take the batch down
                bad[i] = f"{type(e).__name__}: {e}"
        return ts, bad

    def _table(self, text: pa.Array, good: np.ndarray, schema: pa.Schema) -> pa.Table | None:
        """The typed columns of the batch, or None when the per-message path must decide (a field count other
        than the schema's, or a value Arrow would not convert exactly as schemas.RowConverter does)."""
        ncols = len(schema)
        fields = pc.split_pattern(text, self.sep.decode("utf-8"))
        counts = pc.list_value_length(fields).to_numpy(zero_copy_only=False)
        if not (counts[good] == ncols).all():
            return None
        fields = pc.if_else(pa.array(good), fields, pa.scalar([""] * ncols, fields.type))
        flat = fields.flatten()
        n = len(text)
        columns = []
        for j, f in enumerate(schema):
            col = flat.take(pa.array(np.arange(j, n * ncols, ncols)))
            arr = cast_text_column(col, f.type, keep=good)
            if arr is None:
                return None
            columns.append(arr)
        return pa.Table.from_arrays(columns, schema=schema)


def runs(hours: np.ndarray, good: np.ndarray) -> list[tuple[int, int]]:
    """[a, b) spans of consecutive messages that are all good and of one hour, or all not good."""
    n = len(hours)
    key = np.where(good, hours, np.iinfo(np.int64).min)
    change = np.flatnonzero((key[1:] != key[:-1]) | (good[1:] != good[:-1])) + 1
    bounds = [0, *change.tolist(), n]
    return list(zip(bounds[:-1], bounds[1:]))
