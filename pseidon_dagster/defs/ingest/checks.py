"""Checks on lake_files, per (log, event hour) partition.

offset_continuity: per Kafka partition, the offset ranges that landed (in the file names, data and quarantine files)
    chain without gap or overlap. An overlap means duplicated records; a gap means records that never landed.
record_counts: read = written + filtered + quarantined, and the files hold exactly the records the runs reported.

Every ingest run evaluates both for the partitions it wrote (jobs.py reports them with the materializations). The
check functions below re-verify one partition from the files on disk, for a partition picked in the UI.
"""

import dataclasses
import datetime as dt
import warnings
from collections.abc import Iterable
from typing import TYPE_CHECKING

import dagster as dg

from ...core.partitioning import FileName, partition_dir
from .constants import HOUR_DIM, LAKE_FILES, LOG_DIM, OFFSET_CONTINUITY, RECORD_COUNTS
from .partitions import log_hours
from .resources import PseidonResource

if TYPE_CHECKING:  # the modules below are imported where they are used: an ingest run's worker needs none of them
    from ...core.model import FileInfo, IngestResult
    from ...core.storage import Storage


@dataclasses.dataclass
class Outcome:
    passed: bool
    description: str
    metadata: dict
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR


Segment = tuple[int, int]


def segments(files: Iterable[tuple[int, int, int]]) -> dict[int, list[Segment]]:
    """(partition, start, end) triples -> per partition the distinct segments, sorted. A segment fans out to one
    file per event hour (and one quarantine file), all with the same range."""
    out: dict[int, set[Segment]] = {}
    for p, s, e in files:
        out.setdefault(p, set()).add((s, e))
    return {p: sorted(v) for p, v in sorted(out.items())}


def chain(segs: list[Segment], start: int | None = None, end: int | None = None
          ) -> tuple[list[Segment], list[Segment]]:
    """Gaps and overlaps of sorted segments, optionally against the expected [start, end)."""
    gaps: list[Segment] = []
    overlaps: list[Segment] = []
    pos = start
    for s, e in segs:
        if pos is None:
            pos = s
        elif s > pos:
            gaps.append((pos, s))
        elif s < pos:
            overlaps.append((s, min(pos, e)))
        pos = max(pos, e)
    if end is not None and pos is not None and pos < end:
        gaps.append((pos, end))
    return gaps, overlaps


def _fmt(ranges: Iterable[Segment]) -> str:
    return ", ".join(f"[{s}, {e})" for s, e in ranges)


def run_continuity(result: "IngestResult", previous_end: dict[int, int] | None = None) -> Outcome:
    """This run's files tile its plan [start, end) per Kafka partition, and each plan starts where the previous
    successful run of the log ended (`previous_end`, from Dagster's record of that run)."""
    segs = segments((f.partition, f.start, f.end) for f in result.files)
    problems, per_partition = [], {}
    filtered_gap = 0
    severity = dg.AssetCheckSeverity.ERROR
    for p, (start, end) in sorted(result.offsets.items()):
        gaps, overlaps = chain(segs.get(p, []), start, end)
        gap_size = sum(e - s for s, e in gaps)
        filtered_gap += gap_size
        per_partition[str(p)] = {"planned": [start, end], "segments": [list(x) for x in segs.get(p, [])],
                                 "gaps": [list(g) for g in gaps], "overlaps": [list(o) for o in overlaps]}
        if overlaps:
            problems.append(f"partition {p}: overlapping ranges {_fmt(overlaps)}")
        if previous_end and p in previous_end and previous_end[p] != start:
            lost = result.lost.get(p)
            if lost and lost[0] == previous_end[p]:
                problems.append(f"partition {p}: offsets {_fmt([lost])} expired from Kafka before they were read")
                severity = dg.AssetCheckSeverity.WARN if not overlaps else severity
            else:
                problems.append(f"partition {p}: this run starts at {start} but the previous run ended at "
                                f"{previous_end[p]} (offsets reset?)")
    unexplained = filtered_gap - result.filtered
    if unexplained > 0:
        problems.append(f"{unexplained} offsets inside the planned ranges are in no file "
                        f"({result.filtered} filtered messages explain the rest)")
    metadata = {"partitions": dg.MetadataValue.json(per_partition),
                "previous_run_end": dg.MetadataValue.json({str(p): o for p, o in (previous_end or {}).items()}),
                "gap_offsets_explained_by_filtered": min(filtered_gap, result.filtered)}
    if problems:
        return Outcome(False, "; ".join(problems), metadata, severity)
    return Outcome(True, f"{len(result.offsets)} Kafka partitions: the files' offset ranges chain from the previous "
                         "run's end to the end of the plan, with no gap or overlap", metadata)


