"""The ingest job and its assets as defined (no run): partitioned by log, every run tagged with its log, Hive
registration in the hive_ddl pool, a freshness policy on lake_files. Runs against the servers:
tests/integration/defs/."""
from __future__ import annotations

from pseidon_dagster.definitions import build_defs
from pseidon_dagster.defs.ingest.constants import HIVE_POOL, INGEST_JOB, LAKE_FILES, LOG_TAG, REGISTER_OP
from pseidon_dagster.defs.ingest.partitions import logs

DEFS = build_defs()
JOB = DEFS.resolve_job_def(INGEST_JOB)


def test_job_is_partitioned_by_logs_and_tags_every_run_with_its_log():
    assert JOB.partitions_def == logs
    # so runs launched by hand or by a backfill carry log=<name> too, and the per-log run limit holds for them
    assert JOB.partitioned_config.get_tags_for_partition_key("clicks")[LOG_TAG] == "clicks"


def test_register_op_is_in_the_hive_pool():
    assert JOB.graph.node_named(REGISTER_OP).definition.pool == HIVE_POOL


def test_lake_files_has_a_freshness_policy():
    spec = next(s for s in DEFS.resolve_all_asset_specs() if s.key == LAKE_FILES)
    assert spec.freshness_policy is not None
    assert spec.freshness_policy.fail_window.to_timedelta().total_seconds() == 120 * 60
