"""Maintenance on a cron, one run per enabled log; both stopped by default (turn them on in the UI: Automation)."""
import dagster as dg

from ..ingest.constants import LOG_TAG
from ..ingest.resources import PseidonResource
from .jobs import compact_job, retention_job


def _per_log(context: dg.ScheduleEvaluationContext, pseidon: PseidonResource, job: str):
    with pseidon.session() as s:
        specs, _ = s.table.logs(s.settings.etl_group)
    stamp = context.scheduled_execution_time.strftime("%Y%m%dT%H%M")
    return [dg.RunRequest(run_key=f"{job}:{spec.log}:{stamp}", partition_key=spec.log, tags={LOG_TAG: spec.log})
            for spec in specs] or dg.SkipReason("no enabled logs")


@dg.schedule(name="compaction_schedule", job=compact_job, cron_schedule="15 * * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.STOPPED,
             description="Compact every enabled log's closed hours, hourly at :15 (off by default).")
def compaction_schedule(context: dg.ScheduleEvaluationContext, pseidon: PseidonResource):
    return _per_log(context, pseidon, "compact")


@dg.schedule(name="retention_schedule", job=retention_job, cron_schedule="30 3 * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.STOPPED,
             description="Apply retention to every enabled log daily at 03:30 UTC (off by default; set keep_hours "
                         "in the schedule's run config or the job's launchpad).")
def retention_schedule(context: dg.ScheduleEvaluationContext, pseidon: PseidonResource):
    return _per_log(context, pseidon, "retention")
