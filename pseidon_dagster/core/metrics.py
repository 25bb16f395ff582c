"""Operations metrics: counters that runs write to Redis, and the views of them -- the /metrics JSON page (the fields
pseidon-etl's users watched), its Prometheus twin, and the per-log status rows of `pseidon-dagster status`.

Where the numbers come from:
- Runs: right after a successful commit (`Ingestor.commit`), the run adds its counts to Redis (`record_commit`); a
  failure to do so is logged and never fails the run. The Redis is `:metrics {:redis {...}}`, else the offsets Redis,
  so every machine that runs the ETL writes to the same place and one page shows them all.
- Failed runs: the run-failure sensor (`record_failure`).
- Queues: the ingest sensor, every tick (`publish_queues`): the `<group>-kafka-work-queue` list (the original's
  `etl-kafka-work-queue`, in the offsets Redis) holds one entry per log with lag that waits for a run.
- Lag: measured live when a page is asked for (watermarks against the stored offsets, short timeouts, cached for a
  few seconds), never from a counter.

Keys (G = :etl-group; the hash tag {metrics} keeps them in one slot of a Redis Cluster):
    /G/{metrics}/since             when the first counted run started (ms)
    /G/{metrics}/messages          messages read by committed runs, all logs
    /G/{metrics}/commits           recent commits (15 min) for the one- and five-minute rates
    /G/{metrics}/logs              every log that has counters
    /G/{metrics}/log/<log>         per log: totals, last commit, last run, failures, last error
    /G/{metrics}/log/<log>/hour    the log's commits of the last two hours (files and bytes in the last hour)
    /G/{metrics}/queues            what the sensor saw at its last tick: logs waiting, runs queued, runs in progress
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import http.server
import json
import logging
import os
import resource
import socket
import threading
import time
from typing import Any, Callable

import redis

from .config import RedisSettings, Settings

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

    def __init__(self, r: redis.Redis, group: str):
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
        hour = self.r.zrangebyscore(self.key("log", log_name, "hour"), at_ms - 3_600_000, "+inf")
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
        names = sorted(self.r.smembers(self.key("logs")))
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
        events = [json.loads(m) for m in self.r.zrangebyscore(self.key("commits"), at_ms - 300_000, "+inf")]

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


def _client(settings: RedisSettings) -> redis.Redis:
    from .offsets import connect

    return connect(dataclasses.replace(settings, timeout_s=min(settings.timeout_s, METRICS_REDIS_TIMEOUT_S)))


def metrics_client(settings: Settings, offsets_client: redis.Redis | None = None) -> tuple[redis.Redis, bool]:
    """(client, opened): the :metrics Redis, reusing OFFSETS_CLIENT when it is the same server."""
    if settings.ops.metrics_redis is None and offsets_client is not None:
        return offsets_client, False
    return _client(settings.metrics_redis), True


def record_commit_safely(settings: Settings, result, owner: str | None = None,
                         offsets_client: redis.Redis | None = None) -> None:
    """What a run calls after its commit. Never raises: metrics that cannot be written are logged, not fatal."""
    r = None
    opened = False
    try:
        r, opened = metrics_client(settings, offsets_client)
        via, run = ("dagster", owner.split(":", 1)[1]) if owner and owner.startswith("dagster:") else ("cli", owner)
        MetricsStore(r, settings.etl_group).record_commit(result, run=run, via=via, host=socket.gethostname(),
                                                          max_rss_mb=peak_rss_mb())
    except Exception as e:  # noqa: BLE001 - metrics must never fail a committed run
        from .offsets import redis_where

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
                   offsets_client: redis.Redis | None = None) -> None:
    """Replace `<group>-kafka-work-queue` (offsets Redis) with WAITING, one log name per entry, so LLEN is the number
    of logs with lag waiting for a run; and note the run queue for /metrics. Raises on Redis errors (the caller,
    the sensor, logs them and goes on)."""
    from .offsets import connect

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


# ---------------------------------------------------------------------------------------------------------------
# this machine: TCP connections to the configured servers, memory


def _resolve(host: str) -> set[str]:
    try:
        return {ai[4][0] for ai in socket.getaddrinfo(host, None)}
    except OSError:
        return set()


def _endpoints(settings: Settings) -> dict[str, set[tuple[str, int]]]:
    out: dict[str, set[tuple[str, int]]] = {"kafka": set(), "redis": set(), "etl-db": set()}
    for b in settings.kafka_brokers:
        h, _, p = b.rpartition(":")
        out["kafka"].update((ip, int(p)) for ip in _resolve(h.strip("[]")))
    for h, p in {*settings.redis.hosts, *settings.metrics_redis.hosts}:
        out["redis"].update((ip, p) for ip in _resolve(h))
    try:
        from sqlalchemy.engine import make_url

        u = make_url(settings.etl_db_url)
        if u.host:
            out["etl-db"].update((ip, u.port or 3306) for ip in _resolve(u.host))
    except Exception:  # noqa: BLE001
        pass
    return out


def _proc_tcp() -> list[tuple[str, int]] | None:
    """Remote (address, port) of every ESTABLISHED TCP connection of this machine (Linux /proc/net/tcp{,6})."""
    import ipaddress

    out = []
    found = False
    for name, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        try:
            with open(name) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        found = True
        for line in lines:
            parts = line.split()
            if len(parts) < 4 or parts[3] != "01":
                continue
            addr, port = parts[2].split(":")
            raw = bytes.fromhex(addr)
            if v6:
                raw = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                ip = ipaddress.IPv6Address(raw)
                ip = ip.ipv4_mapped or ip
            else:
                ip = ipaddress.IPv4Address(raw[::-1])
            out.append((str(ip), int(port, 16)))
    return out if found else None


def open_connections(settings: Settings) -> dict[str, int | None]:
    conns = _proc_tcp()
    if conns is None:
        return {"tcp-conn": None, "kafka": None, "redis": None, "etl-db": None}
    out: dict[str, int | None] = {}
    for kind, eps in _endpoints(settings).items():
        out[kind] = sum(1 for c in conns if c in eps)
    out["tcp-conn"] = sum(v or 0 for v in out.values())
    return out


def host_memory() -> dict[str, float | None]:
    info = {}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                k, _, v = line.partition(":")
                info[k] = int(v.split()[0]) / 1024.0
    except OSError:
        return {"total-mb": None, "available-mb": None, "used-mb": None}
    total, avail = info.get("MemTotal"), info.get("MemAvailable")
    return {"total-mb": round(total, 1) if total else None, "available-mb": round(avail, 1) if avail else None,
            "used-mb": round(total - avail, 1) if total and avail else None}


def _own_rss_mb() -> float | None:
    try:
        with open("/proc/self/statm") as f:
            return round(int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)
    except (OSError, ValueError):
        return None


def redis_info(r: redis.Redis) -> dict:
    from .offsets import redis_where

    out: dict[str, Any] = {"server": redis_where(r)}
    try:
        t0 = time.monotonic()
        r.ping()
        out["ping-ms"] = round((time.monotonic() - t0) * 1000, 2)
        info = r.info()
        if hasattr(r, "get_nodes"):  # a cluster answers per node: sum them
            info = {"connected_clients": sum(v.get("connected_clients", 0) for v in info.values()),
                    "used_memory": sum(v.get("used_memory", 0) for v in info.values())}
        out["connected-clients"] = int(info.get("connected_clients", 0))
        out["used-memory-mb"] = round(int(info.get("used_memory", 0)) / 2**20, 2)
    except redis.RedisError as e:
        out["error"] = f"{type(e).__name__}: {e}"
    return out


# ---------------------------------------------------------------------------------------------------------------
# the page


def freshness(settings: Settings, log_name: str, enabled: bool, last_data_ms: int | None, at_ms: int) -> dict:
    limit = settings.ops.freshness_for(log_name)
    age = None if last_data_ms is None else round((at_ms - last_data_ms) / 60_000, 1)
    if not enabled:
        state = "disabled"
    elif last_data_ms is None:
        state = "unknown"  # nothing landed since the counters exist
    else:
        state = "fresh" if at_ms - last_data_ms < limit * 60_000 else "stale"
    return {"state": state, "limit-minutes": limit, "age-minutes": age, "last-data": iso(last_data_ms)}


class Snapshotter:
    """Builds the page: counters from the metrics Redis, lag measured live. SETTINGS is Settings or a function
    returning them (the server re-reads pseidon.edn for every page it builds); pages are cached CACHE_S seconds so
    scrapers cannot hammer Kafka."""

    def __init__(self, settings: Settings | Callable[[], Settings], cache_s: float = 5.0):
        self._settings = settings if callable(settings) else (lambda: settings)
        self.cache_s = cache_s
        self._lock = threading.Lock()
        self._cached: tuple[float, dict] | None = None

    def snapshot(self, at_ms: int | None = None) -> dict:
        with self._lock:
            if at_ms is None and self._cached and time.monotonic() - self._cached[0] < self.cache_s:
                return self._cached[1]
            page = self._build(self._settings(), at_ms or now_ms())
            if at_ms is None:
                self._cached = (time.monotonic(), page)
            return page

    def _build(self, settings: Settings, at: int) -> dict:
        from .kafka import KafkaSource, KafkaUnavailable
        from .lag import measure, sensor_settings
        from .logtable import LogTable
        from .offsets import OffsetStore, connect

        quick = sensor_settings(settings)
        table = LogTable.for_settings(quick)
        offsets_r = connect(quick.redis)
        metrics_r, opened = metrics_client(quick, offsets_r)
        consumer = None
        try:
            ms = MetricsStore(metrics_r, settings.etl_group)
            store = OffsetStore(offsets_r, settings.etl_group)
            kafka = KafkaSource(quick)
            rows = table.rows(settings.etl_group, enabled_only=False)
            t0 = time.monotonic()
            logs: dict[str, dict] = {}
            topic_errors: dict[str, dict] = {}
            runs_memory: dict[str, dict] = {}
            kafka_down = None
            for row in rows:
                name, enabled = row["log"], bool(row.get("enabled"))
                state = ms.log_state(name, at)
                entry: dict[str, Any] = {"enabled": enabled, "group": row.get("log_group"), "lag": {},
                                         "lag-total": None}
                if enabled:
                    if kafka_down:
                        entry["lag-error"] = kafka_down
                    elif time.monotonic() - t0 > MEASURE_BUDGET_S:
                        entry["lag-error"] = f"not measured: the page's {MEASURE_BUDGET_S:.0f}s budget was used up"
                    else:
                        try:
                            consumer = consumer or kafka.consumer()
                            m = measure(name, kafka, store, consumer)
                            starts = m.starts
                            entry["lag"] = {str(p): max(0, hi - max(starts[p], lo))
                                            for p, (lo, hi) in sorted(m.marks.items())}
                            entry["lag-total"] = sum(entry["lag"].values())
                            if m.plan_id:
                                entry["plan-in-flight"] = m.plan_id
                        except KafkaUnavailable as e:
                            entry["lag-error"] = str(e)
                            if "does not exist" not in str(e):
                                kafka_down = str(e)
                entry.update({
                    "last-commit-ms": state["last-commit-ms"], "last-commit": iso(state["last-commit-ms"]),
                    "seconds-since-last-commit": None if state["last-commit-ms"] is None
                    else round((at - state["last-commit-ms"]) / 1000, 1),
                    "last-data-ms": state["last-data-ms"],
                    "last-run": state["last-run"], "last-error": state["last-error"],
                    "failed-runs": state["failed-since-success"],
                    "totals": state["totals"], "last-hour": state["last-hour"],
                    "freshness": freshness(settings, name, enabled, state["last-data-ms"], at),
                })
                logs[name] = entry
                if state["failures"]:
                    topic_errors[name] = {"failed-runs": state["failed-since-success"],
                                          "failed-runs-total": state["failures"],
                                          "last-error": state["last-error"]}
                if state["max-rss-mb"] is not None:
                    runs_memory[name] = {"max-rss-mb": state["max-rss-mb"]}
            queues = ms.queues()
            redis_conn = {"offsets": redis_info(offsets_r)}
            if opened:
                redis_conn["metrics"] = redis_info(metrics_r)
            return {
                "etl-service-thread-queue": queues["runs-queued"] or 0,
                "etl-service-thread-metrics": ms.meter(at),
                "open-connections": open_connections(settings),
                "topic-errors": topic_errors,
                "memory": {"host": host_memory(), "metrics-server": {"rss-mb": _own_rss_mb()}, "runs": runs_memory},
                "redis": {"redis-conn": redis_conn},
                "etl-kafka-work-queue": int(offsets_r.llen(work_queue_key(settings.etl_group))),
                "runs-in-progress": queues["runs-in-progress"] or 0,
                "queues-updated": iso(queues["at-ms"]),
                "etl-group": settings.etl_group,
                "version": _version(),
                "measured-at": iso(at),
                "measured-at-ms": at,
                "logs": logs,
            }
        finally:
            if consumer is not None:
                consumer.close()
            table.engine.dispose()
            for c in (offsets_r, metrics_r if opened else None):
                if c is not None:
                    try:
                        c.close()
                    except Exception:  # noqa: BLE001
                        pass


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("pseidon-dagster")
    except Exception:  # noqa: BLE001
        return "unknown"


# ---------------------------------------------------------------------------------------------------------------
# Prometheus


def prometheus_text(page: dict) -> bytes:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    class Collector:
        def collect(self):
            logs = page["logs"]

            def per_log(name, doc, value_of, kind=GaugeMetricFamily):
                fam = kind(name, doc, labels=["log"])
                for lg, e in sorted(logs.items()):
                    v = value_of(e)
                    if v is not None:
                        fam.add_metric([lg], float(v))
                return fam

            lag = GaugeMetricFamily("pseidon_log_lag_messages", "Messages in Kafka not yet committed, measured live",
                                    labels=["log", "partition"])
            for lg, e in sorted(logs.items()):
                for p, v in e["lag"].items():
                    lag.add_metric([lg, p], float(v))
            yield lag
            yield per_log("pseidon_log_enabled", "1 if the pseidon_logs row is enabled", lambda e: int(e["enabled"]))
            yield per_log("pseidon_last_commit_timestamp_seconds", "Time of the last successful commit",
                          lambda e: e["last-commit-ms"] / 1000 if e["last-commit-ms"] else None)
            yield per_log("pseidon_last_data_timestamp_seconds", "Time of the last commit that landed data files",
                          lambda e: e["last-data-ms"] / 1000 if e["last-data-ms"] else None)
            for field, doc in (("messages", "Messages read"), ("written", "Messages written"),
                               ("quarantined", "Messages quarantined"), ("bytes", "Bytes of files published"),
                               ("files", "Files published"), ("seconds", "Duration in seconds")):
                yield per_log(f"pseidon_last_run_{field}", f"{doc} by the log's last committed run",
                              lambda e, f=field: (e["last-run"] or {}).get(f))
            for field, doc in (("messages", "Messages read by committed runs"), ("written", "Messages written"),
                               ("filtered", "Null messages filtered"), ("quarantined", "Messages quarantined"),
                               ("bytes", "Bytes of files published"), ("files", "Files published"),
                               ("runs", "Committed runs")):
                yield per_log(f"pseidon_{field}_total", doc, lambda e, f=field: e["totals"][f], CounterMetricFamily)
            yield _failures(page)
            yield per_log("pseidon_failed_runs_since_success", "Failed runs since the last successful commit",
                          lambda e: e["failed-runs"])
            yield per_log("pseidon_freshness_limit_seconds", "How long the log may go without landing data",
                          lambda e: e["freshness"]["limit-minutes"] * 60)
            yield per_log("pseidon_log_stale", "1 if the log has not landed data within its freshness limit",
                          lambda e: {"stale": 1, "fresh": 0}.get(e["freshness"]["state"]))
            yield per_log("pseidon_last_hour_files", "Files published in the last hour", lambda e: e["last-hour"]["files"])
            yield per_log("pseidon_last_hour_bytes", "Bytes published in the last hour", lambda e: e["last-hour"]["bytes"])
            mem = GaugeMetricFamily("pseidon_run_max_rss_bytes", "Peak RSS of the log's last committed run",
                                    labels=["log"])
            for lg, v in sorted(page["memory"]["runs"].items()):
                mem.add_metric([lg], v["max-rss-mb"] * 2**20)
            yield mem
            meter = page["etl-service-thread-metrics"]
            yield CounterMetricFamily("pseidon_etl_messages_total", "Messages read by committed runs, all logs",
                                      value=meter["count"])
            rate = GaugeMetricFamily("pseidon_messages_rate", "Messages per second read by committed runs",
                                     labels=["window"])
            for w, k in (("1m", "one-minute-rate"), ("5m", "five-minute-rate"), ("mean", "mean-rate")):
                rate.add_metric([w], meter[k])
            yield rate
            yield GaugeMetricFamily("pseidon_work_queue_logs", "Logs with lag waiting for a run (etl-kafka-work-queue)",
                                    value=page["etl-kafka-work-queue"])
            yield GaugeMetricFamily("pseidon_runs_queued", "Ingest runs queued in Dagster, not started",
                                    value=page["etl-service-thread-queue"])
            yield GaugeMetricFamily("pseidon_runs_in_progress", "Ingest runs started and not finished",
                                    value=page["runs-in-progress"])
            conns = GaugeMetricFamily("pseidon_open_connections", "Established TCP connections of this machine to "
                                      "the configured servers", labels=["server"])
            for k, v in page["open-connections"].items():
                if v is not None and k != "tcp-conn":
                    conns.add_metric([k], v)
            yield conns
            host = GaugeMetricFamily("pseidon_host_memory_bytes", "Memory of the machine serving this page",
                                     labels=["kind"])
            for k, v in page["memory"]["host"].items():
                if v is not None:
                    host.add_metric([k.replace("-mb", "")], v * 2**20)
            yield host

    def _failures(pg):
        fam = CounterMetricFamily("pseidon_run_failures_total", "Failed runs (run-failure sensor)", labels=["log"])
        for lg in sorted(pg["logs"]):
            fam.add_metric([lg], float((pg["topic-errors"].get(lg) or {}).get("failed-runs-total", 0)))
        return fam

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector())
    return generate_latest(registry)


# ---------------------------------------------------------------------------------------------------------------
# status rows


def status_rows(page: dict, dagster_runs: dict[str, dict] | None = None) -> list[dict]:
    """One row per log of the page: enabled, group, lag, last run and its result, last error, the last hour,
    freshness. DAGSTER_RUNS (log -> {status, run_id, end}) adds what Dagster's instance knows, when given."""
    rows = []
    for name, e in sorted(page["logs"].items()):
        last, err = e["last-run"], e["last-error"]
        run = None
        if last or err:
            failed = err is not None and (last is None or err["at-ms"] > last["at-ms"])
            src = err if failed else last
            run = {"result": "failure" if failed else "success", "at": iso(src["at-ms"]), "at-ms": src["at-ms"],
                   "run": src.get("run"), "messages": None if failed else last["messages"],
                   "step": err.get("step") if failed else None}
        row = {"log": name, "enabled": e["enabled"], "group": e["group"], "lag": e["lag"], "lag-total": e["lag-total"],
               "lag-error": e.get("lag-error"), "last-run": run,
               "last-error": None if err is None else {**err, "at": iso(err["at-ms"])},
               "last-hour": e["last-hour"], "freshness": e["freshness"]}
        if dagster_runs and name in dagster_runs:
            row["dagster"] = dagster_runs[name]
        rows.append(row)
    return rows


