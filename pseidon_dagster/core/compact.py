"""Compaction: rewrite a closed hour that holds many or small files into fewer files, through the same atomic hour
swap as a backfill (rebuild.HourRewriter, hourswap.py): readers never see a mix or a gap, the log's lease keeps the
tail out, and a killed compaction is finished or rolled back by the next run.

Per Kafka partition, the hour's files are merged in offset order into files of at most :writer :rollover-size
bytes (uncompressed); a merged file is named for the union of the ranges it merged (`o<first start>-<last end>`), so
it keeps holding exactly the hour's messages of those offsets. Compacting what is already compacted changes nothing,
and the same input always gives the same bytes. Only hours older than `older_than` (default 2 hours) are touched:
an hour the tail is still filling is left to the tail. Quarantine files are not compacted.
"""
from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from .model import FileInfo
from .output_formats import BY_EXTENSION, count_records, open_text, text_chunks
from .partitioning import HOUR_MS, FileName
from .rebuild import UNCHANGED, HourReport, HourRewriter, RebuildError, RebuildResult
from .storage import Storage
from .writers import ParquetFile, TextFile

DEFAULT_MIN_FILES = 4  # an hour with more files than this (per Kafka partition) is compacted ...
DEFAULT_SMALL_BYTES = 8 << 20  # ... and so is one with two files of a partition where one is smaller than this


@dataclasses.dataclass(frozen=True)
class _Group:
    partition: int
    files: tuple[str, ...]

    def name(self, log: str, hour: int, ext: str) -> str:
        first, last = _name(self.files[0]), _name(self.files[-1])
        return str(FileName(log, hour, self.partition, first.start, last.end, ext))


