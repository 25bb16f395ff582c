"""The code location's default executor, used by the runs of the implicit asset job: materializations and backfills
of rebuild_hours (lake_files, hive_table). The rebuild is one step (the check steps are skipped: the step reports
the checks' results itself), so Dagster's default multiprocess executor would only start a second Python process for
every run -- seconds of startup per run on a backfill of many logs. ingest_job and hive_table_job set their own
(also in process).

In its own module: the defs-folder loader takes a module that defines Definitions as the whole of that module."""

import dagster as dg


@dg.definitions
def executor() -> dg.Definitions:
    return dg.Definitions(executor=dg.in_process_executor)
