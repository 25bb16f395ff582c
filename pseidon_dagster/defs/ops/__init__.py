"""Operations: what tells an operator that something is wrong, and how far behind the logs are.

    queues.py      etl-kafka-work-queue and the run queue, published by ingest_sensor at each tick
    alerts.py      run_failure_alerts: one line per failed run (log, step, error, run id), POSTed to :alerts :webhook
    fatal.py       fatal_errors hook: unrecoverable errors appended to :fatal-errors-file
    freshness.py   lake_files' freshness policy, the per-log `freshness` check and freshness_sensor

The counters and the /metrics views are plain Python in core/metrics.py (served by `pseidon-dagster metrics-server`).
"""