class Compactor(HourRewriter):
    WHAT = "compaction"

    def __init__(self, *args, min_files: int = DEFAULT_MIN_FILES, small_bytes: int = DEFAULT_SMALL_BYTES, **kwargs):
        super().__init__(*args, **kwargs)
        self.min_files = min_files
        self.small_bytes = small_bytes

    # which hours -----------------------------------------------------------------------------------------------------
    def candidates(self, older_than_hours: float = 2.0, since_hours: float | None = None) -> list[int]:
        """Hours of the log, closed (their end is older than OLDER_THAN_HOURS) and, with SINCE_HOURS, not older than
        that, whose files call for a compaction."""
        now_hour = int(time.time() * 1000) // HOUR_MS
        newest = now_hour - int(older_than_hours) - 1
        oldest = now_hour - int(since_hours) if since_hours is not None else -(1 << 62)
        hours = {n.hour for n in self._lake_files() if oldest <= n.hour <= newest and n.ext != "jsonl.gz"}
        return sorted(h for h in hours if self._groups(h))

    def _groups(self, hour: int) -> list[_Group]:
        """The merges an hour calls for (none when it is compact already). Re-driven files (redrive.py) stay as they
        are: they hold the quarantined messages of ranges whose other messages are in the tail's files."""
        files = [p for p in self._hour_files(hour) if not _name(p).ext.startswith("redrive.")]
        by_partition: dict[int, list[str]] = {}
        for path in files:
            by_partition.setdefault(_name(path).partition, []).append(path)
        needed = len(files) > self.min_files * max(1, len(by_partition)) or any(
            len(paths) > 1 and any(os.path.getsize(p) < self.small_bytes for p in paths)
            for paths in by_partition.values())
        if not needed:
            return []
        groups = []
        limit = self.settings.writer.rollover_size
        for p, paths in sorted(by_partition.items()):
            paths.sort(key=lambda x: _name(x).start)
            current: list[str] = []
            size = 0
            for path in paths:
                raw = _raw_size(path)
                if current and size + raw > limit:
                    groups.append(_Group(p, tuple(current)))
                    current, size = [], 0
                current.append(path)
                size += raw
            groups.append(_Group(p, tuple(current)))
        return groups if any(len(g.files) > 1 for g in groups) else []

    # the rewrite -----------------------------------------------------------------------------------------------------
    def _rewrite(self, hours: list[int], dry_run: bool, allow_shrink: bool) -> RebuildResult:
        reports = {h: HourReport(h) for h in hours}
        token = self.lease.token if self.lease is not None else 0
        todo = {}
        for h in hours:
            r = reports[h]
            files = [p for p in self._hour_files(h) if not _name(p).ext.startswith("redrive.")]
            r.files_now = len(files)
            r.records_now = sum(count_records(_LOCAL.fs, p) for p in files)
            groups = self._groups(h)
            if not groups:
                r.action, r.records_new, r.files_new = UNCHANGED, r.records_now, r.files_now
                r.note = "compact already"
                continue
            r.files_new = len(groups)
            r.records_new = r.records_now
            todo[h] = groups
        if dry_run or not todo:
            for h in todo:
                reports[h].action = "dry-run"
            return RebuildResult(self.spec.log, [reports[h] for h in hours], [], dry_run)
        fresh = {h: self._fresh(h, token) for h in todo}
        self._record_fresh(list(todo), fresh, None)
        for h, groups in todo.items():
            os.makedirs(fresh[h], mode=0o750, exist_ok=True)
            for g in groups:
                reports[h].files.append(self._merge(g, h, fresh[h], token))
                self._check()
        self._swap_all(list(todo), reports, allow_shrink=False, token=token)
        return RebuildResult(self.spec.log, [reports[h] for h in hours], [], dry_run)

    def _merge(self, group: _Group, hour: int, directory: str, token: int):
        w = self.settings.writer
        ext = _name(group.files[0]).ext
        final = os.path.join(directory, group.name(self.spec.log, hour, ext))
        tmp = f"{final}.{token}.tmp"
        storage = Storage.for_path(directory)[0]
        storage.sync = w.fsync
        stream = storage.open_output(tmp)
        records = raw = 0
        out: ParquetFile | TextFile
        if ext == "parquet":
            first = pq.ParquetFile(group.files[0])
            out = ParquetFile(stream, first.schema_arrow, w.parquet_codec, w.parquet_block_size)
            for path in group.files:
                for batch in pq.ParquetFile(path).iter_batches(batch_size=65536):
                    table = pa.Table.from_batches([batch])
                    out.write_table(table, table.nbytes)
                    records += table.num_rows
                    raw += table.nbytes
        else:
            codec = BY_EXTENSION[ext].name
            out = open_text(stream, codec, w.gzip_level, w.zstd_level)
            for path in group.files:
                for chunk in text_chunks(_LOCAL.fs, path):
                    out.write(chunk)
                    records += chunk.count(b"\n")
                    raw += len(chunk)
        out.close()
        os.replace(tmp, final)
        name = _name(final)
        return FileInfo(final, "data", hour, group.partition, name.start, name.end, records, raw,
                        os.path.getsize(final))


def _name(path: str) -> FileName:
    """The parsed name of one of the hour's files (HourRewriter._hour_files lists only names that parse)."""
    name = FileName.parse(os.path.basename(path))
    if name is None:
        raise RebuildError(f"{path} is not named as a file of a log")
    return name


def _raw_size(path: str) -> int:
    """A file's size before compression (what :rollover-size limits)."""
    if path.endswith(".parquet"):
        meta = pq.ParquetFile(path).metadata
        return sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    return sum(len(c) for c in text_chunks(_LOCAL.fs, path))


_LOCAL = Storage.for_path("/")[0]


def compact(settings, spec, store, hours: Iterable[int] | None = None, *, older_than_hours: float = 2.0,
            dry_run: bool = False, **kwargs) -> RebuildResult:
    c = Compactor(settings, spec, store, **kwargs)
    chosen = sorted(hours) if hours is not None else c.candidates(older_than_hours)
    if not chosen:
        return RebuildResult(spec.log, [], [], dry_run)
    return c.run(chosen, dry_run=dry_run)
