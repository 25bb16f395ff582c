"""etl-kafka-work-queue: published by ingest_sensor at the end of every tick (sensors.py calls `publish_queues`).

pseidon-etl's dashboards read `LLEN etl-kafka-work-queue` (`<group>-kafka-work-queue`) in the offsets Redis: the work
units waiting to be fetched. Here the list holds one entry (the log name) per log with lag that waits for a run:
the logs the tick requested a run for, those whose small lag waits for :sensor-max-wait-ms, those with a run queued in
Dagster and not started, and those whose last run failed (waiting for a retry) -- not the logs whose run is in
progress (the original's working queue). The numbers of queued and running ingest runs go to the metrics Redis for
/metrics (`etl-service-thread-queue`, `runs-in-progress`).
"""

import dagster as dg

from ...core import metrics
from ...core.config import Settings
from ..ingest.constants import INGEST_JOB, LOG_TAG

NOT_STARTED = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED]


def waiting_logs(instance: dg.DagsterInstance, settings: Settings, wanted: set[str], requested: set[str],
                 small_lag: set[str], busy: set[str]) -> tuple[list[str], int, int]:
    """(logs waiting for a run, runs queued, runs in progress)."""
    queued = set()
    for rec in instance.get_run_records(filters=dg.RunsFilter(job_name=INGEST_JOB, statuses=NOT_STARTED)):
        name = rec.dagster_run.tags.get(LOG_TAG)
        if name:
            queued.add(name)
    running = set(busy) - queued
    m, opened = metrics.metrics_client(settings)
    try:
        failing = metrics.MetricsStore(m, settings.etl_group).failing_logs()
    finally:
        if opened:
            m.close()
    waiting = (set(requested) | set(small_lag) | queued | failing) & set(wanted)
    return sorted(waiting - running), len(queued), len(running)


def publish_queues(context: dg.SensorEvaluationContext, settings: Settings, wanted, requests, cursor: dict,
                   busy: dict) -> None:
    """Never fails the tick: a Redis that does not take the queue is logged."""
    try:
        waiting, queued, running = waiting_logs(
            context.instance, settings, set(wanted), {r.partition_key for r in requests if r.partition_key},
            set(cursor.get("waiting", {})), set(busy))
        metrics.publish_queues(settings, waiting, queued, running)
    except Exception as e:  # noqa: BLE001 - the queue is for dashboards; the tick's own work is done
        context.log.warning(f"{metrics.work_queue_key(settings.etl_group)} not updated: {type(e).__name__}: {e}")
