"""Names shared by the modules of this folder (so no module has to import another module's definitions)."""
from __future__ import annotations

import dagster as dg

GROUP = "pseidon"

KAFKA_TOPIC = dg.AssetKey("kafka_topic")
LAKE_FILES = dg.AssetKey("lake_files")
HIVE_TABLE = dg.AssetKey("hive_table")

OFFSET_CONTINUITY = "offset_continuity"
RECORD_COUNTS = "record_counts"

INGEST_JOB = "ingest_job"
INGEST_OP = "ingest_log"  # stage: plan, read, write, publish (its config holds the failure drill)
REGISTER_OP = "register_hive"
COMMIT_OP = "commit_offsets"
CREATE_TABLE_OP = "create_hive_table"
HIVE_TABLE_JOB = "hive_table_job"
HIVE_POOL = "hive_ddl"  # concurrency pool of the Hive DDL step (limit in dagster.yaml)
SENSOR = "ingest_sensor"
SCHEDULE = "ingest_schedule"

RESOURCE_KEY = "pseidon"

LOG_TAG = "log"  # every ingest run carries log=<name>; dagster.yaml allows one run per value at a time
REASON_TAG = "pseidon/reason"
LAG_TAG = "pseidon/lag"

LOG_DIM = "log"
HOUR_DIM = "hour"
