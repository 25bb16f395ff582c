"""Files of one kind (data or quarantine) of one run: per (Kafka partition, event hour) writers under temporary
names, published by rename when their segment is cut.

- A temporary name carries the attempt's lease token (`.<log>.h<hour>.p<partition>.o<start>.<ext>.<token>.tmp`),
  so two attempts never share one or delete each other's.
- Every temporary and final path is recorded in the plan's manifest (Redis) *before* it is created, by a script
  that checks this run still holds the lease: a run that lost its lease cannot publish, and the commit step knows
  every file any attempt of the plan left behind.
- Records are buffered per file and handed to the writer in chunks; when all files together buffer too much, all
  are flushed, so memory does not grow with the backlog.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..model import FileInfo
from ..partitioning import FileName, partition_dir
from ..storage import Storage

FLUSH_BYTES = 1 << 20  # a text file's records are compressed and written at this size
# What all open files of a run may buffer together before every buffer is flushed. Parquet rows are Python tuples
# until flushed (several times their input size), hence the lower bound.
MAX_BUFFERED_TEXT = 32 << 20
MAX_BUFFERED_ROWS = 16 << 20


class HourFile:
    """One (partition, hour) file of the current segment."""

    __slots__ = ("partition", "hour", "seg_start", "pending", "pending_bytes", "size", "records", "writer", "tmp",
                 "sizes")

    def __init__(self, partition: int, hour: int, seg_start: int):
        self.partition = partition
        self.hour = hour
        self.seg_start = seg_start
        self.pending: list = []
        self.sizes: list[int] = []  # Parquet: each pending row's input size (row groups are cut by it)
        self.pending_bytes = 0
        self.size = 0
        self.records = 0
        self.writer: Any = None  # open_writer's: a writers.ParquetFile (rows) or TextFile, made by the first flush
        self.tmp: str | None = None


class Sink:
    def __init__(self, kind: str, root: str, log: str, log_partition: str, hourly: bool, ext: str,
                 open_writer: Callable, token: int, record_paths: Callable[..., None], *, rows: bool = False,
                 flush_bytes: int | None = None, max_buffered: int | None = None,
                 directory_of: Callable[[int], str] | None = None, fsync: bool = True):
        self.kind = kind
        self.storage, self.root = Storage.for_path(root)
        self.storage.sync = fsync
        self.log = log
        self.log_partition = log_partition
        self.hourly = hourly
        self.ext = ext
        self.open_writer = open_writer  # stream -> writer with write(chunk) and close()
        self.token = token
        self.record_paths = record_paths  # (temps=[...]) / (finals=[...]), fenced by the lease
        self.rows = rows  # Parquet: pending items are rows, written as a list; text: bytes, written joined
        self.flush_bytes = flush_bytes or FLUSH_BYTES
        self.max_buffered = max_buffered or (MAX_BUFFERED_ROWS if rows else MAX_BUFFERED_TEXT)
        self.buffered = 0  # pending bytes of every open file
        self.dirs: set[str] = set()
        self._open: dict[int, HourFile] = {}  # id -> file, for flush_all and abort
        self._made: set[str] = set()
        self.directory_of = directory_of  # hour -> directory, instead of the hour's own (a rebuild's fresh one)

    def directory(self, hour: int) -> str:
        d = (self.directory_of or self._layout)(hour)
        if d not in self._made:
            self.storage.makedirs(d, self.root)
            self._made.add(d)
        return d

    def _layout(self, hour: int) -> str:
        return partition_dir(self.root, self.log_partition, hour, self.hourly)

    def open(self, partition: int, hour: int, seg_start: int) -> HourFile:
        f = HourFile(partition, hour, seg_start)
        self._open[id(f)] = f
        return f

    def append(self, f: HourFile, item, nbytes: int) -> None:
        f.pending.append(item)
        if self.rows:
            f.sizes.append(nbytes)
        f.pending_bytes += nbytes
        f.size += nbytes
        f.records += 1
        self.buffered += nbytes
        if f.pending_bytes >= self.flush_bytes:
            self.flush(f)

    def append_many(self, f: HourFile, piece, sizes) -> None:
        """Consecutive records at once (ingest/vector.py): text as one bytes piece, Parquet as a table slice; SIZES
        their input sizes (a numpy array)."""
        nbytes = int(sizes.sum())
        f.size += nbytes
        f.records += len(sizes)
        if self.rows:  # rows handed over before these go first, then the table goes to the writer's row group
            self.flush(f)
            f.writer.write_table(piece, sizes)
            return
        f.pending.append(piece)
        f.pending_bytes += nbytes
        self.buffered += nbytes
        if f.pending_bytes >= self.flush_bytes:
            self.flush(f)

    def flush(self, f: HourFile) -> None:
        if f.writer is None:
            d = self.directory(f.hour)
            f.tmp = f"{d}/.{self.log}.h{f.hour}.p{f.partition}.o{f.seg_start}.{self.ext}.{self.token}.tmp"
            self.record_paths(temps=[self.storage.uri(f.tmp)])
            f.writer = self.open_writer(self.storage.open_output(f.tmp))
        if f.pending:
            if self.rows:
                f.writer.write(f.pending, f.sizes)
                f.sizes = []
            else:
                f.writer.write(b"".join(f.pending))
            f.pending = []
        self.buffered -= f.pending_bytes
        f.pending_bytes = 0

    def flush_all_if_over(self) -> None:
        if self.buffered > self.max_buffered:
            for f in self._open.values():
                if f.pending:
                    self.flush(f)

    def publish(self, files: list[HourFile], seg_end: int) -> list[FileInfo]:
        """Close FILES (one segment of one partition) and rename them to their final names."""
        finals = []
        for f in files:
            self.flush(f)
            f.writer.close()
            name = FileName(self.log, f.hour, f.partition, f.seg_start, seg_end, self.ext)
            finals.append(f"{self.directory(f.hour)}/{name}")
        self.record_paths(finals=[self.storage.uri(p) for p in finals])
        out = []
        for f, final in zip(files, finals):
            assert f.tmp is not None  # flushed above
            self.storage.publish(f.tmp, final)
            self.dirs.add(self.storage.parent(final))
            del self._open[id(f)]
            out.append(FileInfo(final, self.kind, f.hour, f.partition, f.seg_start, seg_end, f.records, f.size,
                                self.storage.size(final)))
        return out

    def sync(self) -> None:
        self.storage.sync_dirs(self.dirs)

    def abort(self) -> None:
        """Best effort after a failure: close and delete this attempt's temporary files."""
        for f in list(self._open.values()):
            try:
                if f.writer is not None:
                    f.writer.close()
            except Exception:  # noqa: BLE001 - the run failed already; the file is removed below
                pass
            if f.tmp:
                self.storage.delete(f.tmp)
        self._open.clear()
