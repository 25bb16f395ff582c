"""Read a plan's ranges and write their files: read -> decode -> route -> segment -> sink, in this process or split
over worker processes (:ingest-workers), a Kafka partition's whole range in one worker.

Every choice that decides a file (cuts, names, bytes) depends only on a partition's own messages and the plan, so a
run writes the same files whatever the number of workers, and a replay with another number writes the same bytes.
Workers are forked after the lease is taken; they fence what they publish with the run's lease value, and the parent
keeps renewing the lease while they work.
"""
from __future__ import annotations

import base64
import dataclasses
import json
import logging
import multiprocessing
import multiprocessing.connection
from typing import cast

from ..config import Settings
from ..formats import build_parser
from ..kafka import KafkaSource, KafkaUnavailable, TopicNotFound
from ..lease import Lease
from ..model import QUARANTINE_EXT, Counts, FileInfo, LogSpec, Plan
from ..offsets import LeaseLost, OffsetError, OffsetStore, RedisUnavailable, connect
from ..output_formats import OUTPUT_FORMATS, open_text
from ..partitioning import HOUR_MS
from ..schemas import RowConverter
from ..writers import ParquetFile
from .decode import Decoder
from .plan import IngestError
from .read import RangeReader, ReadStalled
from .route import Router
from .segment import CutRules, SegmentWriter
from .sink import FLUSH_BYTES, Sink
from .vector import VectorDecoder

log = logging.getLogger(__name__)

PARQUET_MEMORY = 48 << 20  # what the row groups being gathered may hold together, at most


@dataclasses.dataclass
class Written:
    files: list[FileInfo]
    counts: Counts
    reasons: dict[str, int]

    def add(self, other: Written) -> None:
        self.files += other.files
        self.counts.add(other.counts)
        for k, v in other.reasons.items():
            self.reasons[k] = self.reasons.get(k, 0) + v


