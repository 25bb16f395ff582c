"""What a committed ingest result tells Dagster: a `lake_files` materialization per (log, event hour) it wrote, with
the hour's records, files, bytes and offset ranges and the run's numbers; `hive_table` materializations for the
registered hours; the offset_continuity and record_counts results; a `kafka_topic` observation with the committed
offsets and the lag left. Used by ingest_job's commit_offsets op (jobs.py)."""

import dataclasses
import datetime as dt
import time

import dagster as dg

from ...core.config import Settings
from ...core.hive import partition_spec, partition_values
from ...core.ingest import FileInfo, IngestResult
from ...core.model import LogSpec
from ...core.partitioning import hour_key, hour_start
from .checks import file_detail, run_continuity, run_record_counts
from .constants import (
    HIVE_TABLE,
    HOUR_DIM,
    KAFKA_TOPIC,
    LAKE_FILES,
    LOG_DIM,
    OFFSET_CONTINUITY,
    RECORD_COUNTS,
)
from .partitions import HOURS_START


def previous_run_end(instance: dg.DagsterInstance, log: str) -> dict[int, int] | None:
    """Where the last successful run of the log ended, per Kafka partition (from its kafka_topic observation)."""
    res = instance.fetch_observations(dg.AssetRecordsFilter(asset_key=KAFKA_TOPIC, asset_partitions=[log]), limit=1)
    for record in res.records:
        obs = record.asset_observation
        committed = obs.metadata.get("committed_offsets") if obs else None
        if committed is not None:
            return {int(p): int(o) for p, o in committed.value.items()}
    return None


def _hours_window() -> tuple[int, int]:
    """First and last hour number that are lake_files partitions (HourlyPartitionsDefinition, end_offset=2)."""
    start = dt.datetime.strptime(HOURS_START, "%Y-%m-%d-%H:%M").replace(tzinfo=dt.timezone.utc)
    return int(start.timestamp()) // 3600, int(time.time()) // 3600 + 1


def ranges_text(ranges: dict[int, list[tuple[int, int]]]) -> str:
    """{partition: [(start, end), ...]} as one line: 'p0 [0, 201)  p1 [0, 201) [201, 400)'."""
    return "  ".join(f"p{p} " + " ".join(f"[{s}, {e})" for s, e in rs) for p, rs in sorted(ranges.items()))


def _ranges(files: list[FileInfo]) -> dict[int, list[tuple[int, int]]]:
    out: dict[int, set[tuple[int, int]]] = {}
    for f in files:
        out.setdefault(f.partition, set()).add((f.start, f.end))
    return {p: sorted(v) for p, v in out.items()}


def run_metadata(result: IngestResult) -> dict:
    """The run's numbers, carried by every event the run reports."""
    seconds = max(result.seconds, 1e-6)
    md = {
        "read": result.read, "written": result.written, "filtered": result.filtered,
        "quarantined": result.quarantined,
        "run_offsets": ranges_text({p: [r] for p, r in result.offsets.items()}),
        "run_files": len(result.files), "run_bytes": dg.MetadataValue.int(result.bytes),
        "throughput_msgs_per_s": round(result.read / seconds, 1),
        "seconds": round(result.seconds, 3),
        "lag_after": result.lag_after if result.lag_after is not None else "unknown (Kafka did not answer)",
        "plan_id": result.plan_id or "",
        "replayed": result.replayed,
    }
    if result.lost:
        md["lost_offsets"] = ranges_text({p: [r] for p, r in result.lost.items()})
    if result.quarantine_reasons:
        md["quarantine_reasons"] = dg.MetadataValue.json(result.quarantine_reasons)
    return md


