"""ingest_sensor: every 30 s, keep the `logs` partitions in sync with pseidon_logs and request one run per log that
has work. It reads pseidon_logs, Kafka watermarks and Redis, nothing else: no message is read and no offset is
committed here (the run's last step commits)."""

import json
import time

import dagster as dg
import redis
from dagster._core.storage.dagster_run import NOT_FINISHED_STATUSES
from dagster._core.storage.tags import WILL_RETRY_TAG

from ...core.kafka import KafkaUnavailable, TopicNotFound
from ...core.offsets import OffsetError, now_ms
from .constants import INGEST_JOB, LAG_TAG, LOG_TAG, REASON_TAG, SENSOR
from ...core.lag import decide, measure, sensor_settings
from .partitions import logs
from .resources import PseidonResource

# Stop probing more logs after this many seconds of a tick (Dagster times a sensor out at 60 s); the logs left over
# are probed first by the next tick.
TICK_BUDGET_S = 40.0
CURSOR_VERSION = 1


def load_cursor(raw: str | None) -> dict:
    try:
        cur = json.loads(raw) if raw else {}
    except ValueError:
        cur = {}
    if cur.get("v") != CURSOR_VERSION:
        cur = {}
    return {"v": CURSOR_VERSION, "waiting": dict(cur.get("waiting", {})), "requested": dict(cur.get("requested", {})),
            "next": cur.get("next")}


def busy_reason(instance: dg.DagsterInstance, log: str) -> str | None:
    """A run of this log is queued or running, or failed and is about to be retried: leave the log alone."""
    runs = instance.get_runs(filters=dg.RunsFilter(tags={LOG_TAG: log}), limit=1)
    if not runs:
        return None
    run = runs[0]
    if run.status in NOT_FINISHED_STATUSES:
        return f"run {run.run_id[:8]} is {run.status.value.lower()}"
    if run.status == dg.DagsterRunStatus.FAILURE and run.tags.get(WILL_RETRY_TAG) == "true":
        return f"run {run.run_id[:8]} failed and will be retried"
    return None


def evaluate(context: dg.SensorEvaluationContext, pseidon: PseidonResource) -> dg.SensorResult:
    t0 = time.monotonic()
    cursor = load_cursor(context.cursor)
    settings = sensor_settings(pseidon.settings())
    with pseidon.session(settings) as s:
        specs, errors = s.table.logs(settings.etl_group)
        for err in errors:
            context.log.error(f"{err} -- the log gets no runs until the row is fixed")
        wanted = {spec.log for spec in specs}
        broken = {err.log for err in errors}
        known = set(context.instance.get_dynamic_partitions(logs.name))
        add = sorted(wanted - known)
        # A row that fails validation keeps its partition (and its history in the UI) until it is fixed or removed.
        delete = sorted(known - wanted - broken)
        partition_requests = []
        if add:
            partition_requests.append(logs.build_add_request(add))
        if delete:
            partition_requests.append(logs.build_delete_request(delete))
            context.log.info(f"logs removed or disabled in pseidon_logs: {', '.join(delete)}")
        for gone in set(cursor["waiting"]) | set(cursor["requested"]):
            if gone not in wanted:
                cursor["waiting"].pop(gone, None)
                cursor["requested"].pop(gone, None)

        # Start where the previous tick ran out of time, so no log is starved.
        order = sorted(wanted)
        if cursor.get("next") in wanted:
            i = order.index(cursor["next"])
            order = order[i:] + order[:i]
        cursor["next"] = None

        requests: list[dg.RunRequest] = []
        notes: list[str] = [f"{err.log}: bad row ({err.column})" for err in errors]
        kafka_down: str | None = None
        requested_before = dict(cursor["requested"])
        consumer = s.kafka.consumer()
        try:
            for log in order:
                if time.monotonic() - t0 > TICK_BUDGET_S:
                    cursor["next"] = log
                    notes.append(f"tick budget of {TICK_BUDGET_S:.0f}s used up; {log} and later logs next tick")
                    break
                if kafka_down:
                    notes.append(f"{log}: skipped, Kafka unavailable")
                    continue
                busy = busy_reason(context.instance, log)
                if busy:
                    notes.append(f"{log}: {busy}")
                    continue
                try:
                    m = measure(log, s.kafka, s.store, consumer)
                except TopicNotFound as e:
                    context.log.warning(str(e))
                    notes.append(f"{log}: topic not found")
                    continue
                except KafkaUnavailable as e:
                    kafka_down = str(e)
                    context.log.error(f"Kafka unavailable, no log probed this tick: {e}")
                    notes.append(f"{log}: skipped, Kafka unavailable")
                    continue
                except OffsetError as e:
                    context.log.error(str(e))
                    notes.append(f"{log}: {e}")
                    continue
                d = decide(m, settings, now_ms(), cursor["waiting"].get(log))
                if d.waiting_since_ms is not None:
                    cursor["waiting"][log] = d.waiting_since_ms
                else:
                    cursor["waiting"].pop(log, None)
                if not d.run:
                    notes.append(f"{log}: {d.reason}")
                    continue
                run_key = f"{log}:{m.key}"
                if cursor["requested"].get(log) == run_key:
                    notes.append(f"{log}: run {run_key} already requested")
                    continue
                cursor["requested"][log] = run_key
                context.log.info(f"{log}: requesting a run ({d.reason})")
                requests.append(dg.RunRequest(
                    run_key=run_key, partition_key=log,
                    tags={LOG_TAG: log, REASON_TAG: d.reason[:250], LAG_TAG: str(m.lag)},
                ))
        except redis.RedisError as e:
            context.log.error(f"Redis unavailable: {e}")
            notes.append(f"Redis unavailable: {e}")
            requests = []
            cursor["requested"] = requested_before
        finally:
            consumer.close()

    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=partition_requests,
        cursor=json.dumps(cursor, sort_keys=True),
        skip_reason=None if requests else ("; ".join(notes) or "no enabled logs in pseidon_logs")[:2000],
    )


@dg.sensor(
    name=SENSOR,
    job_name=INGEST_JOB,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Keeps the `logs` partitions in sync with the enabled pseidon_logs rows of this :etl-group and requests one "
        "ingest_job run per log with lag (Kafka high watermarks against Redis offsets). run_key = log + a hash of "
        "the stored offsets, high watermarks and stored plan, so a plan is never launched twice."
    ),
)
def ingest_sensor(context: dg.SensorEvaluationContext, pseidon: PseidonResource) -> dg.SensorResult:
    return evaluate(context, pseidon)
