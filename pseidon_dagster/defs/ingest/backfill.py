"""Rebuilding (log, hour) partitions of lake_files from the UI or a backfill: the Dagster side of core/rebuild.py.

A run gets its partitions in context.partition_keys (BackfillPolicy.single_run(): one run per log of a backfill
with more hours than logs, else one run per hour spanning the logs); for each log it rebuilds the selected hours
(Kafka read once per contiguous window), then reports per hour a lake_files materialization (records, files, offset
ranges, what changed), a hive_table materialization for logs with a Hive table, and the offset_continuity /
record_counts check results. A dry run reports observations instead and changes nothing. An hour the shrink guard
kept is reported in the run's log and not materialized (a backfill's page lists it as failed).
"""
from __future__ import annotations

import collections
import datetime as dt

import dagster as dg

from ...core.partitioning import hour_key, hour_start
from .checks import file_detail, verify_continuity, verify_record_counts
from .constants import HIVE_TABLE, HOUR_DIM, LAKE_FILES, LOG_DIM, OFFSET_CONTINUITY, RECORD_COUNTS
from .resources import PseidonResource


def _hour_number(key: str) -> int:
    t = dt.datetime.strptime(key, "%Y-%m-%d-%H:%M").replace(tzinfo=dt.timezone.utc)
    return int(t.timestamp()) // 3600


def selected_hours(keys) -> dict[str, list[int]]:
    """log -> sorted hour numbers of the run's (log, hour) partition keys."""
    out: dict[str, set[int]] = collections.defaultdict(set)
    for key in keys:
        dims = key.keys_by_dimension if isinstance(key, dg.MultiPartitionKey) else dict(
            zip(sorted([HOUR_DIM, LOG_DIM]), str(key).split("|")))
        out[dims[LOG_DIM]].add(_hour_number(dims[HOUR_DIM]))
    return {log: sorted(hours) for log, hours in sorted(out.items())}


def rebuild_partitions(context: dg.AssetExecutionContext, pseidon: PseidonResource, *, dry_run: bool,
                       allow_shrink: bool) -> None:
    # Imported here, not at definition load: every run worker loads the definitions, few of them rebuild.
    from ...core.rebuild import CREATED, REFUSED, REPLACED, Rebuilder

    owner = f"dagster:{context.run.root_run_id or context.run.run_id}"
    refused: list[str] = []
    for log, hours in selected_hours(context.partition_keys).items():
        with pseidon.session() as s:
            spec = s.table.get(log, s.settings.etl_group)
            if HIVE_TABLE in context.selected_asset_keys and not spec.hive_url and not dry_run:
                context.log.warning(f"{log} has no Hive table (pseidon_logs.hive_url is empty): its hive_table "
                                    "partitions are not materialized; select lake_files alone to rebuild its hours")
            result = Rebuilder(s.settings, spec, s.store, s.kafka, owner=owner, notify=context.log.warning).run(
                hours, dry_run=dry_run, allow_shrink=allow_shrink)
            context.log.info(f"{log}: {result.to_json()[:4000]}")
            for h in result.hours:
                pk = dg.MultiPartitionKey({LOG_DIM: log, HOUR_DIM: hour_key(h.hour)})
                md = _metadata(h, result)
                if dry_run:
                    context.log_event(dg.AssetObservation(asset_key=LAKE_FILES, partition=pk, metadata=md,
                                                          description=f"dry run: {h.to_dict()}"))
                    continue
                if h.action == REFUSED:
                    refused.append(f"{log} {hour_start(h.hour):%Y-%m-%d %H}:00: {h.note}")
                    continue
                if h.action in (REPLACED, CREATED):
                    md["files_detail"] = dg.MetadataValue.json(file_detail(h.files))
                context.log_event(dg.AssetMaterialization(
                    asset_key=LAKE_FILES, partition=pk, metadata=md,
                    description=f"rebuilt: {h.records_new} records of {log} for {hour_start(h.hour):%Y-%m-%d %H}:00 "
                                f"UTC ({h.action})"))
                if h.registered:
                    context.log_event(dg.AssetMaterialization(
                        asset_key=HIVE_TABLE, partition=pk,
                        metadata={"partitions": dg.MetadataValue.json(h.registered), "rebuilt": True}))
                if h.action in (REPLACED, CREATED):
                    recorded = {f.path: f.records for f in h.files}
                    for name, outcome in ((OFFSET_CONTINUITY, verify_continuity(s.settings, spec, h.hour)),
                                          (RECORD_COUNTS, verify_record_counts(s.settings, spec, h.hour, recorded))):
                        context.log_event(dg.AssetCheckEvaluation(
                            asset_key=LAKE_FILES, check_name=name, passed=outcome.passed, severity=outcome.severity,
                            description=outcome.description, metadata=outcome.metadata, partition=str(pk)))
    if refused:
        context.log.warning("hours kept because the rebuild would shrink them (materialize with allow_shrink to "
                            "replace them): " + "; ".join(refused))


def _metadata(h, result) -> dict:
    ranges: dict[int, list] = collections.defaultdict(list)
    for f in h.files:
        ranges[f.partition].append(f"[{f.start}, {f.end})")
    return {
        "dagster/row_count": h.records_new,
        "records": h.records_new, "files": h.files_new, "records_before": h.records_now,
        "files_before": h.files_now, "quarantined": h.quarantined_new, "action": h.action,
        "note": h.note or "", "bytes": dg.MetadataValue.int(sum(f.bytes for f in h.files)),
        "offset_ranges": "  ".join(f"p{p} " + " ".join(r) for p, r in sorted(ranges.items())),
        "kafka_reads": dg.MetadataValue.json(result.reads), "rebuilt": True,
    }
