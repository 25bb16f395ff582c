"""Quarantine re-drive: after a fix (a format, a schema), land the quarantined messages that now parse.

`show` summarises a log's quarantine by reason. `redrive` re-parses the raw bytes kept in quarantine files (chosen
by the hour their run read them) with the log's current format and lands the messages that now parse in their event
hours, exactly once:
- the messages of quarantine file `<log>-R.p<p>.o<s>-<e>.jsonl.gz` that land in hour H go to the data file
  `<log>-H.p<p>.o<s>-<e>.redrive.<ext>`: named for the same offset range as the segment they were read in, so the
  log's offset ranges still chain, and a second re-drive writes the same names with the same bytes -- it adds
  nothing; a killed re-drive is simply run again;
- every re-driven record is marked in a hidden sidecar beside its quarantine file (`.<file>.redriven.json`: offset
  -> the data file), which `show` counts;
- it holds the log's lease (no run writes meanwhile), registers the hours' Hive partitions, and publishes each file
  by rename after an fsync; a backfill of the hour later replaces re-driven files with what Kafka still holds.
Messages that still do not parse stay where they are.
"""
from __future__ import annotations

import base64
import collections
import dataclasses
import gzip
import json
import os
import time

from .formats import MessageError, RegistryUnavailable, build_parser
from .ingest.plan import resolved_root
from .ingest.route import escape_line
from .ingest.run import parquet_schema
from .ingest.write import row_group_bytes
from .lease import Lease, new_owner
from .model import FileInfo, IngestResult
from .output_formats import OUTPUT_FORMATS, open_text
from .partitioning import FIRST_HOUR, HOUR_MS, LAST_HOUR, FileName, hour_start, partition_dir
from .schemas import RowConverter
from .storage import Storage
from .writers import ParquetFile, TextFile

REDRIVE = "redrive"


@dataclasses.dataclass
class RedriveResult:
    log: str
    files_read: int = 0
    records_read: int = 0
    landed: int = 0
    still_bad: int = 0
    hours: dict[int, int] = dataclasses.field(default_factory=dict)
    files: list[FileInfo] = dataclasses.field(default_factory=list)
    registered: list[str] = dataclasses.field(default_factory=list)
    reasons_left: dict[str, int] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0

    def to_json(self) -> str:
        return json.dumps({
            "log": self.log, "quarantine_files": self.files_read, "records": self.records_read,
            "landed": self.landed, "still_quarantined": self.still_bad,
            "hours": {f"{hour_start(h):%Y-%m-%dT%H:00}": n for h, n in sorted(self.hours.items())},
            "files": [f.path for f in self.files], "registered": self.registered,
            "reasons_left": self.reasons_left, "seconds": round(self.seconds, 3)}, sort_keys=True)


def quarantine_files(settings, spec, first_hour: int | None = None, end_hour: int | None = None):
    """(path, FileName) of the log's quarantine files read in [first_hour, end_hour)."""
    storage, base = Storage.for_path(resolved_root(settings, spec.quarantine))
    top = f"{base.rstrip('/')}/{spec.log_partition}"
    out = []
    for path in storage.list_files(top):
        n = FileName.parse(path.rsplit("/", 1)[-1])
        if n is None or n.log != spec.log or not n.ext.endswith("jsonl.gz") or "/." in path[len(top):]:
            continue
        if (first_hour is None or n.hour >= first_hour) and (end_hour is None or n.hour < end_hour):
            out.append((path, n))
    return sorted(out, key=lambda pn: (pn[1].hour, pn[1].partition, pn[1].start))


def records(path: str) -> list[dict]:
    with gzip.open(path, "rb") as f:
        return [json.loads(line) for line in f if line.strip()]


def _marker(path: str) -> str:
    d, name = os.path.split(path)
    return os.path.join(d, f".{name}.redriven.json")


def show(settings, spec, first_hour: int | None = None, end_hour: int | None = None) -> dict:
    """Quarantined records by reason (the reason's category) and how many were re-driven since."""
    reasons: collections.Counter = collections.Counter()
    total = redriven = 0
    files = quarantine_files(settings, spec, first_hour, end_hour)
    for path, _ in files:
        done = set(json.load(open(_marker(path)))) if os.path.exists(_marker(path)) else set()
        for rec in records(path):
            total += 1
            if str(rec.get("offset")) in done:
                redriven += 1
            else:
                reasons[str(rec.get("error", "")).split(":")[0][:80]] += 1
    return {"log": spec.log, "quarantine_files": len(files), "records": total, "redriven": redriven,
            "reasons": dict(reasons.most_common())}