def run_record_counts(result: "IngestResult") -> Outcome:
    data = sum(f.records for f in result.files if f.kind == "data")
    quarantine = sum(f.records for f in result.files if f.kind == "quarantine")
    metadata = {"read": result.read, "written": result.written, "filtered": result.filtered,
                "quarantined": result.quarantined, "records_in_data_files": data,
                "records_in_quarantine_files": quarantine}
    problems = []
    if result.read != result.written + result.filtered + result.quarantined:
        problems.append(f"read {result.read} != written {result.written} + filtered {result.filtered} + "
                        f"quarantined {result.quarantined}")
    if data != result.written:
        problems.append(f"data files hold {data} records, {result.written} were written")
    if quarantine != result.quarantined:
        problems.append(f"quarantine files hold {quarantine} records, {result.quarantined} were quarantined")
    if problems:
        return Outcome(False, "; ".join(problems), metadata)
    return Outcome(True, f"read {result.read} = written {result.written} + filtered {result.filtered} + "
                         f"quarantined {result.quarantined}; the files hold exactly those records", metadata)


# --- re-verification from disk ---------------------------------------------------------------------------------

def landed_files(settings, spec, kind: str = "data", hour: int | None = None
                 ) -> "list[tuple[Storage, str, FileName]]":
    """The published files of one log, optionally of one event hour. Hidden files and directories (temporary files,
    a backfill's fresh directories) and a backfill's own quarantine files (outside the log's offset tiling) are not
    counted."""
    from ...core.hourswap import REBUILD_QUARANTINE_EXT
    from ...core.storage import Storage

    root = settings.resolve_path(spec.base_partition if kind == "data" else spec.quarantine)
    storage, base = Storage.for_path(root)
    if hour is not None and kind == "data":
        base = partition_dir(base, spec.log_partition, hour, spec.hourly)
    else:
        base = f"{base.rstrip('/')}/{spec.log_partition}"
    out = []
    for path in storage.list_files(base):
        if "/." in path[len(base):]:
            continue
        name = FileName.parse(path.rsplit("/", 1)[-1])
        if name is None or name.log != spec.log or (hour is not None and name.hour != hour):
            continue
        if name.ext == REBUILD_QUARANTINE_EXT:
            continue
        out.append((storage, path, name))
    return out


def _partition(context: dg.AssetCheckExecutionContext) -> tuple[str, int]:
    """(log, hour number) of the partition a check runs for."""
    key = context.op_execution_context.partition_key
    if isinstance(key, dg.MultiPartitionKey):
        dims = key.keys_by_dimension
    else:  # "hour|log": dimensions sorted by name
        dims = dict(zip(sorted([HOUR_DIM, LOG_DIM]), str(key).split("|")))
    t = dt.datetime.strptime(dims[HOUR_DIM], "%Y-%m-%d-%H:%M").replace(tzinfo=dt.timezone.utc)
    return dims[LOG_DIM], int(t.timestamp()) // 3600


def union_gaps(segs: list[Segment]) -> list[Segment]:
    """Offsets between the first and the last segment that no segment covers."""
    gaps: list[Segment] = []
    end = None
    for s, e in sorted(segs):
        if end is not None and s > end:
            gaps.append((end, s))
        end = e if end is None else max(end, e)
    return gaps


def verify_continuity(settings, spec, hour: int) -> Outcome:
    """Per Kafka partition with files in the hour: no two of the hour's files hold the same offsets (duplicated
    records), and the offset ranges of all the log's landed files, data and quarantine, leave no gap (lost records).
    Files of different hours may name overlapping ranges: a segment's messages of several hours, or a compacted
    hour's file named for the union of the segments it merged, each holding only its own hour's messages."""
    data = landed_files(settings, spec, "data")
    files = data + landed_files(settings, spec, "quarantine")
    in_hour = {n.partition for _, _, n in data if n.hour == hour}
    segs = segments((n.partition, n.start, n.end) for _, _, n in files)
    hour_segs = segments((n.partition, n.start, n.end) for _, _, n in data if n.hour == hour)
    problems, per_partition, severity = [], {}, dg.AssetCheckSeverity.WARN
    for p in sorted(in_hour):
        gaps, overlaps = union_gaps(segs[p]), chain(hour_segs[p])[1]
        per_partition[str(p)] = {"from": segs[p][0][0], "to": segs[p][-1][1], "segments": len(segs[p]),
                                 "gaps": [list(g) for g in gaps], "overlaps": [list(o) for o in overlaps]}
        if overlaps:
            severity = dg.AssetCheckSeverity.ERROR
            problems.append(f"partition {p}: overlapping ranges {_fmt(overlaps)} (duplicated records)")
        if gaps:
            problems.append(f"partition {p}: offsets {_fmt(gaps)} are in no file (lost, expired from Kafka, "
                            "removed by retention, or only filtered messages)")
    metadata = {"partitions": dg.MetadataValue.json(per_partition), "files_scanned": len(files)}
    if not in_hour:
        return Outcome(False, f"no files of {spec.log} for this hour", metadata, dg.AssetCheckSeverity.WARN)
    if problems:
        return Outcome(False, "; ".join(problems), metadata, severity)
    return Outcome(True, f"{len(in_hour)} Kafka partitions: every landed offset range chains, no gap or overlap",
                   metadata)


