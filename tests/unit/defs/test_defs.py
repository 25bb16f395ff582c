"""The code location loads, and its shape is what the README describes (a snapshot: a change to the asset graph, the
partitions, checks, jobs or automation shows up here in review)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dagster as dg

from pseidon_dagster.core import config as config_mod
from pseidon_dagster.definitions import build_defs
from pseidon_dagster.defs.ingest.constants import HIVE_TABLE, KAFKA_TOPIC, LAKE_FILES
from tests import REPO_ROOT as REPO


def test_definitions_load_and_validate():
    defs = build_defs()
    dg.Definitions.validate_loadable(defs)


def test_dagster_cli_validates_the_workspace():
    dagster = Path(sys.executable).parent / "dagster"
    proc = subprocess.run([str(dagster), "definitions", "validate", "-w", "workspace.yaml"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "All code locations passed validation" in proc.stdout + proc.stderr


def test_snapshot_of_the_graph():
    defs = build_defs()
    graph = defs.resolve_asset_graph()

    def describe(key):
        node = graph.get(key)
        pd = node.partitions_def
        return {
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "partitions": type(pd).__name__ if pd else None,
            "dims": (sorted(d.name for d in pd.partitions_defs) if isinstance(pd, dg.MultiPartitionsDefinition)
                     else None),
            "executable": node.is_executable,
            "kinds": sorted(node.kinds),
        }

    assert {k.to_user_string(): describe(k) for k in graph.get_all_asset_keys()} == {
        "kafka_topic": {"deps": [], "partitions": "DynamicPartitionsDefinition", "dims": None,
                        "executable": False, "kinds": ["kafka"]},
        "lake_files": {"deps": ["kafka_topic"], "partitions": "MultiPartitionsDefinition", "dims": ["hour", "log"],
                       "executable": True, "kinds": ["file"]},
        "hive_table": {"deps": ["lake_files"], "partitions": "MultiPartitionsDefinition", "dims": ["hour", "log"],
                       "executable": True, "kinds": ["hive"]},
    }
    assert graph.get(LAKE_FILES).partitions_def == graph.get(HIVE_TABLE).partitions_def
    # backfills of lake_files run once per log with all the selected hours (BackfillPolicy.single_run)
    assert graph.get(LAKE_FILES).backfill_policy == dg.BackfillPolicy.single_run()
    logs_dim = graph.get(LAKE_FILES).partitions_def.get_partitions_def_for_dimension("log")
    assert logs_dim == graph.get(KAFKA_TOPIC).partitions_def
    assert sorted((c.asset_key.to_user_string(), c.name) for c in graph.asset_check_keys) == [
        ("lake_files", "freshness"), ("lake_files", "offset_continuity"), ("lake_files", "record_counts")]
    assert sorted(j.name for j in defs.resolve_all_job_defs() if not j.name.startswith("__")) == [
        "compact_job", "hive_table_job", "ingest_job", "redrive_job", "retention_job"]
    # compaction: off until turned on; retention: on, but it only runs logs that have a retention
    assert defs.resolve_schedule_def("compaction_schedule").default_status == dg.DefaultScheduleStatus.STOPPED
    assert defs.resolve_schedule_def("retention_schedule").default_status == dg.DefaultScheduleStatus.RUNNING
    sensor = defs.resolve_sensor_def("ingest_sensor")
    assert sensor.minimum_interval_seconds == 30
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.job_name == "ingest_job"
    schedule = defs.resolve_schedule_def("ingest_schedule")
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED  # the alternative to the sensor: off
    assert schedule.job_name == "ingest_job"
    assert set(defs.resources) == {"pseidon"}
    # operations (defs/ops): failed runs alert, freshness per log, fatal errors on the jobs
    alerts = defs.resolve_sensor_def("run_failure_alerts")
    assert alerts.default_status == dg.DefaultSensorStatus.RUNNING
    assert defs.resolve_sensor_def("freshness_sensor").default_status == dg.DefaultSensorStatus.RUNNING
    for job in ("ingest_job", "hive_table_job"):
        assert {h.name for h in defs.resolve_job_def(job).hook_defs} == {"fatal_errors"}


def test_instance_yaml_limits_one_run_per_log_and_retries(tmp_path, monkeypatch):
    (tmp_path / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        queue = instance.get_concurrency_config().run_queue_config
        assert queue.tag_concurrency_limits == [{"key": "log", "value": {"applyLimitPerUniqueValue": True},
                                                 "limit": 1}]
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        assert str(tmp_path) in instance.run_storage._conn_string  # noqa: SLF001 - SQLite under $DAGSTER_HOME
        assert not instance.telemetry_enabled


def test_sample_config_is_the_embedded_loopback_stack():
    s = config_mod.load(REPO / "conf" / "pseidon.edn")
    assert s.etl_db_url == "sqlite:///var/pseidon.db"
    assert s.kafka_brokers == ("127.0.0.1:19092",)
    assert s.redis.hosts == (("127.0.0.1", 6379),)
    assert s.data_dir == "var/data" and s.kafka_use_earliest
    text = (REPO / "conf" / "pseidon.edn").read_text()
    # every key the code reads is documented in the sample
    for key in ("etl-db-host", "etl-db-user", "etl-db-pwd", "etl-group", "kafka-brokers", "kafka-use-earliest",
                "kafka-timeout-ms", "kafka-batch-size", "max-offsets-per-partition", "kafka-config", "redis-conf",
                "data-dir", "writer", "rollover-size", "rollover-timeout", "rollover-abs-timeout", "max-open-files",
                "gzip-level", "zstd-level", "parquet-codec", "parquet-block-size", "allow-all-ts",
                "ts-window-back-ms", "ts-window-ahead-ms", "hive", "date-column", "hour-column", "date-value",
                "hour-value", "retries", "retry-backoff-ms", "avro-schema-registry-url", "schema-dir",
                "sensor-min-lag", "sensor-max-wait-ms", "vault", *config_mod.OPS_KEYS, *config_mod.KEYS_WITHOUT_EFFECT):
        assert f":{key} " in text, key
    assert "//127.0.0.1:3306/" in text  # the original's JDBC subname form, commented


def test_commented_examples_in_the_sample_config_parse():
    """Uncommenting the one-line examples of the sample keeps it a valid config."""
    lines = []
    for line in (REPO / "conf" / "pseidon.edn").read_text().splitlines():
        body = line.strip()
        if body.startswith(";; :etl-db-") or body.startswith(";; :kafka-") or body.startswith(";; :max-offsets") \
                or body.startswith(";; :sensor-max-wait-ms") or body.startswith(";; :schema-dir"):
            if "{" not in body or body.count("{") == body.count("}"):
                line = line.replace(";; ", "", 1)
        lines.append(line)
    raw = "\n".join(lines)
    assert raw.count("\n :etl-db-host") == 2
    raw = raw.replace(' :etl-db-host "sqlite:///var/pseidon.db"\n', "", 1)
    path = Path("/tmp") / f"pseidon-sample-{id(raw)}.edn"
    path.write_text(raw)
    try:
        s = config_mod.load(path, resolve_secret=lambda v: v)
    finally:
        path.unlink()
    assert s.etl_db_url.startswith("mysql+pymysql://pseidon:")
    assert s.kafka_timeout_s == 10 and s.max_offsets_per_partition == 5_000_000 and s.sensor_max_wait_ms == 600_000
