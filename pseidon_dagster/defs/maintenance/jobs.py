"""compact_job, retention_job and redrive_job: one log (the run's `logs` partition) at a time."""

import dagster as dg
from pydantic import Field

from ...core.hive import registrar_for
from ...core.partitioning import hour_key, hour_start
from ..ingest.constants import HOUR_DIM, LAKE_FILES, LOG_DIM, LOG_TAG
from ..ingest.partitions import logs
from ..ingest.resources import PseidonResource


class CompactConfig(dg.Config):
    older_than_hours: float = Field(default=2.0, description="only hours that ended at least this long ago")
    min_files: int = Field(default=4, description="compact an hour with more files than this per Kafka partition")
    dry_run: bool = Field(default=False, description="report what would be merged; change nothing")


class RetentionConfig(dg.Config):
    keep_hours: float | None = Field(default=None, description="keep this many hours of data; unset: the log's "
                                        "retention_hours, else :retention-hours, else all")
    quarantine_keep_hours: float | None = Field(
        default=None, description="keep this much quarantine; unset: the log's quarantine_retention_hours, else "
                                  ":quarantine-retention-hours, else all")
    dry_run: bool = Field(default=False, description="list what would be dropped; change nothing")


class RedriveConfig(dg.Config):
    since_hours: float | None = Field(default=None, description="quarantine files read in the last N hours")


def _owner(context) -> str:
    return f"dagster:{context.run.root_run_id or context.run.run_id}"


def _report(context, log: str, result, what: str) -> dict:
    changed = 0
    for h in result.hours:
        if h.action not in ("replaced", "created", "dropped"):
            continue
        changed += 1
        pk = dg.MultiPartitionKey({LOG_DIM: log, HOUR_DIM: hour_key(h.hour)})
        context.log_event(dg.AssetMaterialization(
            asset_key=LAKE_FILES, partition=pk, description=f"{what}: {h.to_dict()}",
            metadata={"action": f"{what}: {h.action}", "records": h.records_new if h.action != "dropped" else 0,
                      "files": h.files_new if h.action != "dropped" else 0, "files_before": h.files_now}))
    context.log.info(f"{log}: {what}: {result.to_json()[:4000]}")
    return {"hours_changed": changed, "summary": dg.MetadataValue.json(result.to_dict())}


@dg.op(description="Merge the many or small files of closed hours into fewer (core/compact.py).")
def compact_log(context: dg.OpExecutionContext, config: CompactConfig, pseidon: PseidonResource):
    from ...core.compact import compact

    log = context.partition_key
    with pseidon.session() as s:
        spec = s.table.get(log, s.settings.etl_group)
        result = compact(s.settings, spec, s.store, older_than_hours=config.older_than_hours,
                         dry_run=config.dry_run, min_files=config.min_files, owner=_owner(context),
                         notify=context.log.warning)
        return dg.Output(None, metadata=_report(context, log, result, "compacted"))


@dg.op(description="Drop expired hours (Hive, then the lake) and quarantine files (core/retention.py).")
def retain_log(context: dg.OpExecutionContext, config: RetentionConfig, pseidon: PseidonResource):
    from ...core.retention import Retention, keeps_for

    log = context.partition_key
    with pseidon.session() as s:
        spec = s.table.get(log, s.settings.etl_group)
        keep, quarantine_keep = keeps_for(s.settings, spec)
        result = Retention(s.settings, spec, s.store,
                           keep_hours=config.keep_hours if config.keep_hours is not None else keep,
                           quarantine_keep_hours=(config.quarantine_keep_hours
                                                  if config.quarantine_keep_hours is not None else quarantine_keep),
                           owner=_owner(context),
                           notify=context.log.warning).run_all(dry_run=config.dry_run)
        return dg.Output(None, metadata=_report(context, log, result, "retention"))


@dg.op(description="Land the quarantined messages that now parse, exactly once (core/redrive.py).")
def redrive_log(context: dg.OpExecutionContext, config: RedriveConfig, pseidon: PseidonResource):
    import time

    from ...core.redrive import Redriver

    log = context.partition_key
    with pseidon.session() as s:
        spec = s.table.get(log, s.settings.etl_group)
        register = None
        if spec.hive_url:
            register = registrar_for(s.settings, spec)
        first = None if config.since_hours is None else int(time.time() // 3600 - config.since_hours)
        result = Redriver(s.settings, spec, s.store, owner=_owner(context), notify=context.log.warning,
                          register=register).run(first)
        for hour, n in sorted(result.hours.items()):
            context.log_event(dg.AssetMaterialization(
                asset_key=LAKE_FILES, partition=dg.MultiPartitionKey({LOG_DIM: log, HOUR_DIM: hour_key(hour)}),
                description=f"re-driven: {n} records of {log} for {hour_start(hour):%Y-%m-%d %H}:00 UTC",
                metadata={"action": "re-driven", "records_redriven": n}))
        return dg.Output(None, metadata={"landed": result.landed, "still_quarantined": result.still_bad})


def _tags(key: str) -> dict:
    return {LOG_TAG: key}  # the run queue's one-run-per-log limit covers maintenance too


def _job(name: str, op, description: str) -> dg.JobDefinition:
    @dg.job(name=name, config=dg.PartitionedConfig(partitions_def=logs, run_config_for_partition_key_fn=lambda k: {},
                                                     tags_for_partition_key_fn=_tags),
            executor_def=dg.in_process_executor, description=description)
    def job():
        op()

    return job


compact_job = _job("compact_job", compact_log, "Compact the log's closed hours that hold many or small files.")
retention_job = _job("retention_job", retain_log, "Drop the log's expired hours and quarantine files.")
redrive_job = _job("redrive_job", redrive_log, "Re-drive the log's quarantined messages that now parse.")
