"""Rebuild hours of a log from Kafka (backfills): hour H of log L becomes exactly the messages of L whose event time
falls in H, among the offsets L has committed -- never beyond them (the tail owns the rest) and never moving them.

How:
- The rebuild holds the log's lease from start to end, so a tail run never publishes into an hour being swapped.
- Offsets to read, per Kafka partition: from the earlier of (the start of the hour's files' offset ranges) and
  (Kafka's time index at the window's start minus :backfill-lateness-ms), to the later of (the end of those ranges)
  and (the time index at the window's end plus the margin), capped at the committed offset. A broker whose time
  index answers loosely (tansu answers the partition start) makes the rebuild read more, never less. A window of
  contiguous hours is read once.
- File names keep the log's offset tiling: a message goes into the file of the existing segment (from every file
  name of the log) that holds its offset, or of the gap between segments. So the hour's files chain with the rest of
  the log, and the same rebuild twice writes the same names and bytes.
- New files are written into a fresh directory (`<root>/.rebuild/<log>-<token>/<the hour's path>`), with hard links
  to the files there that are not being replaced (other hours of a daily directory), then swapped in atomically for
  Hive and for directory readers (hourswap.py): a reader never sees a mix of old and new files, nor an empty hour
  that had data. Each step is recorded in Redis; a killed rebuild is rolled back (before Hive switched) or forward
  (after) by the next rebuild or tail run of the log.
- Shrink guard: an hour whose rebuild would hold fewer records than its files now is left as it is unless
  allow_shrink; the report names it.
- Messages of a selected hour that cannot be written (a line break, a Parquet value that does not fit) go to the
  rebuild's own quarantine files for that hour (`...<range>.rebuild.jsonl.gz`, replaced by the next rebuild of the
  hour). Messages without a usable event time belong to no hour; the tail quarantined them when it read them.

Local-disk lakes only (the exchange needs one filesystem that has it); HDFS/S3 lakes are refused with a message.

Long because it holds HourRewriter, the base that compaction and re-drive also build on (work directories, the
shrink guard, the swap of all hours; the swap's steps are hourswap.py), beside Rebuilder, its backfill: they change
together.
"""
from __future__ import annotations

import base64
import bisect
import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable, Iterable

from . import paths
from .config import Settings
from .formats import build_parser
from .hive import catalog_for
from .hourswap import REBUILD_QUARANTINE_EXT, finish_pending, remove_dirs, remove_work_dirs, swap_hour
from .ingest.decode import Decoder
from .ingest.plan import resolved_root
from .ingest.read import RangeReader
from .ingest.route import Router
from .ingest.run import parquet_schema
from .ingest.sink import HourFile, Sink
from .ingest.write import row_group_bytes
from .kafka import KafkaSource
from .lease import Lease, new_owner
from .model import FileInfo, LogSpec
from .offsets import OffsetStore
from .output_formats import OUTPUT_FORMATS, count_records, open_text
from .partitioning import HOUR_MS, FileName, hour_start, partition_dir
from .schemas import RowConverter
from .storage import Storage
from .writers import ParquetFile

log = logging.getLogger(__name__)

BACKFILL_WAIT_S = 600.0

REPLACED, CREATED, UNCHANGED, REFUSED, DRY_RUN = "replaced", "created", "unchanged", "refused", "dry-run"


class RebuildError(RuntimeError):
    pass


@dataclasses.dataclass
class HourReport:
    hour: int
    records_now: int = 0
    files_now: int = 0
    records_new: int = 0
    files_new: int = 0
    quarantined_new: int = 0
    action: str = ""
    note: str = ""
    files: list[FileInfo] = dataclasses.field(default_factory=list)
    registered: list[str] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict:
        return {"hour": f"{hour_start(self.hour):%Y-%m-%dT%H:00}", "records_now": self.records_now,
                "files_now": self.files_now, "records_new": self.records_new, "files_new": self.files_new,
                "quarantined_new": self.quarantined_new, "action": self.action, "note": self.note}


@dataclasses.dataclass
class RebuildResult:
    log: str
    hours: list[HourReport]
    reads: list[dict]
    dry_run: bool
    seconds: float = 0.0
    quarantine_removed: list[str] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict:
        return {"log": self.log, "dry_run": self.dry_run, "seconds": round(self.seconds, 3), "reads": self.reads,
                "hours": [h.to_dict() for h in self.hours],
                "replaced": sum(h.action in (REPLACED, CREATED) for h in self.hours),
                "refused": [h.to_dict()["hour"] for h in self.hours if h.action == REFUSED],
                **({"quarantine_removed": len(self.quarantine_removed)} if self.quarantine_removed else {})}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


