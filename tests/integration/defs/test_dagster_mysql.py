"""deploy/dagster.mysql.yaml against the local MariaDB: the instance stores runs, dynamic partitions, (log, hour)
materializations and partitioned check results there."""
from __future__ import annotations

import os

import dagster as dg
import pytest
import sqlalchemy as sa

from tests import REPO_ROOT as REPO
from tests.conftest import MYSQL_ADMIN_URL

pytestmark = pytest.mark.integration  # uses the local MariaDB



def mysql_instance_yaml() -> str:
    """The production instance on MySQL/MariaDB (deploy/dagster.mysql.yaml), as a user installs it."""
    return (REPO / "deploy" / "dagster.mysql.yaml").read_text()


@pytest.fixture
def mysql_db():
    url = sa.engine.make_url(MYSQL_ADMIN_URL)
    name = f"dagster_test_{os.getpid()}"
    admin = sa.create_engine(MYSQL_ADMIN_URL)
    with admin.begin() as c:
        c.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        c.execute(sa.text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4"))
    yield url, name
    with admin.begin() as c:
        c.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
    admin.dispose()


def test_mysql_storage_block_works_against_mariadb(tmp_path, monkeypatch, mysql_db):
    url, name = mysql_db
    (tmp_path / "dagster.yaml").write_text(mysql_instance_yaml())
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    monkeypatch.setenv("DAGSTER_MYSQL_HOST", url.host or "127.0.0.1")
    monkeypatch.setenv("DAGSTER_MYSQL_PORT", str(url.port or 3306))
    monkeypatch.setenv("DAGSTER_MYSQL_USER", url.username or "root")
    monkeypatch.setenv("DAGSTER_MYSQL_PASSWORD", url.password or "")
    monkeypatch.setenv("DAGSTER_MYSQL_DB", name)

    logs = dg.DynamicPartitionsDefinition(name="logs")
    key = dg.AssetKey("lake_files")

    @dg.op
    def land(context):
        pk = dg.MultiPartitionKey({"log": context.partition_key, "hour": "2026-11-20-07:00"})
        context.log_event(dg.AssetMaterialization(key, partition=pk, metadata={"records": 3}))
        context.log_event(dg.AssetCheckEvaluation(asset_key=key, check_name="record_counts", passed=True,
                                                  partition=str(pk)))

    @dg.job(partitions_def=logs, tags={"log": "clicks"})
    def trivial():
        land()

    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance.run_storage).__name__ == "MySQLRunStorage"
        assert type(instance.event_log_storage).__name__ == "MySQLEventLogStorage"
        instance.add_dynamic_partitions("logs", ["clicks"])
        result = trivial.execute_in_process(instance=instance, partition_key="clicks")
        assert result.success
        run_id = result.run_id

    # a fresh instance from the same config sees it all: it is in MariaDB, not in DAGSTER_HOME
    with dg.DagsterInstance.from_config(str(tmp_path)) as again:
        run = again.get_run_by_id(run_id)
        assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS and run.tags["log"] == "clicks"
        assert again.get_dynamic_partitions("logs") == ["clicks"]
        assert again.get_materialized_partitions(key) == {"2026-11-20-07:00|clicks"}
        history = again.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(key, "record_counts"), limit=5)
        assert [(r.partition, r.status.value) for r in history] == [("2026-11-20-07:00|clicks", "SUCCEEDED")]
    engine = sa.create_engine(url.set(database=name))
    with engine.connect() as c:
        tables = {r[0] for r in c.execute(sa.text("SHOW TABLES"))}
        assert {"runs", "event_logs", "dynamic_partitions"} <= tables
        assert c.execute(sa.text("SELECT COUNT(*) FROM runs WHERE run_id = :r"), {"r": run_id}).scalar() == 1
    engine.dispose()
    assert not (tmp_path / "history").exists()  # nothing went to SQLite