def _ago(ms: int | None, at: int) -> str:
    if ms is None:
        return "-"
    s = max(0, (at - ms) // 1000)
    return f"{s}s ago" if s < 120 else f"{s // 60}m ago" if s < 7200 else f"{s // 3600}h ago"


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return str(n)


def status_table(rows: list[dict], at_ms: int) -> str:
    head = ["LOG", "ENABLED", "GROUP", "LAG", "LAG/PARTITION", "LAST RUN", "RESULT", "FILES/1H", "BYTES/1H",
            "FRESHNESS", "LAST ERROR"]
    out = []
    for r in rows:
        run = r["last-run"] or {}
        if r.get("dagster"):
            run = {**run, "result": r["dagster"]["status"].lower()}
        f = r["freshness"]
        fresh = f["state"] if f["age-minutes"] is None else f"{f['state']} {f['age-minutes']:.0f}m/{f['limit-minutes']}m"
        err = r["last-error"]
        out.append([
            r["log"], "yes" if r["enabled"] else "no", r["group"] or "-",
            "-" if r["lag-total"] is None else str(r["lag-total"]),
            " ".join(f"p{p}:{v}" for p, v in r["lag"].items()) or ("?" if r.get("lag-error") else "-"),
            _ago(run.get("at-ms"), at_ms), run.get("result") or "-",
            str(r["last-hour"]["files"]), _size(r["last-hour"]["bytes"]), fresh,
            "-" if not err else f"{err.get('step') or ''} {_ago(err['at-ms'], at_ms)}: {err['error']}"[:100],
        ])
    widths = [max(len(h), *(len(x[i]) for x in out)) if out else len(h) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(x, widths)).rstrip() for x in out]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# the HTTP server


