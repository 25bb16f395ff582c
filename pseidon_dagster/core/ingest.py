"""One micro-batch run of one log:  plan -> read -> parse -> route -> write -> publish -> register -> commit.

Exactly-once files:
- The plan (per Kafka partition [start, end)) is stored in Redis before reading; a failed run's retry replays it.
- Each partition's range is cut into segments deterministically (by bytes per file and open files, never by wall
  clock), and each segment's messages fan out to one file per event-time hour. Every file is named after its hour,
  partition and segment [start, end), so a replay produces the same names and overwrites: no duplicates.
- Files are written under a hidden temporary name and published by rename.
- Offsets are committed to Redis only after every file is published and its partitions registered.
"""
from __future__ import annotations

import base64
import dataclasses
import json
import logging
import time
import uuid
from typing import Callable

from confluent_kafka import KafkaError, TopicPartition

from .config import Settings
from .formats import MessageError, RegistryUnavailable, build_parser
from .kafka import KafkaSource, KafkaUnavailable
from .logtable import LogSpec
from .offsets import OffsetError, OffsetStore, Plan, now_ms, start_offset
from .partitioning import FIRST_HOUR, HOUR_MS, LAST_HOUR, FileName, partition_dir
from .schemas import RowConverter, load_schema_file
from .storage import Storage
from .writers import EXTENSIONS, ParquetFile, open_text

log = logging.getLogger(__name__)

FLUSH_BYTES = 1 << 20  # a text file's buffer is compressed and written at this size
# Bound on what all open files of a run buffer together; past it every buffer is flushed. Parquet rows are Python
# tuples until flushed (several times their input size), hence the lower bound.
MAX_BUFFERED_TEXT = 64 << 20
MAX_BUFFERED_ROWS = 16 << 20
QUARANTINE_EXT = "jsonl.gz"


class IngestError(RuntimeError):
    pass


class ReadStalled(IngestError):
    pass


