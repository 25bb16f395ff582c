"""Retention: drop a log's hours older than it keeps -- from Hive first (readers stop seeing them), then from the lake
-- and its quarantine files older than it keeps them. Holds the log's lease (no run writes meanwhile); a retention
killed between the two steps is finished by the next one (dropping a Hive partition is idempotent). A dry run lists
what would go.
"""
from __future__ import annotations

import os
import time

from .hive import partition_spec, partition_values
from .hourswap import _fsync_dir
from .output_formats import count_records
from .partitioning import HOUR_MS, FileName, hour_start
from .rebuild import HourReport, HourRewriter, RebuildResult
from .storage import Storage

DROPPED, WOULD_DROP = "dropped", "would drop"


def keeps_for(settings, spec) -> tuple[int | None, int | None]:
    """(hours of data, hours of quarantine) LOG keeps: its pseidon_logs columns, else :retention-hours and
    :quarantine-retention-hours; None: all."""
    data = spec.retention_hours if spec.retention_hours is not None else settings.retention_hours
    quarantine = (spec.quarantine_retention_hours if spec.quarantine_retention_hours is not None
                  else settings.quarantine_retention_hours)
    return data, quarantine


class Retention(HourRewriter):
    WHAT = "retention"
    NEEDS_HOURS = False  # expired quarantine files go even when no hour of data does

    def __init__(self, *args, keep_hours: float | None = None, quarantine_keep_hours: float | None = None, **kw):
        super().__init__(*args, **kw)
        self.keep_hours = keep_hours
        self.quarantine_keep_hours = quarantine_keep_hours

    def expired(self) -> list[int]:
        """Event hours of the log's data files that ended more than keep_hours ago."""
        if self.keep_hours is None:
            return []
        limit = int(time.time() * 1000) // HOUR_MS - int(self.keep_hours)
        return sorted({n.hour for n in self._lake_files() if n.ext != "jsonl.gz" and n.hour < limit})

    def run_all(self, dry_run: bool = False) -> RebuildResult:
        return self.run(self.expired(), dry_run=dry_run)

    def _rewrite(self, hours: list[int], dry_run: bool, allow_shrink: bool) -> RebuildResult:
        reports = []
        cat = None if dry_run else self._catalog()
        limit = int(time.time() * 1000) // HOUR_MS - int(self.keep_hours or 0)
        dropped_days: set[int] = set()
        for h in hours:
            files = self._hour_files(h)
            r = HourReport(h, records_now=sum(count_records(_LOCAL.fs, p) for p in files), files_now=len(files))
            reports.append(r)
            if dry_run:
                r.action = WOULD_DROP
                continue
            if cat is not None:
                day = h // 24
                if self.spec.hourly or ((day + 1) * 24 <= limit and day not in dropped_days):
                    dropped_days.add(day)  # a daily partition goes when all its hours have
                    c, db, table = cat
                    values = partition_values(self.settings, self.spec, h)
                    r.registered = c.drop_partitions(db, table, [values])
                    r.note = f"dropped Hive partition {partition_spec(values)}"
            self._check()
            for p in files:
                os.unlink(p)
            d = self._hour_dir(h)
            if os.path.isdir(d) and not os.listdir(d):
                os.rmdir(d)
            if os.path.isdir(os.path.dirname(d)):
                _fsync_dir(os.path.dirname(d))
            r.action = DROPPED
        result = RebuildResult(self.spec.log, reports, [], dry_run)
        result.quarantine_removed = self._quarantine(dry_run)
        return result

    def _quarantine(self, dry_run: bool) -> list[str]:
        """Quarantine files of the log whose hour (the hour their run read them) ended more than
        quarantine_keep_hours ago."""
        if self.quarantine_keep_hours is None:
            return []
        limit = int(time.time() * 1000) // HOUR_MS - int(self.quarantine_keep_hours)
        storage, base = Storage.for_path(self.quarantine_root)
        top = f"{base.rstrip('/')}/{self.spec.log_partition}"
        old = []
        for path in storage.list_files(top):
            n = FileName.parse(path.rsplit("/", 1)[-1])
            if n is not None and n.log == self.spec.log and n.hour < limit and "/." not in path[len(top):]:
                old.append(path)
        if not dry_run:
            for path in old:
                os.unlink(path)
        return old


_LOCAL = Storage.for_path("/")[0]


def hour_text(h: int) -> str:
    return f"{hour_start(h):%Y-%m-%dT%H:00}"
