"""The /metrics page: counters from the metrics Redis, lag measured live, freshness per log."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from ..config import Settings
from ..kafka import KafkaSource, KafkaUnavailable
from ..lag import measure, sensor_settings
from ..logtable import LogTable
from ..offsets import OffsetStore, connect
from .host import _own_rss_mb, host_memory, open_connections, redis_info
from .store import (
    MEASURE_BUDGET_S,
    MetricsStore,
    iso,
    metrics_client,
    now_ms,
    work_queue_key,
)


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