@dataclasses.dataclass
class FileInfo:
    path: str
    kind: str  # "data" | "quarantine"
    hour: int
    partition: int
    start: int
    end: int
    records: int
    raw_bytes: int
    bytes: int

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class IngestResult:
    log: str
    plan_id: str | None = None
    replayed: bool = False
    read: int = 0
    written: int = 0
    filtered: int = 0
    quarantined: int = 0
    files: list[FileInfo] = dataclasses.field(default_factory=list)
    offsets: dict[int, tuple[int, int]] = dataclasses.field(default_factory=dict)
    lost: dict[int, tuple[int, int]] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0
    committed: bool = False
    lag_after: int | None = None
    registered: list[str] = dataclasses.field(default_factory=list)
    quarantine_reasons: dict[str, int] = dataclasses.field(default_factory=dict)
    # The log's row as the plan froze it (a replay writes, and registers, what was planned).
    spec: LogSpec | None = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    @property
    def data_files(self) -> list[FileInfo]:
        return [f for f in self.files if f.kind == "data"]

    @property
    def hours(self) -> list[int]:
        return sorted({f.hour for f in self.data_files})

    def to_dict(self) -> dict:
        return {
            "log": self.log, "plan_id": self.plan_id, "replayed": self.replayed,
            "read": self.read, "written": self.written, "filtered": self.filtered, "quarantined": self.quarantined,
            "files": [f.path for f in self.files], "file_count": len(self.files), "bytes": self.bytes,
            "offsets": {str(p): list(r) for p, r in sorted(self.offsets.items())},
            "lost": {str(p): list(r) for p, r in sorted(self.lost.items())},
            "seconds": round(self.seconds, 3), "committed": self.committed, "lag_after": self.lag_after,
            "registered": self.registered, "quarantine_reasons": self.quarantine_reasons,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


class _Bucket:
    """Lines for one (partition, hour) file of the current segment."""

    __slots__ = ("hour", "lines", "size", "flushed", "records", "file", "tmp")

    def __init__(self, hour: int):
        self.hour = hour
        self.lines: list[bytes] = []
        self.size = 0
        self.flushed = 0
        self.records = 0
        self.file = None
        self.tmp = None


class _Sink:
    """Writes the buckets of one kind (data or quarantine) of one log, and publishes them at segment cuts."""

    def __init__(self, kind: str, root: str, spec: LogSpec, codec: str, ext: str, settings: Settings,
                 schema=None):
        self.kind = kind
        self.schema = schema
        self.storage, self.root = Storage.for_path(root)
        self.spec = spec
        self.codec = codec
        self.ext = ext
        self.settings = settings
        self.published: list[FileInfo] = []
        self._dirs: set[str] = set()

    def _dir(self, hour: int) -> str:
        d = partition_dir(self.root, self.spec.log_partition, hour, self.spec.hourly)
        if d not in self._dirs:
            self.storage.makedirs(d)
            self._dirs.add(d)
        return d

    def flush(self, b: _Bucket, partition: int, seg_start: int) -> None:
        if b.file is None:
            d = self._dir(b.hour)
            b.tmp = f"{d}/.{self.spec.log}.h{b.hour}.p{partition}.o{seg_start}.{self.ext}.tmp"
            w = self.settings.writer
            stream = self.storage.open_output(b.tmp)
            if self.codec == "parquet":
                b.file = ParquetFile(stream, self.schema, w.parquet_codec)
            else:
                b.file = open_text(stream, self.codec, w.gzip_level, w.zstd_level)
        if b.lines:
            b.file.write(b.lines if self.codec == "parquet" else b"".join(b.lines))
            b.lines.clear()
        b.flushed = b.size

    def close(self, b: _Bucket, partition: int, seg_start: int, seg_end: int) -> FileInfo:
        self.flush(b, partition, seg_start)
        b.file.close()
        name = FileName(self.spec.log, b.hour, partition, seg_start, seg_end, self.ext)
        final = f"{self._dir(b.hour)}/{name}"
        self.storage.publish(b.tmp, final)
        info = FileInfo(final, self.kind, b.hour, partition, seg_start, seg_end, b.records, b.size,
                        self.storage.size(final))
        self.published.append(info)
        return info

    def abort(self, b: _Bucket) -> None:
        try:
            if b.file is not None:
                b.file.close()
        except Exception:  # noqa: BLE001 - best effort cleanup of a failed run
            pass
        if b.tmp:
            self.storage.delete(b.tmp)


class Ingestor:
    """Runs one log once. Construct per run; not thread-safe."""

    def __init__(self, settings: Settings, spec: LogSpec, store: OffsetStore, kafka: KafkaSource | None = None,
                 *, register: Callable[[IngestResult], list[str]] | None = None,
                 before_commit: Callable[[IngestResult], None] | None = None, lock_token: str | None = None):
        self.settings = settings
        self.spec = spec
        self.store = store
        self.kafka = kafka or KafkaSource(settings)
        self.register = register
        self.before_commit = before_commit
        self.lock_token = lock_token
        self._token: str | None = None

    # plan -----------------------------------------------------------------------------------------------------
    def plan(self) -> tuple[Plan | None, bool]:
        """The plan to run: a stored one (replayed) or a new one. None when there is nothing to read."""
        topic = self.spec.topic
        stored = self.store.load_plan(topic)
        if stored is not None:
            committed = self.store.get(topic, list(stored.ranges))
            if all(committed.get(p) is not None and committed[p] >= e for p, (_, e) in stored.ranges.items()):
                log.info("plan %s of %s was already committed; clearing it", stored.plan_id, topic)
                self.store.clear_plan(topic)
            else:
                log.warning("replaying stored plan %s of %s (a previous run did not commit)", stored.plan_id, topic)
                marks = self.kafka.watermarks(topic, list(stored.ranges))
                expired = {p: (s, marks[p][0]) for p, (s, e) in stored.ranges.items() if e > s and s < marks[p][0]}
                if expired:
                    raise OffsetError(
                        f"{topic}: stored plan {stored.plan_id} cannot be replayed: Kafka expired offsets it must "
                        f"read ({', '.join(f'[{p}] {a}..{b - 1}' for p, (a, b) in sorted(expired.items()))}) since "
                        f"it was made. Files of its failed attempt may be in the lake; check them, then run "
                        f"`pseidon-dagster offsets reset {topic} --to earliest` (which also drops the plan)")
                return stored, True
        parts = self.kafka.partitions(topic)
        marks = self.kafka.watermarks(topic, parts)
        current = self.store.get(topic, parts)
        ranges, lost, initial = {}, {}, {}
        cap = self.settings.max_offsets_per_partition
        for p in parts:
            lo, hi = marks[p]
            cur = start_offset(current.get(p), lo, hi, self.settings.kafka_use_earliest)
            if current.get(p) is None:
                initial[p] = cur
            if cur < lo:
                lost[p] = (cur, lo)
                log.error("LOST DATA: %s[%d] offsets %d..%d expired from Kafka before they were read; "
                          "continuing from %d", topic, p, cur, lo - 1, lo)
                cur = lo
            if cur > hi:
                raise OffsetError(
                    f"{topic}[{p}]: stored offset {cur} is beyond Kafka's high watermark {hi} (was the topic "
                    f"re-created?). Reset it with `pseidon-dagster offsets reset {topic} --partition {p} "
                    f"--to latest|earliest|OFFSET` after checking what was lost")
            ranges[p] = (cur, min(hi, cur + cap))
        created = now_ms()
        plan = Plan(topic, ranges, created, uuid.uuid4().hex[:16], lost, self._params(created))
        if plan.messages == 0 and not lost:
            if initial:  # first sight of these partitions: remember where we start
                self.store.set(topic, initial)
            return None, False
        self.store.save_plan(plan)  # (an empty plan with a lost range still commits the jump past it)
        return plan, False

    def _params(self, created_ms: int) -> dict:
        spec, w = self.spec, self.settings.writer
        if w.allow_all_ts:
            lo, hi = FIRST_HOUR * HOUR_MS, (LAST_HOUR + 1) * HOUR_MS - 1
        else:
            lo = max(FIRST_HOUR * HOUR_MS, created_ms - w.ts_window_back_ms)
            hi = min((LAST_HOUR + 1) * HOUR_MS - 1, created_ms + w.ts_window_ahead_ms)
        return {
            "format": spec.format, "output_format": spec.output_format, "base_partition": spec.base_partition,
            "log_partition": spec.log_partition, "quarantine": spec.quarantine, "date_format": spec.date_format,
            "rollover_size": w.rollover_size, "max_open_files": w.max_open_files, "ts_lo_ms": lo, "ts_hi_ms": hi,
        }

    def _frozen(self, plan: Plan) -> tuple[LogSpec, dict]:
        """The spec and cut rules a plan was made with (a replay must not pick up changes made since)."""
        p = plan.params or self._params(plan.created_ms)
        fields = ("format", "output_format", "base_partition", "log_partition", "quarantine", "date_format")
        changed = [f for f in fields if f in p and getattr(self.spec, f) != p[f]]
        if changed:
            log.warning("log %s: %s changed since plan %s was made; the replay uses the planned values, the next "
                        "plan the new ones", plan.log, ", ".join(changed), plan.plan_id)
        spec = dataclasses.replace(self.spec, **{f: p[f] for f in fields if f in p})
        return spec, p

    # run ------------------------------------------------------------------------------------------------------
    def run(self) -> IngestResult:
        """All steps in one call (the CLI): stage -> register -> commit."""
        result = self.stage()
        try:
            self.register_files(result)
            return self.commit(result)
        except BaseException:
            self.release()
            raise

    # The three steps, usable apart (Dagster runs them as separate ops so Hive DDL can go through a pool). The run
    # lock is taken by stage() and released by commit(), or by release() when a step fails.

    def stage(self) -> IngestResult:
        """Plan, read, parse, route, write and publish. Nothing is committed."""
        t0 = time.monotonic()
        topic = self.spec.topic
        result = IngestResult(topic)
        self._token = self.store.acquire(topic, token=self.lock_token)
        try:
            plan, replayed = self.plan()
            if plan is None:
                result.lag_after = 0
                result.committed = True
                self.release()
                return result
            result.plan_id, result.replayed = plan.plan_id, replayed
            result.offsets, result.lost = dict(plan.ranges), dict(plan.lost)
            if plan.messages:
                self._read(plan, result)
            return result
        except BaseException:
            self.release()
            raise
        finally:
            result.seconds = time.monotonic() - t0

    def register_files(self, result: IngestResult) -> IngestResult:
        """Register the Hive partitions of the published files (when the log has a registration hook)."""
        t0 = time.monotonic()
        if self.register is not None and result.data_files and not result.committed:
            result.registered = list(self.register(result))
        result.seconds += time.monotonic() - t0
        return result

    def commit(self, result: IngestResult) -> IngestResult:
        """Store the planned end offsets and clear the plan, then release the lock."""
        if result.committed:
            return result
        t0 = time.monotonic()
        topic = self.spec.topic
        plan = self.store.load_plan(topic)
        if plan is None or plan.plan_id != result.plan_id:
            found = plan.plan_id if plan else "none"
            raise IngestError(f"{topic}: the stored plan is {found}, not {result.plan_id}; nothing committed "
                              f"(another run took over?)")
        if self.before_commit is not None:
            self.before_commit(result)
        self.store.commit(plan)
        result.committed = True
        self.release()
        try:
            marks = self.kafka.watermarks(topic, list(plan.ranges))
            result.lag_after = sum(max(0, marks[p][1] - e) for p, (_, e) in plan.ranges.items())
        except KafkaUnavailable:
            result.lag_after = None
        result.seconds += time.monotonic() - t0
        return result

    def release(self) -> None:
        token = self._token or self.lock_token
        if token:
            self.store.release(self.spec.topic, token)
        self._token = None

    def _read(self, plan: Plan, result: IngestResult) -> None:
        s = self.settings
        spec, params = self._frozen(plan)
        result.spec = spec
        parser = build_parser(spec.format, schema_registry_url=s.avro_schema_registry_url,
                              now_ms=lambda: plan.created_ms)
        text = spec.output_format != "parquet"
        schema = None
        if text:
            parse = parser.line
            flush_bytes, max_buffered = FLUSH_BYTES, MAX_BUFFERED_TEXT
        else:
            schema = parquet_schema(s, spec)
            parse = _row_parser(parser.row, RowConverter(schema))
            flush_bytes, max_buffered = s.writer.parquet_block_size, MAX_BUFFERED_ROWS
        data = _Sink("data", s.resolve_path(spec.base_partition), spec, spec.output_format,
                     EXTENSIONS[spec.output_format], s, schema)
        quarantine = _Sink("quarantine", s.resolve_path(spec.quarantine), spec, "gzip", QUARANTINE_EXT, s)
        lo_ms, hi_ms = params["ts_lo_ms"], params["ts_hi_ms"]
        q_hour = plan.created_ms // HOUR_MS
        rollover, max_open = params["rollover_size"], params["max_open_files"]

        ends = {p: e for p, (st, e) in plan.ranges.items() if e > st}
        seg_start = {p: st for p, (st, e) in plan.ranges.items()}
        buckets: dict[int, dict[int, _Bucket]] = {p: {} for p in ends}
        qbuckets: dict[int, _Bucket] = {}
        reasons: dict[str, int] = {}

        def cut(p: int, boundary: int) -> None:
            st = seg_start[p]
            for b in buckets[p].values():
                data.close(b, p, st, boundary)
            buckets[p] = {}
            qb = qbuckets.pop(p, None)
            if qb is not None:
                quarantine.close(qb, p, st, boundary)
            seg_start[p] = boundary

        def to_quarantine(m, p: int, reason: str) -> None:
            qb = qbuckets.get(p)
            if qb is None:
                qb = qbuckets[p] = _Bucket(q_hour)
            raw = m.value()
            rec = json.dumps({
                "log": spec.log, "partition": p, "offset": m.offset(), "kafka_timestamp": m.timestamp()[1],
                "error": reason, "read_at_ms": plan.created_ms,
                "raw_base64": base64.b64encode(raw).decode("ascii") if raw is not None else None,
            }, sort_keys=True).encode() + b"\n"
            qb.lines.append(rec)
            qb.size += len(rec)
            qb.records += 1
            key = reason.split(":")[0][:80]
            reasons[key] = reasons.get(key, 0) + 1
            if qb.size - qb.flushed >= FLUSH_BYTES:
                quarantine.flush(qb, p, seg_start[p])

        def buffered() -> int:
            return sum(b.size - b.flushed for hbk in buckets.values() for b in hbk.values())

        def flush_all() -> None:
            for part, hbk in buckets.items():
                for b in hbk.values():
                    if b.lines:
                        data.flush(b, part, seg_start[part])

        pending = 0
        consumer = self.kafka.consumer()
        try:
            consumer.assign([TopicPartition(spec.topic, p, plan.ranges[p][0]) for p in ends])
            remaining = set(ends)
            idle_since = time.monotonic()
            batches = 0
            read = written = filtered = quarantined = 0
            cur_p, hb, end_p = -1, None, 0
            while remaining:
                msgs = consumer.consume(s.kafka_batch_size, 0.5)
                if not msgs:
                    if time.monotonic() - idle_since > s.kafka_timeout_s:
                        raise ReadStalled(
                            f"no data from Kafka for {s.kafka_timeout_s:.0f}s while reading {spec.topic} "
                            f"partitions {sorted(remaining)} (planned up to {ends}); nothing was committed")
                    continue
                idle_since = time.monotonic()
                batches += 1
                if batches % 50 == 0:
                    self.store.refresh(spec.topic, self._token)
                for m in msgs:
                    err = m.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            p = m.partition()
                            if p in remaining and m.offset() >= ends[p]:
                                remaining.discard(p)
                            continue
                        raise KafkaUnavailable(f"reading {spec.topic}[{m.partition()}]: {err.str()}")
                    p = m.partition()
                    if p != cur_p:
                        if p not in ends:
                            continue
                        cur_p, hb, end_p = p, buckets[p], ends[p]
                    off = m.offset()
                    if off >= end_p:
                        if p in remaining:
                            remaining.discard(p)
                            consumer.pause([TopicPartition(spec.topic, p)])
                        continue
                    read += 1
                    v = m.value()
                    if v is None:
                        filtered += 1
                    else:
                        try:
                            ts, line = parse(v)
                        except MessageError as e:
                            quarantined += 1
                            to_quarantine(m, p, str(e))
                            ts = None
                        except RegistryUnavailable:
                            raise  # not the message's fault: fail the run, commit nothing
                        except Exception as e:  # noqa: BLE001 - a parser bug must not take the batch down
                            quarantined += 1
                            to_quarantine(m, p, f"{type(e).__name__}: {e}")
                            ts = None
                        if ts is not None:
                            if ts < lo_ms or ts > hi_ms:
                                quarantined += 1
                                to_quarantine(m, p, f"timestamp {ts} outside the accepted window "
                                                    f"[{lo_ms}, {hi_ms}] (see :writer :allow-all-ts)")
                            else:
                                hour = ts // HOUR_MS
                                b = hb.get(hour)
                                if b is None:
                                    b = hb[hour] = _Bucket(hour)
                                n = len(line) if text else len(v)
                                b.lines.append(line)
                                b.size += n
                                b.records += 1
                                written += 1
                                pending += n
                                if b.size - b.flushed >= flush_bytes:
                                    pending -= b.size - b.flushed
                                    data.flush(b, p, seg_start[p])
                                if b.size >= rollover or len(hb) > max_open:
                                    cut(p, off + 1)
                                    hb = buckets[p]
                                    pending = buffered()
                                elif pending > max_buffered:
                                    flush_all()
                                    pending = 0
                    if off == end_p - 1:
                        remaining.discard(p)
                        consumer.pause([TopicPartition(spec.topic, p)])
            for p in sorted(ends):
                cut(p, ends[p])
        except BaseException:
            for hbk in buckets.values():
                for b in hbk.values():
                    data.abort(b)
            for b in qbuckets.values():
                quarantine.abort(b)
            raise
        finally:
            consumer.close()
        result.read, result.written, result.filtered, result.quarantined = read, written, filtered, quarantined
        result.quarantine_reasons = reasons
        result.files = data.published + quarantine.published


def _row_parser(row, convert):
    def parse(value: bytes):
        ts, r = row(value)
        return ts, convert(r)

    return parse


def parquet_schema(settings: Settings, spec: LogSpec):
    """The Parquet schema of a log: its Hive table's columns (re-read every run) when hive_url is set, else
    <schema-dir>/<log>.json."""
    if spec.hive_url and spec.hive_table_name:
        from .catalog import hive_schema_for

        schema = hive_schema_for(settings, spec)
        if schema is not None:
            return schema
    schema = load_schema_file(settings.schema_dir, spec.log)
    if schema is None:
        raise IngestError(f"log {spec.log!r} writes parquet but has no schema: set hive_url/hive_table_name to a "
                          f"Hive table, or create {settings.schema_dir}/{spec.log}.json")
    return schema


def ingest(settings: Settings, spec: LogSpec, store: OffsetStore, **kwargs) -> IngestResult:
    return Ingestor(settings, spec, store, **kwargs).run()