def make_server(settings: Settings | Callable[[], Settings], host: str = "127.0.0.1", port: int = 8282,
                cache_s: float = 5.0) -> http.server.ThreadingHTTPServer:
    snap = Snapshotter(settings, cache_s)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            path = self.path.split("?", 1)[0].rstrip("/")
            try:
                if path == "/metrics":
                    body = json.dumps(snap.snapshot(), indent=2, sort_keys=True).encode()
                    ctype = "application/json"
                elif path == "/metrics/prometheus":
                    from prometheus_client import CONTENT_TYPE_LATEST

                    body, ctype = prometheus_text(snap.snapshot()), CONTENT_TYPE_LATEST
                else:
                    self.send_error(404, "try /metrics or /metrics/prometheus")
                    return
            except Exception as e:  # noqa: BLE001 - one line, no traceback, to the scraper
                log.warning("metrics page failed: %s: %s", type(e).__name__, e)
                body = json.dumps({"error": f"{type(e).__name__}: {e}"}).encode()
                self.send_response(500)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt, *args):
            log.debug("%s %s", self.address_string(), fmt % args)

    class Server(http.server.ThreadingHTTPServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        daemon_threads = True

    return Server((host, port), Handler)


def serve(settings: Settings | Callable[[], Settings], host: str = "127.0.0.1", port: int = 8282,
          cache_s: float = 5.0) -> http.server.ThreadingHTTPServer:
    """Start the server in a background thread; shutdown() and server_close() stop it."""
    server = make_server(settings, host, port, cache_s)
    threading.Thread(target=server.serve_forever, daemon=True, name="pseidon-metrics").start()
    return server
