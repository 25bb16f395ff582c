"""Maintenance on a cron, one run per enabled log. compaction_schedule is stopped by default (turn it on in the UI:
Automation); retention_schedule runs by default but only for logs with a retention (:retention-hours or the row's
retention_hours / quarantine_retention_hours), so nothing is dropped until one is set."""
import dagster as dg

from ..ingest.constants import LOG_TAG
from ..ingest.resources import PseidonResource
from .jobs import compact_job, retention_job


def _per_log(context: dg.ScheduleEvaluationContext, pseidon: PseidonResource, job: str, keep=lambda s, spec: True):
    with pseidon.session() as s:
        specs, _ = s.table.logs(s.settings.etl_group)
        specs = [spec for spec in specs if keep(s.settings, spec)]
    stamp = context.scheduled_execution_time.strftime("%Y%m%dT%H%M")
    return [dg.RunRequest(run_key=f"{job}:{spec.log}:{stamp}", partition_key=spec.log, tags={LOG_TAG: spec.log})
            for spec in specs] or dg.SkipReason(f"no enabled logs{' with a retention' if job == 'retention' else ''}")


@dg.schedule(name="compaction_schedule", job=compact_job, cron_schedule="15 * * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.STOPPED,
             description="Compact every enabled log's closed hours, hourly at :15 (off by default).")
def compaction_schedule(context: dg.ScheduleEvaluationContext, pseidon: PseidonResource):
    return _per_log(context, pseidon, "compact")


@dg.schedule(name="retention_schedule", job=retention_job, cron_schedule="30 3 * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.RUNNING,
             description="Apply retention daily at 03:30 UTC to every enabled log that has one (:retention-hours, "
                         ":quarantine-retention-hours, or the row's retention_hours / quarantine_retention_hours).")
def retention_schedule(context: dg.ScheduleEvaluationContext, pseidon: PseidonResource):
    from ...core.retention import keeps_for  # here: loading the definitions must not import the rebuild machinery

    return _per_log(context, pseidon, "retention", lambda settings, spec: keeps_for(settings, spec) != (None, None))
