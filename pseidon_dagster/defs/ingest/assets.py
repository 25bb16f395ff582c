"""The lineage, per log: Kafka topic (source) -> lake_files (hour files) -> hive_table.

`ingest_job` (jobs.py), the tail, reads the topic and reports, per (log, event hour) it wrote, a materialization of
`lake_files` (and of `hive_table` when it registered Hive partitions); it reports an observation of `kafka_topic` per
run. A tail run touches whatever hours its messages carry, which no single asset partition could describe; reporting
the hours it wrote keeps the partitions true to the files.

`lake_files` and `hive_table` also have a compute function, `rebuild_hours` (backfill.py): materializing (log, hour)
partitions from the UI, or launching a backfill of a log x hour range, rebuilds exactly those hours from Kafka. With
BackfillPolicy.single_run() Dagster cuts a backfill into key ranges along the dimension with fewer distinct keys in
the selection: one run per log with all its hours when it has more hours than logs (the usual case), else one run
per hour spanning the logs; either way a run gets its (log, hour) keys in context.partition_keys.
"""

import warnings

import dagster as dg
from pydantic import Field

from ..ops.freshness import lake_files_policy
from .backfill import rebuild_partitions
from .constants import GROUP, HIVE_TABLE, KAFKA_TOPIC, LAKE_FILES, LOG_DIM
from .partitions import log_hours, logs
from .resources import PseidonResource

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

class RebuildConfig(dg.Config):
    dry_run: bool = Field(
        default=False,
        description="Report per hour what the rebuild would write (records and files now, records it would write, "
                    "what it would quarantine) as observations, and change nothing.")
    allow_shrink: bool = Field(
        default=False,
        description="Replace an hour even when the rebuild holds fewer records than its files do now (data expired "
                    "from Kafka, or now quarantined). Without it such an hour is kept and the run names it.")


@dg.multi_asset(
    name="rebuild_hours",
    specs=[
        dg.AssetSpec(
            LAKE_FILES,
            description=(
                "Hour files of each log: <base_partition>/<log_partition>/date=YYYYMMDD/hour=YYYYMMDDHH/"
                "<log>-YYYY-MM-DD-HH.p<partition>.o<start>-<end>.<ext>. Partitioned by log x event hour (UTC). "
                "The tail (ingest_job) reports a materialization per hour it wrote. Materializing partitions here "
                "-- from the UI or a backfill of log x hour range -- REBUILDS those hours from Kafka: exactly the "
                "log's committed messages of each hour, swapped in atomically; offsets do not move."),
            group_name=GROUP, kinds={"file"}, partitions_def=log_hours, skippable=True,
            freshness_policy=lake_files_policy(),  # asset-wide; per log: the `freshness` check (defs/ops/freshness.py)
            deps=[dg.AssetDep(KAFKA_TOPIC, partition_mapping=dg.MultiToSingleDimensionPartitionMapping(
                partition_dimension_name=LOG_DIM))],
        ),
        dg.AssetSpec(
            HIVE_TABLE,
            description=(
                "The Hive table of each log (pseidon_logs.hive_table_name), one Hive partition per event hour "
                "(:hive :date-column/:hour-column), registered (ADD IF NOT EXISTS PARTITION ... LOCATION) before "
                "the offsets are committed, and switched atomically (SET LOCATION) when an hour is rebuilt."),
            group_name=GROUP, kinds={"hive"}, partitions_def=log_hours, skippable=True, deps=[LAKE_FILES],
        ),
    ],
    partitions_def=log_hours,
    backfill_policy=dg.BackfillPolicy.single_run(),
    # Subsettable, so "Materialize" on lake_files selects lake_files alone. Not subsettable, the UI adds hive_table
    # to every selection (after a confirmation) and a backfill then targets hive_table partitions too: for a log
    # without a Hive table, or an hour without data, nothing materializes them, and Dagster's backfill daemon --
    # which counts a targeted partition as done only when a run of the backfill recorded a materialization of it --
    # marks them failed once the runs are over ("stalled"), so the backfill ends COMPLETED_FAILED. Whatever is
    # selected, a rebuild swaps the Hive partitions of the hours it replaces and reports hive_table for them.
    can_subset=True,
    description="Rebuild the selected (log, hour) partitions from Kafka: one run per log (for a selection with more "
                "hours than logs), Kafka read once per contiguous window of hours (core/rebuild.py).",
)
def rebuild_hours(context: dg.AssetExecutionContext, config: RebuildConfig, pseidon: PseidonResource):
    rebuild_partitions(context, pseidon, dry_run=config.dry_run, allow_shrink=config.allow_shrink)
    # Each (log, hour) is reported with its own numbers as an event (backfill.py); there is no output to store. The
    # specs are skippable, so Dagster records no materialization of its own for the run's partition range: a backfill
    # counts exactly the (log, hour) partitions reported, and one the rebuild did not materialize (kept by the shrink
    # guard, a dry run) shows as failed on the backfill's page.
    yield from ()
