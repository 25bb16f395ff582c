"""ingest_sensor: every 30 s, keep the `logs` partitions in sync with pseidon_logs and request one run per log that
has work. It reads pseidon_logs, Kafka watermarks and Redis, nothing else: no message is read and no offset is
committed here (the run's last step commits).

A tick's cost does not grow in requests per log: one read of pseidon_logs, one query of the unfinished runs, one
Kafka metadata request for every topic, one Redis round trip for every offset, plan and lease, and batched
ListOffsets requests for the watermarks (core.lag.measure_many). Only a log whose exact work was requested before
(a failed run, to be requested again after a back-off) costs a run query of its own."""

import datetime as dt
import json
import time

import dagster as dg
import redis
import sqlalchemy as sa

from ...core.kafka import KafkaUnavailable, TopicNotFound
from ...core.lag import Probe, decide, measure_many, sensor_settings
from ...core.logtable import LogTableUnavailable
from ...core.offsets import now_ms, redis_where
from ..ops.queues import publish_queues
from .constants import INGEST_JOB, LAG_TAG, LOG_TAG, REASON_TAG, SENSOR
from .partitions import logs
from .resources import PseidonResource

# Stop probing more logs after this many seconds of a tick (Dagster times a sensor out at 60 s); the logs left over
# are probed first by the next tick.
TICK_BUDGET_S = 40.0
# Logs measured together (one Redis round trip and one batch of ListOffsets requests each); the budget is checked
# between batches.
PROBE_BATCH = 5000
CURSOR_VERSION = 2
WILL_RETRY_TAG = "dagster/will_retry"  # set by Dagster on a failed run that its run retries will launch again
UNFINISHED = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
              dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
MAX_BACKOFF_DOUBLINGS = 4  # back-off after repeated failures: base, 2x, 4x, 8x, 16x


class SensorUnavailable(RuntimeError):
    """A server the tick needs is unreachable: the tick fails (visible and alertable in the UI), naming it."""


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
    records = instance.get_run_records(filters=dg.RunsFilter(tags={LOG_TAG: log}), limit=1)
    return _busy(records[0].dagster_run) if records else None


def _busy(run: dg.DagsterRun) -> str | None:
    if run.status in UNFINISHED:
        return f"run {run.run_id[:8]} is {run.status.value.lower()}"
    if run.status == dg.DagsterRunStatus.FAILURE and run.tags.get(WILL_RETRY_TAG) == "true":
        return f"run {run.run_id[:8]} failed and will be retried"
    return None


def busy_logs(instance: dg.DagsterInstance) -> dict[str, str]:
    """log -> why it is busy, for every log with an unfinished ingest run (one query per tick)."""
    out = {}
    for rec in instance.get_run_records(filters=dg.RunsFilter(job_name=INGEST_JOB, statuses=UNFINISHED)):
        log = rec.dagster_run.tags.get(LOG_TAG)
        if log:
            out.setdefault(log, _busy(rec.dagster_run))
    return out


def busy_or_retrying_logs(instance: dg.DagsterInstance, window_s: float = 86_400.0) -> dict[str, str]:
    """busy_logs, plus the logs whose latest run failed and is about to be retried (busy_reason): one query for the
    unfinished runs, one for the runs that failed with `dagster/will_retry` within WINDOW_S (the run retry daemon
    relaunches a run within seconds), and one busy_reason query only for each log that has such a run."""
    out = busy_logs(instance)
    since = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=window_s)
    failed = instance.get_run_records(filters=dg.RunsFilter(
        job_name=INGEST_JOB, statuses=[dg.DagsterRunStatus.FAILURE], tags={WILL_RETRY_TAG: "true"},
        updated_after=since))
    for log in sorted({rec.dagster_run.tags.get(LOG_TAG) for rec in failed} - set(out) - {None}):
        why = busy_reason(instance, log)
        if why:
            out[log] = why
    return out


def retry_decision(instance: dg.DagsterInstance, log: str, prev: dict, base_ms: int, now: int
                   ) -> tuple[bool, str]:
    """The sensor already requested this exact work (same offsets, watermarks and plan). Request it again only if
    that run failed (and Dagster will not retry it) at least a back-off ago: a run that failed before storing a plan
    (Kafka blip, Hive down while reading a schema, lease busy) changes nothing the key is made of."""
    records = instance.get_run_records(filters=dg.RunsFilter(tags={LOG_TAG: log}), limit=1)
    if not records:
        return False, "already requested"
    rec = records[0]
    run = rec.dagster_run
    busy = _busy(run)
    if busy:
        return False, busy
    if run.status != dg.DagsterRunStatus.FAILURE:
        return False, f"already requested (run {run.run_id[:8]} {run.status.value.lower()})"
    ended_ms = int((rec.end_time or rec.update_timestamp.timestamp()) * 1000)
    backoff = base_ms * 2 ** min(prev.get("n", 0), MAX_BACKOFF_DOUBLINGS)
    if now - ended_ms < backoff:
        return False, f"run {run.run_id[:8]} failed; requesting again in {(ended_ms + backoff - now) // 1000}s"
    return True, f"run {run.run_id[:8]} failed {(now - ended_ms) // 1000}s ago; trying again"


