"""Counters that runs and the sensors write to the metrics Redis, and how to reach that Redis."""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import resource
import socket
import time
from typing import Any, cast

from ..config import RedisSettings, Settings
from ..offsets import RedisClient, connect, redis_where  # RedisClient: a client of connect, replies are str

log = logging.getLogger(__name__)

RECENT_MS = 15 * 60_000
HOUR_KEEP_MS = 2 * 3_600_000
MEASURE_BUDGET_S = 20.0  # a page stops measuring lag after this long; the logs left are shown unmeasured
METRICS_REDIS_TIMEOUT_S = 2.0
COUNTERS = ("messages", "written", "filtered", "quarantined", "bytes", "files", "runs")


def work_queue_key(group: str) -> str:
    """pseidon-etl's `<group>-kafka-work-queue` (etl-kafka-work-queue with the default group)."""
    return f"{group}-kafka-work-queue"


def now_ms() -> int:
    return int(time.time() * 1000)


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def peak_rss_mb() -> float:
    """Peak resident memory of this process and its finished children (ingest workers), in MB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(own, children) / 1024.0, 1)  # Linux reports KiB


class MetricsStore:
    """The counters in one Redis, for one :etl-group."""

    def __init__(self, r: RedisClient, group: str):
        self.r = r
        self.group = group

    def key(self, *parts: str) -> str:
        return f"/{self.group}/{{metrics}}/" + "/".join(parts)

    def _pipe(self):
        return self.r.pipeline(transaction=False)

    # writing -------------------------------------------------------------------------------------------------------
    def record_commit(self, result, *, run: str | None = None, via: str = "cli", host: str | None = None,
                      max_rss_mb: float | None = None, at_ms: int | None = None) -> None:
        end = at_ms or result.committed_ms or now_ms()
        start = end - int(result.seconds * 1000)
        files = len(result.files)
        last = {"at-ms": end, "plan": result.plan_id, "run": run, "via": via, "host": host,
                "messages": result.read, "written": result.written, "filtered": result.filtered,
                "quarantined": result.quarantined, "bytes": result.bytes, "files": files,
                "seconds": round(result.seconds, 3), "replayed": result.replayed, "max-rss-mb": max_rss_mb}
        h = self.key("log", result.log)
        p = self._pipe()
        p.setnx(self.key("since"), start)
        p.incrby(self.key("messages"), result.read)
        event = json.dumps({"log": result.log, "plan": result.plan_id, "start": start, "end": end,
                            "read": result.read}, sort_keys=True)
        p.zadd(self.key("commits"), {event: end})
        p.zremrangebyscore(self.key("commits"), "-inf", end - RECENT_MS)
        for field, value in zip(COUNTERS, (result.read, result.written, result.filtered, result.quarantined,
                                           result.bytes, files, 1)):
            p.hincrby(h, field, value)
        fields: dict[str, Any] = {"last-commit-ms": end, "last-run": json.dumps(last, sort_keys=True),
                                  "failed-since-success": 0}
        if max_rss_mb is not None:
            fields["max-rss-mb"] = max_rss_mb
        if result.data_files:
            fields["last-data-ms"] = end
        p.hset(h, mapping=fields)
        hour = self.key("log", result.log, "hour")
        p.zadd(hour, {json.dumps({"plan": result.plan_id, "files": files, "bytes": result.bytes}, sort_keys=True): end})
        p.zremrangebyscore(hour, "-inf", end - HOUR_KEEP_MS)
        p.sadd(self.key("logs"), result.log)
        p.execute()

    def record_failure(self, log_name: str, *, step: str | None, error: str, run_id: str, job: str | None = None,
                       at_ms: int | None = None) -> None:
        h = self.key("log", log_name)
        p = self._pipe()
        p.hincrby(h, "failures", 1)
        p.hincrby(h, "failed-since-success", 1)
        p.hset(h, "last-error", json.dumps({"at-ms": at_ms or now_ms(), "step": step, "error": error,
                                            "run": run_id, "job": job}, sort_keys=True))
        p.sadd(self.key("logs"), log_name)
        p.execute()

    def publish_queues(self, waiting: int, queued: int, running: int, at_ms: int | None = None) -> None:
        self.r.hset(self.key("queues"), mapping={"work-queue": waiting, "runs-queued": queued,
                                                 "runs-in-progress": running, "at-ms": at_ms or now_ms()})

    # reading -------------------------------------------------------------------------------------------------------
    def log_counters(self, log_name: str) -> dict[str, int]:
        raw = self.r.hmget(self.key("log", log_name), *COUNTERS)
        return {k: int(v or 0) for k, v in zip(COUNTERS, raw)}

    def log_state(self, log_name: str, at_ms: int) -> dict:
        raw = self.r.hgetall(self.key("log", log_name))
        hour = cast("list[str]", self.r.zrangebyscore(self.key("log", log_name, "hour"), at_ms - 3_600_000, "+inf"))
        last_hour = {"files": 0, "bytes": 0}
        for member in hour:
            d = json.loads(member)
            last_hour["files"] += int(d["files"])
            last_hour["bytes"] += int(d["bytes"])

        def num(k):
            return int(raw[k]) if raw.get(k) not in (None, "") else None

        return {
            "totals": {k: int(raw.get(k) or 0) for k in COUNTERS},
            "failures": int(raw.get("failures") or 0),
            "failed-since-success": int(raw.get("failed-since-success") or 0),
            "last-commit-ms": num("last-commit-ms"),
            "last-data-ms": num("last-data-ms"),
            "last-run": json.loads(raw["last-run"]) if raw.get("last-run") else None,
            "last-error": json.loads(raw["last-error"]) if raw.get("last-error") else None,
            "max-rss-mb": float(raw["max-rss-mb"]) if raw.get("max-rss-mb") else None,
            "last-hour": last_hour,
        }

    def failing_logs(self) -> set[str]:
        """Logs whose latest runs failed (failures since their last successful commit)."""
        names = sorted(cast("set[str]", self.r.smembers(self.key("logs"))))
        p = self._pipe()
        for name in names:
            p.hget(self.key("log", name), "failed-since-success")
        return {name for name, v in zip(names, p.execute() if names else []) if int(v or 0) > 0}

    def meter(self, at_ms: int) -> dict[str, float]:
        """pseidon-etl's meter of messages entering the ETL: count, one- and five-minute rates and the mean rate.
        Here: messages read by committed runs; a run's messages are spread evenly over its duration; the rates are
        plain window averages (messages per second over the last 60 / 300 s), not exponentially weighted."""
        count = int(self.r.get(self.key("messages")) or 0)
        since = self.r.get(self.key("since"))
        commits = cast("list[str]", self.r.zrangebyscore(self.key("commits"), at_ms - 300_000, "+inf"))
        events = [json.loads(m) for m in commits]

        def window(seconds: int) -> float:
            lo = at_ms - seconds * 1000
            total = 0.0
            for e in events:
                start, end, n = int(e["start"]), int(e["end"]), int(e["read"])
                if end <= lo:
                    continue
                span = end - start
                total += n if span <= 0 else n * (min(end, at_ms) - max(start, lo)) / span
            return total / seconds

        mean = count / max((at_ms - int(since)) / 1000.0, 1.0) if since else 0.0
        return {"count": count, "one-minute-rate": round(window(60), 3), "five-minute-rate": round(window(300), 3),
                "mean-rate": round(mean, 3)}

    def queues(self) -> dict[str, int | None]:
        raw = self.r.hgetall(self.key("queues"))
        return {k: int(raw[k]) if raw.get(k) else None for k in ("work-queue", "runs-queued", "runs-in-progress",
                                                                 "at-ms")}


def _client(settings: RedisSettings) -> RedisClient:
    return connect(dataclasses.replace(settings, timeout_s=min(settings.timeout_s, METRICS_REDIS_TIMEOUT_S)))


def metrics_client(settings: Settings, offsets_client: RedisClient | None = None) -> tuple[RedisClient, bool]:
    """(client, opened): the :metrics Redis, reusing OFFSETS_CLIENT when it is the same server."""
    if settings.ops.metrics_redis is None and offsets_client is not None:
        return offsets_client, False
    return _client(settings.metrics_redis), True


def record_commit_safely(settings: Settings, result, owner: str | None = None,
                         offsets_client: RedisClient | None = None) -> None:
    """What a run calls after its commit. Never raises: metrics that cannot be written are logged, not fatal."""
    r = None
    opened = False
    try:
        r, opened = metrics_client(settings, offsets_client)
        via, run = ("dagster", owner.split(":", 1)[1]) if owner and owner.startswith("dagster:") else ("cli", owner)
        MetricsStore(r, settings.etl_group).record_commit(result, run=run, via=via, host=socket.gethostname(),
                                                          max_rss_mb=peak_rss_mb())
    except Exception as e:  # noqa: BLE001 - metrics must never fail a committed run
        where = redis_where(r) if r is not None else "Redis"
        log.warning("%s: run metrics not recorded in %s (:metrics :redis): %s: %s", result.log, where,
                    type(e).__name__, e)
    finally:
        if opened and r is not None:
            try:
                r.close()
            except Exception:  # noqa: BLE001
                pass


def publish_queues(settings: Settings, waiting: list[str], queued: int, running: int,
                   offsets_client: RedisClient | None = None) -> None:
    """Replace `<group>-kafka-work-queue` (offsets Redis) with WAITING, one log name per entry, so LLEN is the number
    of logs with lag waiting for a run; and note the run queue for /metrics. Raises on Redis errors (the caller,
    the sensor, logs them and goes on)."""
    r = offsets_client or connect(settings.redis)
    try:
        key = work_queue_key(settings.etl_group)
        p = r.pipeline(transaction=not hasattr(r, "get_nodes"))  # one key: atomic on a single Redis
        p.delete(key)
        if waiting:
            p.rpush(key, *waiting)
        p.execute()
        m, opened = metrics_client(settings, r)
        try:
            MetricsStore(m, settings.etl_group).publish_queues(len(waiting), queued, running)
        finally:
            if opened:
                m.close()
    finally:
        if offsets_client is None:
            r.close()