def verify_record_counts(settings, spec, hour: int, recorded: dict[str, int]) -> Outcome:
    """The files of the hour hold the records the runs reported (`recorded`: path -> records, from the
    materializations of this partition)."""
    from ...core.output_formats import count_records

    on_disk = {path: count_records(storage.fs, path) for storage, path, _ in landed_files(settings, spec, "data", hour)}
    mismatched = {p: [recorded[p], n] for p, n in on_disk.items() if p in recorded and recorded[p] != n}
    missing = sorted(p for p in recorded if p not in on_disk)
    unrecorded = sorted(p for p in on_disk if p not in recorded)
    metadata = {"files": len(on_disk), "records": sum(on_disk.values()),
                "mismatched": dg.MetadataValue.json(mismatched), "missing": dg.MetadataValue.json(missing),
                "unrecorded": dg.MetadataValue.json(unrecorded)}
    if mismatched or missing:
        return Outcome(False, f"{len(mismatched)} files hold other record counts than reported, {len(missing)} "
                              "reported files are missing", metadata)
    if unrecorded:
        return Outcome(False, f"{len(unrecorded)} files are on disk that no run reported", metadata,
                       dg.AssetCheckSeverity.WARN)
    return Outcome(True, f"{len(on_disk)} files hold the {sum(on_disk.values())} records the runs reported",
                   metadata)


def recorded_files(instance: dg.DagsterInstance, partition_key: str) -> dict[str, int]:
    """path -> records from the materializations of one lake_files partition (the newest report of a path wins)."""
    out: dict[str, int] = {}
    result = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=LAKE_FILES, asset_partitions=[partition_key]), limit=10_000, ascending=True)
    for record in result.records:
        mat = record.asset_materialization
        detail = mat.metadata.get("files_detail") if mat else None
        if detail is not None:
            for f in detail.value:
                out[f["path"]] = int(f["records"])
    return out


def _result(outcome: Outcome) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=outcome.passed, severity=outcome.severity, description=outcome.description,
                               metadata=outcome.metadata)


# Partitioned checks (same partitions as lake_files) are a preview feature in 1.13; they are what lets the UI show a
# result per (log, hour), so the warning about them is expected and silenced here only.
warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec",
                        category=dg.PreviewWarning)


@dg.asset_check(
    asset=LAKE_FILES, name=OFFSET_CONTINUITY, partitions_def=log_hours,
    description="Per Kafka partition, the offset ranges in the landed file names chain without gap or overlap.",
)
def offset_continuity(context: dg.AssetCheckExecutionContext, pseidon: PseidonResource) -> dg.AssetCheckResult:
    log, hour = _partition(context)
    with pseidon.session() as s:
        spec = s.table.get(log, s.settings.etl_group)
        return _result(verify_continuity(s.settings, spec, hour))


@dg.asset_check(
    asset=LAKE_FILES, name=RECORD_COUNTS, partitions_def=log_hours,
    description="read = written + filtered + quarantined, and the files hold exactly the records reported.",
)
def record_counts(context: dg.AssetCheckExecutionContext, pseidon: PseidonResource) -> dg.AssetCheckResult:
    log, hour = _partition(context)
    with pseidon.session() as s:
        spec = s.table.get(log, s.settings.etl_group)
        recorded = recorded_files(context.instance, str(context.op_execution_context.partition_key))
        return _result(verify_record_counts(s.settings, spec, hour, recorded))


def file_detail(files: "list[FileInfo]") -> list[dict]:
    return [{"path": f.path, "partition": f.partition, "start": f.start, "end": f.end, "records": f.records,
             "bytes": f.bytes} for f in files]