def _fail(what: str, where: str, err: BaseException) -> SensorUnavailable:
    return SensorUnavailable(f"{what} at {where} is unavailable: {type(err).__name__}: {err}")


def evaluate(context: dg.SensorEvaluationContext, pseidon: PseidonResource) -> dg.SensorResult:
    t0 = time.monotonic()
    cursor = load_cursor(context.cursor)
    settings = sensor_settings(pseidon.settings())
    with pseidon.session(settings) as s:
        try:
            specs, errors = s.table.logs(settings.etl_group)
        except LogTableUnavailable as e:
            raise SensorUnavailable(str(e)) from None
        except sa.exc.SQLAlchemyError as e:
            raise _fail("the pseidon_logs table", s.table.engine.url.render_as_string(hide_password=True), e) from None
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
        busy = busy_logs(context.instance)  # one run-status query for every log
        try:
            probes = _probe([log for log in order if log not in busy], s, t0)
            for log in order:
                if log in busy:
                    notes.append(f"{log}: {busy[log]}")
                    continue
                if log not in probes or time.monotonic() - t0 > TICK_BUDGET_S:
                    cursor["next"] = log
                    notes.append(f"tick budget of {TICK_BUDGET_S:.0f}s used up; {log} and later logs next tick")
                    break
                probe = probes[log]
                if probe.lease is not None:  # a backfill (or a CLI run) works on the log: leave it alone until it ends
                    notes.append(f"{log}: its lease is held by {probe.lease.partition('|')[2] or probe.lease}")
                    continue
                if isinstance(probe.error, TopicNotFound):
                    context.log.warning(str(probe.error))
                    notes.append(f"{log}: topic not found")
                    continue
                if probe.error is not None:
                    context.log.error(str(probe.error))
                    notes.append(f"{log}: {probe.error}")
                    continue
                m = probe.lag
                now = now_ms()
                d = decide(m, settings, now, cursor["waiting"].get(log))
                if d.waiting_since_ms is not None:
                    cursor["waiting"][log] = d.waiting_since_ms
                else:
                    cursor["waiting"].pop(log, None)
                if not d.run:
                    notes.append(f"{log}: {d.reason}")
                    continue
                reason = d.reason
                prev = cursor["requested"].get(log) or {}
                attempt = 0
                if prev.get("key") == m.key:  # rare: the same work was requested before (a run query per such log)
                    again, why = retry_decision(context.instance, log, prev, settings.sensor_retry_backoff_ms, now)
                    if not again:
                        notes.append(f"{log}: {why}")
                        continue
                    attempt = prev.get("n", 0) + 1
                    reason = f"{why}: {d.reason}"
                run_key = f"{log}:{m.key}" + (f":retry{attempt}" if attempt else "")
                cursor["requested"][log] = {"key": m.key, "n": attempt}
                context.log.info(f"{log}: requesting a run ({reason})")
                requests.append(dg.RunRequest(
                    run_key=run_key, partition_key=log,
                    tags={LOG_TAG: log, REASON_TAG: reason[:250], LAG_TAG: str(m.lag)},
                ))
        except KafkaUnavailable as e:
            _apply_partitions(context, partition_requests)
            raise _fail("Kafka", settings.bootstrap_servers, e) from None
        except redis.RedisError as e:
            _apply_partitions(context, partition_requests)
            raise _fail("Redis", redis_where(s.store.r), e) from None

    # --- operations (issue 11): etl-kafka-work-queue and the run queue for /metrics (defs/ops/queues.py) ---------
    publish_queues(context, settings, wanted, requests, cursor, busy)

    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=partition_requests,
        cursor=json.dumps(cursor, sort_keys=True),
        skip_reason=None if requests else ("; ".join(notes) or "no enabled logs in pseidon_logs")[:2000],
    )


def _probe(names: list[str], s, t0: float) -> dict[str, Probe]:
    """Measure the logs NAMES in batches (core.lag.measure_many): one metadata request for all their topics, then per
    PROBE_BATCH logs one Redis round trip and one batch of ListOffsets requests. Logs of batches not started within
    the tick budget are left out (the next tick starts with them)."""
    if not names:
        return {}
    admin = s.kafka.admin()
    partitions = s.kafka.topic_partitions(names, admin)
    out: dict[str, Probe] = {}
    for i in range(0, len(names), PROBE_BATCH):
        if time.monotonic() - t0 > TICK_BUDGET_S:
            break
        out.update(measure_many(names[i:i + PROBE_BATCH], s.kafka, s.store, admin=admin, partitions=partitions))
    return out


def _apply_partitions(context: dg.SensorEvaluationContext, requests: list) -> None:
    """Keep the `logs` partitions in sync with pseidon_logs even on a tick that fails for another server."""
    for req in requests:
        if isinstance(req, dg.AddDynamicPartitionsRequest):
            context.instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
        else:
            for key in req.partition_keys:
                context.instance.delete_dynamic_partition(req.partitions_def_name, key)


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