class Redriver:
    def __init__(self, settings, spec, store, *, owner: str | None = None, notify=None, register=None):
        self.settings = settings
        self.spec = spec
        self.store = store
        self.owner = owner or new_owner(REDRIVE)
        self.notify = notify
        self.register = register  # registration hook (hive.registrar_for) for logs with a hive_url

    def run(self, first_hour: int | None = None, end_hour: int | None = None) -> RedriveResult:
        t0 = time.monotonic()
        s, spec = self.settings, self.spec
        lease = Lease.acquire(self.store, spec.log, self.owner, ttl_s=s.lease_ttl_s, wait_s=max(s.lease_wait_s, 600),
                              notify=self.notify)
        try:
            result = self._run(lease, first_hour, end_hour)
        finally:
            lease.release()
        result.seconds = time.monotonic() - t0
        return result

    def _run(self, lease: Lease, first_hour, end_hour) -> RedriveResult:
        s, spec = self.settings, self.spec
        parser = build_parser(spec.format, schema_registry_url=s.avro_schema_registry_url,
                              schema_registry_config=s.avro_schema_registry_config)
        rows = spec.output_format == "parquet"
        schema = parquet_schema(s, spec) if rows else None
        convert = RowConverter(schema) if rows else None
        lo, hi = FIRST_HOUR * HOUR_MS, (LAST_HOUR + 1) * HOUR_MS - 1
        result = RedriveResult(spec.log)
        data_root = resolved_root(s, spec.base_partition)
        storage = Storage.for_path(data_root)[0]
        storage.sync = s.writer.fsync
        ext = f"{REDRIVE}.{OUTPUT_FORMATS[spec.output_format].extension}"
        for path, qname in quarantine_files(s, spec, first_hour, end_hour):
            result.files_read += 1
            by_hour: dict[int, list] = collections.defaultdict(list)
            landed: dict[str, str] = {}
            for rec in records(path):
                result.records_read += 1
                raw = base64.b64decode(rec["raw_base64"]) if rec.get("raw_base64") is not None else None
                try:
                    if raw is None:
                        raise MessageError("null value")
                    ts, out = parser.row(raw) if rows else parser.line(raw)
                    if convert is not None:  # rows
                        out = convert(out)
                    elif s.writer.line_breaks == "escape":
                        out = escape_line(out) if out.count(b"\n") != 1 or b"\r" in out or b"\\" in out else out
                    elif out.count(b"\n") != 1 or b"\r" in out:
                        raise MessageError("line break: the output line holds a line break")
                    if not lo <= ts <= hi:
                        raise MessageError(f"timestamp {ts} outside every hour with a 4-digit year")
                except RegistryUnavailable:
                    raise
                except Exception as e:  # noqa: BLE001 - still bad: it stays in quarantine
                    result.still_bad += 1
                    key = str(e).split(":")[0][:80]
                    result.reasons_left[key] = result.reasons_left.get(key, 0) + 1
                    continue
                by_hour[ts // HOUR_MS].append((rec["offset"], out, len(raw)))
            for hour, items in sorted(by_hour.items()):
                info = self._write(storage, data_root, hour, qname, ext, items, schema, lease)
                result.files.append(info)
                result.hours[hour] = result.hours.get(hour, 0) + len(items)
                result.landed += len(items)
                landed.update({str(o): info.path for o, _, _ in items})
            if landed:
                _write_marker(_marker(path), landed)
        if self.register is not None and result.files:
            lease.check()
            result.registered = list(self.register(IngestResult(spec.log, files=result.files)))
        return result

    def _write(self, storage: Storage, data_root: str, hour: int, qname: FileName, ext: str, items, schema,
               lease: Lease) -> FileInfo:
        s, spec = self.settings, self.spec
        d = partition_dir(storage_root(data_root), spec.log_partition, hour, spec.hourly)
        storage.makedirs(d, storage_root(data_root))
        final = f"{d}/{FileName(spec.log, hour, qname.partition, qname.start, qname.end, ext)}"
        tmp = f"{d}/.{os.path.basename(final)}.{lease.token}.tmp"
        self.store.record_paths(spec.log, lease, temps=[tmp])  # a killed re-drive's temporary file is swept later
        stream = storage.open_output(tmp)
        w = s.writer
        f: ParquetFile | TextFile
        if schema is not None:
            f = ParquetFile(stream, schema, w.parquet_codec, row_group_bytes(
                {"parquet_block_size": w.parquet_block_size, "max_open_files": w.max_open_files}))
            f.write([row for _, row, _ in items], [n for _, _, n in items])
        else:
            f = open_text(stream, spec.output_format, w.gzip_level, w.zstd_level)
            f.write(b"".join(line for _, line, _ in items))
        f.close()
        lease.check()
        storage.publish(tmp, final)
        storage.sync_dirs([d])
        return FileInfo(final, "data", hour, qname.partition, qname.start, qname.end, len(items),
                        sum(n for _, _, n in items), storage.size(final))


def storage_root(root: str) -> str:
    return Storage.for_path(root)[1]


def _write_marker(path: str, landed: dict[str, str]) -> None:
    done = json.load(open(path)) if os.path.exists(path) else {}
    done.update(landed)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(done, f, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