def windows(hours: Iterable[int]) -> list[list[int]]:
    """Sorted hours grouped into runs of consecutive hours."""
    out: list[list[int]] = []
    for h in sorted(set(hours)):
        if out and out[-1][-1] == h - 1:
            out[-1].append(h)
        else:
            out.append([h])
    return out


class Tiling:
    """A partition's offset segments, from the file names of a log: where a rebuilt message's file belongs."""

    def __init__(self, segments: Iterable[tuple[int, int]], end: int):
        kept: list[tuple[int, int]] = []
        for s, e in sorted(set(segments)):
            if not kept or s >= kept[-1][1]:  # overlaps (duplicates) are left out: the rebuild writes one tiling
                kept.append((s, e))
        self.segments = kept
        self.starts = [s for s, _ in kept]
        self.end = end

    def segment(self, offset: int) -> tuple[int, int]:
        i = bisect.bisect_right(self.starts, offset) - 1
        if i >= 0 and offset < self.segments[i][1]:
            return self.segments[i]
        lo = self.segments[i][1] if i >= 0 else 0
        hi = self.segments[i + 1][0] if i + 1 < len(self.segments) else max(self.end, offset + 1)
        return lo, hi


class HourRewriter:
    """What every rewrite of whole hours shares (a backfill here, compaction in compact.py): the log's lease for the
    whole operation, the hours' files, fresh directories, the recorded, atomic swap (hourswap.py)."""

    WHAT = "rewrite"
    NEEDS_HOURS = True

    def __init__(self, settings: Settings, spec: LogSpec, store: OffsetStore, kafka: KafkaSource | None = None,
                 *, owner: str | None = None, notify: Callable[[str], None] | None = None,
                 catalog: Callable | None = None, progress: Callable[[str, int, int], None] | None = None):
        self.settings = settings
        self.spec = spec
        self.store = store
        self.kafka = kafka or KafkaSource(settings)
        self.owner = owner or new_owner(self.WHAT)
        self.notify = notify
        self.catalog = catalog  # () -> (HiveCatalog, db, table); default catalog_for when the log has a hive_url
        self.progress = progress or (lambda what, done, total: None)
        self.data_root = resolved_root(settings, spec.base_partition)
        self.quarantine_root = resolved_root(settings, spec.quarantine)
        for root in (self.data_root, self.quarantine_root):
            if "://" in root and not root.startswith("file://"):
                raise RebuildError(f"log {spec.log!r}: {self.WHAT}s swap hour directories atomically on local disk; "
                                   f"{paths.redact_url(root)} is not local (HDFS/S3 lakes are not supported yet)")
        self.lease: Lease | None = None

    # public --------------------------------------------------------------------------------------------------------
    def run(self, hours: Iterable[int], *, dry_run: bool = False, allow_shrink: bool = False) -> RebuildResult:
        t0 = time.monotonic()
        hours = sorted(set(hours))
        if not hours and self.NEEDS_HOURS:
            raise RebuildError(f"no hours to {self.WHAT}")
        if not dry_run:
            # not in a hurry: it waits for a tail run in flight to finish (up to 10 minutes)
            self.lease = Lease.acquire(self.store, self.spec.log, self.owner, ttl_s=self.settings.lease_ttl_s,
                                       wait_s=max(self.settings.lease_wait_s, BACKFILL_WAIT_S), notify=self.notify)
        try:
            if self.lease is not None:
                finish_pending(self.settings, self.spec, self.store, self.lease, self._catalog)
            result = self._rewrite(hours, dry_run, allow_shrink)
        finally:
            if self.lease is not None:
                self.lease.release()
        result.seconds = time.monotonic() - t0
        return result

    def _rewrite(self, hours: list[int], dry_run: bool, allow_shrink: bool) -> RebuildResult:
        """The rewrite of HOURS (sorted), under the lease unless DRY_RUN: what a subclass is for."""
        raise NotImplementedError

    # -----------------------------------------------------------------------------------------------------------------
    def _held_lease(self) -> Lease:
        """The lease run() took: only a dry run has none, and it neither records nor swaps anything."""
        if self.lease is None:
            raise RebuildError(f"log {self.spec.log!r}: a {self.WHAT} without the log's lease (a dry run) cannot "
                               f"record or swap hours")
        return self.lease

    def _catalog(self):
        if not self.spec.hive_url:
            return None
        if self.catalog is not None:
            return self.catalog()
        return catalog_for(self.settings, self.spec)

    def _check(self) -> None:
        if self.lease is not None:
            self.lease.check()

    def _lake_files(self) -> list[FileName]:
        out = []
        for root in (self.data_root, self.quarantine_root):
            storage, base = Storage.for_path(root)
            for path in storage.list_files(f"{base.rstrip('/')}/{self.spec.log_partition}"):
                name = path.rsplit("/", 1)[-1]
                if name.startswith(".") or "/." in path[len(base):]:
                    continue  # temporary files and fresh directories of rebuilds
                parsed = FileName.parse(name)
                if parsed is not None and parsed.log == self.spec.log:
                    out.append(parsed)
        return out

    def _hour_dir(self, hour: int, root: str | None = None) -> str:
        return partition_dir(root or self.data_root, self.spec.log_partition, hour, self.spec.hourly)

    def _hour_files(self, hour: int) -> list[str]:
        d = self._hour_dir(hour)
        if not os.path.isdir(d):
            return []
        out = []
        for n in sorted(os.listdir(d)):
            parsed = FileName.parse(n)
            if not n.startswith(".") and parsed is not None and parsed.log == self.spec.log and parsed.hour == hour:
                out.append(os.path.join(d, n))
        return out

    def _work_dir(self, token: int, root: str | None = None) -> str:
        """Where a rebuild writes: `<root>/.rebuild/<log>-<token>/`, outside the log's tree (directory readers of
        the log do not see it) yet on its filesystem (hard links and the exchange need that), and with a last path
        component that is not hidden (Hadoop ignores a partition LOCATION whose name starts with '.')."""
        return os.path.join(root or self.data_root, ".rebuild", f"{self.spec.log}-{token}")

    def _fresh(self, hour: int, token: int, root: str | None = None) -> str:
        root = root or self.data_root
        return os.path.join(self._work_dir(token, root), os.path.relpath(self._hour_dir(hour, root), root))

    # state in Redis --------------------------------------------------------------------------------------------
    def _record_fresh(self, window, fresh, qfresh) -> None:
        state = self.store.load_rebuild(self.spec.log) or {"hours": {}}
        lease = self._held_lease()
        token = lease.token
        state["work"] = sorted({*state.get("work", []), self._work_dir(token), self._work_dir(token,
                                                                                            self.quarantine_root)})
        for h in window:
            state["hours"][str(h)] = {"dir": self._hour_dir(h), "fresh": fresh[h], "qdir": self._hour_dir(
                h, self.quarantine_root), "qfresh": qfresh.get(h) if qfresh else None, "step": "writing"}
        self.store.save_rebuild(self.spec.log, state, lease)

    # swap ------------------------------------------------------------------------------------------------------
    def _swap_all(self, hours: list[int], reports: dict[int, HourReport], allow_shrink: bool, token: int) -> None:
        state = self.store.load_rebuild(self.spec.log) or {"hours": {}}
        lease = self._held_lease()
        for h in hours:
            r = reports[h]
            st = state["hours"].get(str(h))
            if r.records_new < r.records_now and not allow_shrink:
                r.action = REFUSED
                r.note = (f"the rebuild holds {r.records_new} records, the hour now {r.records_now} (expired from "
                          f"Kafka, or now quarantined); kept as it is (allow shrink to replace it)")
                log.warning("%s %s: %s", self.spec.log, r.to_dict()["hour"], r.note)
                if st:
                    remove_dirs(st["fresh"], *([st["qfresh"]] if st.get("qfresh") else []))
                    del state["hours"][str(h)]
                    self.store.save_rebuild(self.spec.log, state, lease)
                continue
            if st is None:
                continue
            if r.records_new == 0 and r.records_now == 0:
                r.action = UNCHANGED
                r.note = "no messages of this hour among the committed offsets"
                remove_dirs(st["fresh"], *([st["qfresh"]] if st.get("qfresh") else []))
                del state["hours"][str(h)]
                self.store.save_rebuild(self.spec.log, state, lease)
                continue
            existed = os.path.isdir(st["dir"])
            self._keep_others(h, st["dir"], st["fresh"])
            st["step"] = "written"
            self.store.save_rebuild(self.spec.log, state, lease)
            final_dir = st["dir"]
            r.registered = swap_hour(self.settings, self.spec, self.store, lease, state, h, self._catalog)
            r.files = [dataclasses.replace(f, path=os.path.join(final_dir, os.path.basename(f.path))) for f in r.files]
            r.action = REPLACED if existed else CREATED
            self.progress("swap", hours.index(h) + 1, len(hours))
        remove_work_dirs(state)
        self.store.clear_rebuild(self.spec.log, lease)

    def _keep_others(self, hour: int, d: str, fresh: str) -> None:
        """Hard-link into the fresh directory every file of the hour's directory that is not replaced: other hours of
        a daily directory. A directory shared with another log is refused (its runs do not take this log's lease)."""
        os.makedirs(fresh, exist_ok=True)
        if not os.path.isdir(d):
            return
        for n in os.listdir(d):
            parsed = FileName.parse(n)
            if parsed is not None and parsed.log == self.spec.log and parsed.hour == hour:
                continue
            if n.startswith("."):
                continue
            if parsed is None or parsed.log != self.spec.log:
                raise RebuildError(f"{d} holds {n}, which is not a file of log {self.spec.log!r}; a backfill "
                                   f"replaces whole directories, so a log's directories must not be shared")
            os.link(os.path.join(d, n), os.path.join(fresh, n))


