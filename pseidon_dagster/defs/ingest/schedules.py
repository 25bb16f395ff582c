"""ingest_schedule: the alternative to the sensor -- on a cron, one run per enabled log, whatever its lag. Stopped by
default; turn it on in the UI (Automation) and the sensor off if you prefer fixed micro-batch times."""

import os

import dagster as dg

from .constants import INGEST_JOB, LOG_TAG, REASON_TAG, SCHEDULE
from .partitions import logs
from .resources import PseidonResource
from .sensors import busy_or_retrying_logs

CRON = os.environ.get("PSEIDON_SCHEDULE_CRON", "*/10 * * * *")


@dg.schedule(
    name=SCHEDULE,
    job_name=INGEST_JOB,
    cron_schedule=CRON,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description=f"Ingest every enabled log on a cron ({CRON}, PSEIDON_SCHEDULE_CRON); off by default.",
)
def ingest_schedule(context: dg.ScheduleEvaluationContext, pseidon: PseidonResource):
    with pseidon.session() as s:
        specs, errors = s.table.logs(s.settings.etl_group)
    for err in errors:
        context.log.error(f"{err} -- the log gets no runs until the row is fixed")
    known = set(context.instance.get_dynamic_partitions(logs.name))
    new = sorted({spec.log for spec in specs} - known)
    if new:  # the sensor normally adds them; the schedule must work with the sensor off
        context.instance.add_dynamic_partitions(logs.name, new)
    stamp = context.scheduled_execution_time.strftime("%Y%m%dT%H%M")
    requests = []
    busy_logs = busy_or_retrying_logs(context.instance)  # not a run query per log
    for spec in specs:
        busy = busy_logs.get(spec.log)
        if busy:
            context.log.info(f"{spec.log}: {busy}; not scheduled this time")
            continue
        requests.append(dg.RunRequest(run_key=f"{spec.log}:{stamp}", partition_key=spec.log,
                                      tags={LOG_TAG: spec.log, REASON_TAG: f"schedule {stamp}"}))
    return requests or dg.SkipReason("no enabled logs in pseidon_logs, or all of them have a run in progress")
