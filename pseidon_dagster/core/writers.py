"""Streaming file writers: text through any compressor, and Parquet (output_formats.py says which format uses which).

A writer is opened on a temporary path, takes already-rendered bytes (text formats) or rows (Parquet), and is
closed before the file is published by rename. Compression is streaming, so memory stays bounded.
"""
from __future__ import annotations

# The compressor is handed its input in blocks of exactly this size: ISA-L's deflate output depends on how its input
# is split into compress() calls, and a replay must write the same bytes whatever chunks its buffers were flushed in.
COMPRESS_BLOCK = 256 << 10


class TextFile:
    """A text file being written: rendered lines in, compressed bytes out to an output stream. The output depends
    only on the bytes written, not on how they were chunked."""

    def __init__(self, stream, compressor=None):
        """COMPRESSOR: an object with compress(bytes) and flush(), as zlib's; None writes the bytes as they are."""
        self.stream = stream
        self.raw_bytes = 0
        self._buf = bytearray()
        self._c = compressor

    def write(self, data: bytes) -> None:
        self.raw_bytes += len(data)
        if self._c is None:
            self.stream.write(data)
            return
        buf = self._buf
        buf += data
        if len(buf) < COMPRESS_BLOCK:
            return
        view = memoryview(buf)
        whole = len(buf) - len(buf) % COMPRESS_BLOCK
        for i in range(0, whole, COMPRESS_BLOCK):
            out = self._c.compress(view[i:i + COMPRESS_BLOCK])
            if out:
                self.stream.write(out)
        view.release()
        del buf[:whole]

    def close(self) -> None:
        if self._c is not None:
            if self._buf:
                self.stream.write(self._c.compress(bytes(self._buf)))
            self.stream.write(self._c.flush())
        self.stream.close()


class ParquetFile:
    """Typed rows in, one Parquet row group per write: tuples in schema order from schemas.RowConverter (which
    guarantees every value builds into its column, so a write never fails on a value), or a table from
    RowConverter.table."""

    def __init__(self, stream, schema, codec: str = "snappy", row_group_bytes: int = 20 << 20):
        import pyarrow.parquet as pq

        self.stream = stream
        self.schema = schema
        self.row_group_bytes = max(1, row_group_bytes)
        self._w = pq.ParquetWriter(stream, schema, compression=None if codec == "none" else codec)
        self._pending: list = []  # tables of the row group being gathered (compact copies) ...
        self._loose: list = []  # ... and the slices of batches added since
        self._pending_bytes = 0

    def write(self, rows: list[tuple], sizes=None) -> None:
        """Rows (tuples in schema order) with their input sizes in bytes (one int each, or their total)."""
        import pyarrow as pa

        if not rows:
            return
        cols = list(zip(*rows))
        arrays = [pa.array(col, type=f.type) for col, f in zip(cols, self.schema)]
        self.write_table(pa.Table.from_arrays(arrays, schema=self.schema), sizes)

    def write_table(self, table, sizes=None) -> None:
        """Rows as a table. A row group ends at the first row whose input brings it to `row_group_bytes` -- so row
        groups, and the file's bytes, depend only on the rows written, not on how they were chunked."""
        import numpy as np

        n = table.num_rows
        if not n:
            return
        if sizes is None or np.ndim(sizes) == 0:
            total = n if sizes is None else int(sizes)
            sizes = np.full(n, total // n, dtype=np.int64)
            sizes[: total % n] += 1
        cum = np.cumsum(np.asarray(sizes, dtype=np.int64))
        pos, base = 0, 0
        while pos < n:
            need = self.row_group_bytes - self._pending_bytes + base
            k = int(np.searchsorted(cum, need, side="left"))
            if k >= n:
                self._add(table.slice(pos))
                self._pending_bytes += int(cum[-1] - base)
                return
            self._add(table.slice(pos, k + 1 - pos))
            self._write_group()
            base = int(cum[k])
            pos = k + 1

    def _add(self, piece) -> None:
        import pyarrow as pa

        self._loose.append(piece)
        if len(self._loose) >= 16:  # a slice keeps its whole batch alive: copy sixteen into one compact table
            self._pending.append(pa.concat_tables(self._loose).combine_chunks())
            self._loose = []

    def _write_group(self) -> None:
        import pyarrow as pa

        pieces = self._pending + self._loose
        if pieces:
            self._w.write_table(pa.concat_tables(pieces), row_group_size=1 << 62)
        self._pending, self._loose, self._pending_bytes = [], [], 0

    def close(self) -> None:
        self._write_group()
        self._w.close()
        self.stream.close()
