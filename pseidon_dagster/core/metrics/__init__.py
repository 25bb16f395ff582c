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

Modules: store (the counters and their Redis), host (this machine's connections and memory), page (the /metrics page),
prometheus, status (`pseidon-dagster status`), server (`pseidon-dagster metrics-server`).
"""
from .host import host_memory, open_connections, redis_info
from .page import Snapshotter, freshness
from .prometheus import prometheus_text
from .server import make_server, serve
from .status import status_rows, status_table
from .store import (
                    COUNTERS,
                    METRICS_REDIS_TIMEOUT_S,
                    MetricsStore,
                    iso,
                    metrics_client,
                    now_ms,
                    peak_rss_mb,
                    publish_queues,
                    record_commit_safely,
                    work_queue_key,
)

__all__ = ["COUNTERS", "METRICS_REDIS_TIMEOUT_S", "MetricsStore", "Snapshotter", "freshness", "host_memory", "iso",
           "make_server", "metrics_client", "now_ms", "open_connections", "peak_rss_mb", "prometheus_text",
           "publish_queues", "record_commit_safely", "redis_info", "serve", "status_rows", "status_table",
           "work_queue_key"]