def report(context: dg.OpExecutionContext, settings: Settings, spec: LogSpec, result: IngestResult,
           previous_end: dict[int, int] | None) -> dict:
    """Log the materializations, check results and observation of one finished (committed) run."""
    log = spec.log
    run_md = run_metadata(result)
    first, last = _hours_window()
    by_hour: dict[int, list[FileInfo]] = {}
    for f in result.data_files:
        by_hour.setdefault(f.hour, []).append(f)
    outside = sorted(h for h in by_hour if not first <= h <= last)
    if outside:
        context.log.warning(
            f"{log}: data for event hours outside the lake_files partitions ({HOURS_START} .. now+1h) landed but is "
            f"not shown as partitions: {', '.join(hour_key(h) for h in outside[:20])}")
    keys: dict[int, dg.MultiPartitionKey] = {}
    for h, files in sorted(by_hour.items()):
        if h in outside:
            continue
        pk = dg.MultiPartitionKey({LOG_DIM: log, HOUR_DIM: hour_key(h)})
        keys[h] = pk
        records = sum(f.records for f in files)
        context.log_event(dg.AssetMaterialization(
            asset_key=LAKE_FILES, partition=pk,
            description=f"{records} records of {log} for {hour_start(h):%Y-%m-%d %H}:00 UTC in {len(files)} files",
            metadata={
                "dagster/row_count": records,
                "records": records,
                "files": len(files),
                "bytes": dg.MetadataValue.int(sum(f.bytes for f in files)),
                "raw_bytes": dg.MetadataValue.int(sum(f.raw_bytes for f in files)),
                "offset_ranges": ranges_text(_ranges(files)),
                "directory": dg.MetadataValue.path(files[0].path.rsplit("/", 1)[0]),
                **run_md,
                "files_detail": dg.MetadataValue.json(file_detail(files)),
            },
        ))
        hive_partition = partition_spec(partition_values(settings, spec, h))
        if hive_partition in result.registered:
            context.log_event(dg.AssetMaterialization(
                asset_key=HIVE_TABLE, partition=pk,
                description=f"Hive partition {hive_partition} of {spec.hive_table_name or log}",
                metadata={"table": spec.hive_table_name or log, "partitions": dg.MetadataValue.json([hive_partition]),
                          "plan_id": result.plan_id or ""},
            ))

    # Check results go on the partitions the run wrote (the quarantine's hour when it wrote no data at all).
    check_keys = list(keys.values())
    if not check_keys and result.files:
        h = result.files[0].hour
        if first <= h <= last:
            check_keys = [dg.MultiPartitionKey({LOG_DIM: log, HOUR_DIM: hour_key(h)})]
    outcomes = {OFFSET_CONTINUITY: run_continuity(result, previous_end), RECORD_COUNTS: run_record_counts(result)}
    for name, outcome in outcomes.items():
        if not outcome.passed:
            context.log.error(f"{log}: check {name} failed: {outcome.description}")
        for pk in check_keys:
            context.log_event(dg.AssetCheckEvaluation(
                asset_key=LAKE_FILES, check_name=name, passed=outcome.passed, severity=outcome.severity,
                description=outcome.description, metadata={**outcome.metadata, "plan_id": result.plan_id or ""},
                partition=str(pk),
            ))

    if result.plan_id:
        committed = {str(p): e for p, (_, e) in sorted(result.offsets.items())}
        context.log_event(dg.AssetObservation(
            asset_key=KAFKA_TOPIC, partition=log,
            description=f"{result.read} messages read, lag after the run: {result.lag_after}",
            metadata={
                **run_md,
                "committed_offsets": dg.MetadataValue.json(committed),
                "hours": dg.MetadataValue.json([hour_key(h) for h in result.hours]),
                "quarantine_files": dg.MetadataValue.json(
                    [f.path for f in result.files if f.kind == "quarantine"]),
            },
        ))
    summary = {
        **run_md,
        "hours": dg.MetadataValue.json([hour_key(h) for h in result.hours]),
        "checks": dg.MetadataValue.json({k: o.passed for k, o in outcomes.items()}),
    }
    if outside:
        summary["hours_outside_partitions"] = dg.MetadataValue.json([hour_key(h) for h in outside])
    return summary


def report_committed(context: dg.OpExecutionContext, s, spec: LogSpec, current: IngestResult | None) -> dict:
    """Report every committed result of the log that Dagster has not seen yet (this run's, an earlier run's that
    failed between its commit and its report, or a CLI run's), oldest first; returns the last one's summary."""
    summary: dict = {}
    previous_end = previous_run_end(context.instance, spec.log)
    for result in s.store.unreported(spec.log):
        if current is not None and result.plan_id == current.plan_id:
            result = current  # this run's own result also knows the lag it left
        summary = report(context, s.settings, _planned_spec(spec, result), result, previous_end)
        s.store.mark_reported(spec.log, result.plan_id)
        previous_end = {**(previous_end or {}), **{p: e for p, (_, e) in result.offsets.items()}}
    return summary


def _planned_spec(spec: LogSpec, result: IngestResult) -> LogSpec:
    """The row as the result's plan froze the layout (for Hive partition names); hive settings as they are now."""
    p = result.layout or {}
    return dataclasses.replace(spec, **{k: v for k, v in p.items() if hasattr(spec, k)})