def row_group_bytes(params: dict) -> int:
    """Input bytes per Parquet row group: :parquet-block-size, or less so that the files a run may have open
    together (:max-open-files) gather at most PARQUET_MEMORY -- decided from the plan, so a replay cuts row groups
    where its first attempt did."""
    block = params.get("parquet_block_size", 20_971_520)  # (plans of earlier versions do not hold it)
    return max(1 << 20, min(block, PARQUET_MEMORY // max(1, params["max_open_files"])))


def write_plan(settings: Settings, spec: LogSpec, plan: Plan, schema, store: OffsetStore, kafka: KafkaSource,
               lease: Lease, workers: int = 1, progress=None) -> Written:
    active = sorted(p for p, (s, e) in plan.ranges.items() if e > s)
    groups = [g for g in (active[i::max(1, workers)] for i in range(max(1, workers))) if g]
    if len(groups) <= 1:
        return write_ranges(settings, spec, plan, schema, store, kafka, lease, active, progress)
    return _in_workers(settings, spec, plan, schema, lease, groups)


def write_ranges(settings: Settings, spec: LogSpec, plan: Plan, schema, store: OffsetStore, kafka: KafkaSource,
                 lease: Lease, partitions: list[int], progress=None) -> Written:
    """Read PARTITIONS of the plan and write their files; every file published, nothing committed."""
    s, params = settings, plan.params
    parser = build_parser(spec.format, schema_registry_url=s.avro_schema_registry_url,
                          schema_registry_config=s.avro_schema_registry_config, now_ms=lambda: plan.created_ms)
    rows = schema is not None
    w = s.writer
    topic = spec.topic
    ranges = {p: plan.ranges[p] for p in partitions}

    def record(temps=(), finals=()):
        store.record_paths(topic, lease, temps=list(temps), finals=list(finals))

    if rows:
        decoder = Decoder.for_rows(parser, RowConverter(schema))
        data = Sink("data", params["data_root"], topic, spec.log_partition, spec.hourly, "parquet",
                    lambda stream: ParquetFile(stream, schema, w.parquet_codec, row_group_bytes(params)), lease.token,
                    record, rows=True, flush_bytes=FLUSH_BYTES, fsync=w.fsync)
    else:
        decoder = Decoder.for_text(parser)
        codec = spec.output_format
        data = Sink("data", params["data_root"], topic, spec.log_partition, spec.hourly,
                    OUTPUT_FORMATS[codec].extension,
                    lambda stream: open_text(stream, codec, w.gzip_level, w.zstd_level), lease.token, record,
                    fsync=w.fsync)
    quarantine = Sink("quarantine", params["quarantine_root"], topic, spec.log_partition, spec.hourly,
                      QUARANTINE_EXT, lambda stream: open_text(stream, "gzip", w.gzip_level), lease.token, record,
                      fsync=w.fsync)
    line_breaks = params.get("line_breaks", "quarantine")
    router = Router(params["ts_lo_ms"], params["ts_hi_ms"], text=not rows, line_breaks=line_breaks)
    vector = VectorDecoder.for_parser(parser, decoder.parse, params["ts_lo_ms"], params["ts_hi_ms"], schema,
                                      line_breaks)
    rules = CutRules(params["rollover_size"], params.get("open_per_partition", params["max_open_files"]))
    writer = SegmentWriter(rules, data, quarantine, {p: st for p, (st, e) in ranges.items()},
                           plan.created_ms // HOUR_MS)
    reader = RangeReader(kafka, topic, ranges, batch_size=s.kafka_batch_size, idle_timeout_s=s.kafka_timeout_s,
                         check=lease.check)
    counts = Counts()
    reasons: dict[str, int] = {}
    total = sum(e - st for st, e in ranges.values())
    try:
        for p, msgs in reader.runs():
            values = [m.value() for m in msgs]

            def quarantine_record(i: int, reason: str, msgs=msgs, p=p) -> bytes:
                key = reason.split(":")[0][:80]
                reasons[key] = reasons.get(key, 0) + 1
                return quarantine_line(spec.log, p, msgs[i], reason, plan.created_ms)

            batch = vector.decode(values) if vector is not None else None
            if batch is not None:  # the whole batch at once (vector.py)
                writer.add_runs(p, msgs, batch, quarantine_record)
                bad = batch.bad
            else:  # message by message
                ts, out, sizes, bad = decoder.decode(values)
                hours = router.route(ts, out, sizes, bad)
                writer.add(p, [m.offset() for m in msgs], hours, out, sizes, bad, quarantine_record)
                counts.filtered += sum(1 for v in values if v is None)
            data.flush_all_if_over()
            counts.read += len(values)
            counts.quarantined += len(bad)
            if progress is not None:
                progress("read", counts.read, total)
        lease.check()
        files = writer.finish({p: e for p, (st, e) in ranges.items()})
        data.sync()
        quarantine.sync()
    except BaseException:
        data.abort()
        quarantine.abort()
        raise
    counts.written = counts.read - counts.filtered - counts.quarantined
    return Written(files, counts, reasons)


def quarantine_line(log_name: str, p: int, m, reason: str, read_at_ms: int) -> bytes:
    raw = m.value()
    return json.dumps({
        "log": log_name, "partition": p, "offset": m.offset(), "kafka_timestamp": m.timestamp()[1],
        "error": reason, "read_at_ms": read_at_ms,
        "raw_base64": base64.b64encode(raw).decode("ascii") if raw is not None else None,
    }, sort_keys=True).encode() + b"\n"


# --- workers --------------------------------------------------------------------------------------------------------

# Errors a worker reports by name, raised again as themselves in the run (others become IngestError).
_ERRORS = {e.__name__: e for e in (KafkaUnavailable, TopicNotFound, ReadStalled, LeaseLost, OffsetError,
                                   RedisUnavailable, IngestError)}


def _worker(conn, settings: Settings, spec: LogSpec, plan: Plan, schema, owner: str, token: int, partitions):
    try:
        store = OffsetStore(connect(settings.redis), settings.etl_group)
        fence = Lease(store, spec.topic, owner, token, settings.lease_ttl_s)  # the run's lease, not renewed here
        out = write_ranges(settings, spec, plan, schema, store, KafkaSource(settings), fence, partitions)
        conn.send(("ok", out))
    except BaseException as e:  # noqa: BLE001 - reported to the run, which fails with it
        conn.send(("error", type(e).__name__, str(e)))
    finally:
        conn.close()


def _in_workers(settings: Settings, spec: LogSpec, plan: Plan, schema, lease: Lease, groups: list[list[int]]
                ) -> Written:
    ctx = multiprocessing.get_context("fork")  # the plan, settings and imports are there already
    procs, pipes = [], {}
    for group in groups:
        recv, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_worker, args=(send, settings, spec, plan, schema, lease.owner, lease.token, group),
                           name=f"ingest-{spec.topic}-{'-'.join(map(str, group))}", daemon=True)
        proc.start()
        send.close()
        procs.append(proc)
        pipes[recv] = group
    total = Written([], Counts(), {})
    failure = None
    try:
        while pipes and failure is None:
            ready = multiprocessing.connection.wait(list(pipes), timeout=1.0)
            for recv in cast("list[multiprocessing.connection.Connection]", ready):  # the pipes given
                group = pipes.pop(recv)
                try:
                    answer = recv.recv()
                except EOFError:
                    answer = ("error", "IngestError", "the worker process died without an answer")
                if answer[0] == "ok":
                    total.add(answer[1])
                else:
                    failure = _ERRORS.get(answer[1], IngestError)(
                        f"{answer[2]} (worker for partitions {group})" if answer[1] not in _ERRORS else answer[2])
            lease.check()
    finally:
        for proc in procs:
            if failure is not None or proc.is_alive():
                proc.join(0.1 if failure is None else 0)
                if proc.is_alive():
                    proc.kill()
            proc.join()
    if failure is not None:
        raise failure
    total.files.sort(key=lambda f: (f.kind, f.partition, f.start, f.hour))
    return total