class Rebuilder(HourRewriter):
    """Backfills: hours rebuilt from Kafka."""

    WHAT = "backfill"

    def _rewrite(self, hours: list[int], dry_run: bool, allow_shrink: bool) -> RebuildResult:
        spec, topic = self.spec, self.spec.topic
        parts = self.kafka.partitions(topic)
        marks = self.kafka.watermarks(topic, parts)
        committed = self.store.get(topic, parts)
        files = self._lake_files()
        tilings = {p: Tiling(((n.start, n.end) for n in files if n.partition == p and not _rebuild_q(n)),
                           committed[p] or 0) for p in parts}
        selected = set(hours)
        reports = {h: HourReport(h) for h in hours}
        for h in hours:
            mine = self._hour_files(h)
            reports[h].files_now = len(mine)
            reports[h].records_now = sum(count_records(_LOCAL.fs, path) for path in mine)
        token = self.lease.token if self.lease is not None else 0
        reads = []
        for window in windows(hours):
            ranges = self._ranges(window, files, committed, marks)
            reads.append({"hours": [f"{hour_start(window[0]):%Y-%m-%dT%H:00}",
                                    f"{hour_start(window[-1] + 1):%Y-%m-%dT%H:00}"],
                          "ranges": {str(p): list(r) for p, r in sorted(ranges.items())},
                          "messages": sum(e - s for s, e in ranges.values())})
            self._read_window(window, ranges, tilings, selected & set(window), reports, dry_run, token)
        if not dry_run:
            self._swap_all(hours, reports, allow_shrink, token)
        else:
            for r in reports.values():
                r.action = DRY_RUN
                if r.records_new < r.records_now:
                    r.note = f"would shrink from {r.records_now} to {r.records_new} records"
        return RebuildResult(spec.log, [reports[h] for h in hours], reads, dry_run)

    def _ranges(self, window: list[int], files: list[FileName], committed: dict, marks: dict
                ) -> dict[int, tuple[int, int]]:
        lateness = self.settings.backfill_lateness_ms
        t0, t1 = window[0] * HOUR_MS - lateness, (window[-1] + 1) * HOUR_MS + lateness
        parts = sorted(p for p, c in committed.items() if c is not None)
        starts = self.kafka.offsets_for_time(self.spec.topic, t0, parts) if parts else {}
        ends = self.kafka.offsets_for_time(self.spec.topic, t1, parts) if parts else {}
        hours = set(window)
        ranges = {}
        for p in parts:
            lo, hi = marks[p]
            s = starts[p] if starts[p] >= 0 else hi
            e = ends[p] if ends[p] >= 0 else hi
            if e <= s:  # no usable answer from the time index (tansu answers the partition start): read more
                e = committed[p]
            mine = [(n.start, n.end) for n in files if n.partition == p and n.hour in hours and not _rebuild_q(n)]
            if mine:
                s, e = min(s, min(a for a, _ in mine)), max(e, max(b for _, b in mine))
            s, e = max(s, lo), min(e, committed[p])
            if e > s:
                ranges[p] = (s, e)
        return ranges

    # read and write ---------------------------------------------------------------------------------------------------
    def _read_window(self, window, ranges, tilings, selected, reports, dry_run: bool, token: int) -> None:
        s, spec = self.settings, self.spec
        parser = build_parser(spec.format, schema_registry_url=s.avro_schema_registry_url,
                              schema_registry_config=s.avro_schema_registry_config)
        rows = spec.output_format == "parquet"
        w = s.writer
        schema = parquet_schema(s, spec) if rows else None
        decoder = Decoder.for_rows(parser, RowConverter(schema)) if rows else Decoder.for_text(parser)
        lo_ms, hi_ms = window[0] * HOUR_MS, (window[-1] + 1) * HOUR_MS - 1
        router = Router(lo_ms, hi_ms, text=not rows, line_breaks=w.line_breaks)
        fresh = {h: self._fresh(h, token) for h in window}
        qfresh = {h: self._fresh(h, token, self.quarantine_root) for h in window}

        def noop(**_):
            self._check()

        if rows:
            data = Sink("data", self.data_root, spec.log, spec.log_partition, spec.hourly, "parquet",
                        lambda stream: ParquetFile(stream, schema, w.parquet_codec, row_group_bytes(
                            {"parquet_block_size": w.parquet_block_size, "max_open_files": w.max_open_files})),
                        token, noop,
                        rows=True, directory_of=fresh.__getitem__, fsync=w.fsync)
        else:
            codec = spec.output_format
            data = Sink("data", self.data_root, spec.log, spec.log_partition, spec.hourly,
                        OUTPUT_FORMATS[codec].extension,
                        lambda stream: open_text(stream, codec, w.gzip_level, w.zstd_level), token, noop,
                        directory_of=fresh.__getitem__, fsync=w.fsync)
        quarantine = Sink("quarantine", self.quarantine_root, spec.log, spec.log_partition, spec.hourly,
                          REBUILD_QUARANTINE_EXT, lambda stream: open_text(stream, "gzip", w.gzip_level), token,
                          noop, directory_of=qfresh.__getitem__, fsync=w.fsync)
        if not dry_run:
            self._record_fresh(window, fresh, qfresh)
        # per (partition, hour, segment start): the hour's data file and its quarantine file in that segment
        data_files: dict[tuple[int, int, int], HourFile] = {}
        q_files: dict[tuple[int, int, int], HourFile] = {}
        current: dict[int, tuple[int, int]] = {}  # partition -> the tiling segment being written
        total = sum(e - s_ for s_, e in ranges.values())
        done = 0

        def close_segment(p: int) -> None:
            seg = current.get(p)
            if seg is None:
                return
            for files, sink in ((data_files, data), (q_files, quarantine)):
                for key in [k for k in files if k[0] == p and k[2] == seg[0]]:
                    for info in sink.publish([files.pop(key)], seg[1]):
                        if info.kind == "data":
                            reports[info.hour].files.append(info)
                            reports[info.hour].files_new += 1

        def file_for(files: dict, sink: Sink, p: int, h: int, o: int):
            seg = tilings[p].segment(o)
            if current.get(p) != seg:
                close_segment(p)
                current[p] = seg
            key = (p, h, seg[0])
            f = files.get(key)
            if f is None:
                f = files[key] = sink.open(p, h, seg[0])
            return f

        reader = RangeReader(self.kafka, spec.topic, ranges, batch_size=s.kafka_batch_size,
                             idle_timeout_s=s.kafka_timeout_s, check=self._check)
        try:
            for p, msgs in reader.runs():
                values = [m.value() for m in msgs]
                ts, out, sizes, bad = decoder.decode(values)
                hours = router.route(ts, out, sizes, bad)
                for i, h in enumerate(hours):
                    if h is None:  # filtered, or bad: ours only if its event time is known and in a selected hour
                        t = ts[i]
                        if i not in bad or t is None or t // HOUR_MS not in selected:
                            continue
                        h = t // HOUR_MS
                        reports[h].quarantined_new += 1
                        if not dry_run:
                            rec = _quarantine_line(spec.log, p, msgs[i], bad[i])
                            quarantine.append(file_for(q_files, quarantine, p, h, msgs[i].offset()), rec, len(rec))
                        continue
                    if h not in selected:
                        continue
                    reports[h].records_new += 1
                    if not dry_run:
                        data.append(file_for(data_files, data, p, h, msgs[i].offset()), out[i], sizes[i])
                data.flush_all_if_over()
                done += len(msgs)
                self.progress("read", done, total)
            for p in list(current):
                close_segment(p)
            data.sync()
            quarantine.sync()
        except BaseException:
            data.abort()
            quarantine.abort()
            raise


def _rebuild_q(n: FileName) -> bool:
    return n.ext == REBUILD_QUARANTINE_EXT


def _quarantine_line(log_name: str, p: int, m, reason: str) -> bytes:
    raw = m.value()
    return json.dumps({
        "log": log_name, "partition": p, "offset": m.offset(), "kafka_timestamp": m.timestamp()[1],
        "error": reason, "rebuild": True,
        "raw_base64": base64.b64encode(raw).decode("ascii") if raw is not None else None,
    }, sort_keys=True).encode() + b"\n"


_LOCAL = Storage.for_path("/")[0]


