"""The lineage, per log: Kafka topic (source) -> lake_files (hour files) -> hive_table.

None of the three has a compute function here. `ingest_job` (jobs.py) reads the topic and reports, per (log, event
hour) it wrote, a materialization of `lake_files` (and of `hive_table` when it registered Hive partitions); it
reports an observation of `kafka_topic` per run. A tail run touches whatever hours its messages carry, which no
single asset partition could describe; reporting the hours it wrote keeps the partitions true to the files.
"""
from __future__ import annotations

import warnings

import dagster as dg

from .constants import GROUP, HIVE_TABLE, KAFKA_TOPIC, LAKE_FILES, LOG_DIM
from .partitions import log_hours, logs

kafka_topic = dg.AssetSpec(
    KAFKA_TOPIC,
    description=(
        "The Kafka topic of each log (a `logs` partition per pseidon_logs row). Read by assignment from the offsets "
        "stored in Redis (/<etl-group>/offsets/<topic>/<partition>); each ingest run records an observation with "
        "what it read, the offsets it committed and the lag it left."
    ),
    group_name=GROUP,
    kinds={"kafka"},
    partitions_def=logs,
)

# MultiToSingleDimensionPartitionMapping is marked beta in 1.13: expected, silenced for this module's use only.
warnings.filterwarnings("ignore", message=".*MultiToSingleDimensionPartitionMapping", category=dg.BetaWarning)

lake_files = dg.AssetSpec(
    LAKE_FILES,
    description=(
        "Hour files of each log: <base_partition>/<log_partition>/date=YYYYMMDD/hour=YYYYMMDDHH/"
        "<log>-YYYY-MM-DD-HH.p<partition>.o<start>-<end>.<ext>. Partitioned by log x event hour (UTC): a "
        "materialized partition is an hour that holds data. Materialized by ingest_job, one event per hour a run "
        "wrote, with the run's counts, offsets, throughput and lag."
    ),
    group_name=GROUP,
    kinds={"file"},
    partitions_def=log_hours,
    deps=[
        dg.AssetDep(
            KAFKA_TOPIC,
            partition_mapping=dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name=LOG_DIM),
        )
    ],
)

hive_table = dg.AssetSpec(
    HIVE_TABLE,
    description=(
        "The Hive table of each log (pseidon_logs.hive_table_name), one Hive partition per event hour "
        "(:hive :date-column/:hour-column). Reported by ingest_job when the log has a hive_url and its Hive "
        "partitions were registered (ADD IF NOT EXISTS PARTITION ... LOCATION) before the offsets were committed."
    ),
    group_name=GROUP,
    kinds={"hive"},
    partitions_def=log_hours,
    deps=[LAKE_FILES],
)
