"""Kafka topic -> hour files in the lake -> Hive table: the ingestion domain.

    constants.py   asset keys, names and tags shared by the modules below
    partitions.py  `logs` (dynamic, one key per pseidon_logs row) and `log_hours` (log x event hour)
    resources.py   PseidonResource: pseidon.edn, pseidon_logs, Redis offsets and Kafka, re-read on every use
    assets.py      kafka_topic (source) -> lake_files -> hive_table; rebuild_hours computes the last two (backfills)
    backfill.py    what rebuild_hours does with its (log, hour) partitions (core/rebuild.py) and what it reports
    executor.py    the code location's default executor (in process), used by the runs of rebuild_hours
    checks.py      offset_continuity and record_counts on lake_files
    jobs.py        ingest_job: one micro-batch of one log (a `logs` partition); hive_table_job: create its table
    sensors.py     ingest_sensor: keeps `logs` in sync with pseidon_logs and requests runs for logs with lag
                   (what it measures and decides is plain Python in core/lag.py)
    schedules.py   ingest_schedule: every enabled log on a cron, stopped by default
"""
