"""deploy/: the production files, run as they are.

- The code server, the daemon and the webserver are started as three processes with the ExecStart lines of
  deploy/systemd/*.service (the venv, the workspace file and the ports moved to this checkout and free loopback
  ports, as vagrant/scripts/ci-local.sh does), on deploy/dagster.mysql.yaml against a throw-away database of the
  local MariaDB, with the variables of deploy/dagster.env. The daemon's ingest_sensor tick requests a run for a log
  with lag, the run queue launches it through the code server, and it lands the messages; the tick and the run are
  read back through the webserver's GraphQL, the run from MariaDB.
- deploy/dagster.postgres.yaml stores a run and its events in a throw-away database of the local PostgreSQL.
(That both carry the repository's limits, and the units' loopback ports: tests/unit/deploy/test_deploy_files.py.)
"""
from __future__ import annotations

import os
import shlex
import shutil
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from pseidon_dagster.core.kafka import KafkaSource
from pseidon_dagster.defs.ingest.constants import INGEST_JOB, LOG_TAG, SENSOR
from tests import REPO_ROOT as REPO
from tests.conftest import write_conf
from tests.integration.core.test_ingest import add_log, make_messages
from tests.integration.defs.test_backfill_daemon import BIN, Stack, free_port, graphql
from tests.integration.defs.test_dagster_mysql import mysql_db  # noqa: F401 - the throw-away MariaDB database fixture
from tests.unit.deploy.test_deploy_files import UNITS, env_file

pytestmark = pytest.mark.integration  # runs the Dagster processes on MariaDB and PostgreSQL

DEPLOY = REPO / "deploy"
POSTGRES_URL = os.environ.get("PSEIDON_TEST_POSTGRES", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")

TICKS = """
query Ticks($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    __typename
    ... on Sensor { sensorState { status ticks(limit: 20) { status runIds error { message } } } }
    ... on PythonError { message }
  }
}"""
RUNS = """
query Runs($filter: RunsFilter!) {
  runsOrError(filter: $filter) { ... on Runs { results { runId status jobName tags { key value } } } }
}"""


def unit_command(name: str, workspace: Path, code_port: int, web_port: int) -> list[str]:
    """A unit's ExecStart, moved to this checkout's venv, WORKSPACE and the given loopback ports."""
    text = UNITS[name].read_text()
    (line,) = [ln[len("ExecStart="):] for ln in text.splitlines() if ln.startswith("ExecStart=")]
    line = (line.replace("/opt/pseidon-dagster/venv/bin/", f"{BIN}/")
                .replace("/opt/pseidon-dagster/workspace.yaml", str(workspace))
                .replace("-p 4000", f"-p {code_port}").replace("-p 3000", f"-p {web_port}"))
    assert "/opt/" not in line and "0.0.0.0" not in line, line
    return shlex.split(line)


def test_postgres_storage_holds_runs_and_events(tmp_path):
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"dagster_deploy_{uuid.uuid4().hex[:8]}"
    with admin.connect() as c:
        c.execute(sa.text(f"CREATE DATABASE {name}"))
    url = sa.engine.make_url(POSTGRES_URL)
    shutil.copy(DEPLOY / "dagster.postgres.yaml", tmp_path / "dagster.yaml")
    env = {"DAGSTER_PG_HOST": url.host or "127.0.0.1", "DAGSTER_PG_PORT": str(url.port or 5432),
           "DAGSTER_PG_USER": url.username or "postgres", "DAGSTER_PG_PASSWORD": url.password or "",
           "DAGSTER_PG_DB": name}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        @dg.op
        def land(context):
            context.log_event(dg.AssetMaterialization("lake_files", metadata={"records": 3}))

        @dg.job(tags={LOG_TAG: "clicks"})
        def trivial():
            land()

        with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            result = trivial.execute_in_process(instance=instance)
            assert result.success
        with dg.DagsterInstance.from_config(str(tmp_path)) as again:
            run = again.get_run_by_id(result.run_id)
            assert run.status == dg.DagsterRunStatus.SUCCESS and run.tags[LOG_TAG] == "clicks"
            assert again.get_latest_materialization_event(dg.AssetKey("lake_files")) is not None
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
        with admin.connect() as c:
            c.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def test_three_processes_on_mariadb_tick_and_run(tmp_path, mysql_db, settings, log_table, kafka, store,  # noqa: F811
                                                 group):
    url, db = mysql_db
    topic = kafka.topic(2)
    add_log(log_table, group, topic)
    kafka.produce(topic, make_messages(400, partitions=2))
    conf = write_conf(tmp_path / "pseidon.edn", settings)

    home, logs = tmp_path / "dagster_home", tmp_path / "logs"
    home.mkdir()
    logs.mkdir()
    shutil.copy(DEPLOY / "dagster.mysql.yaml", home / "dagster.yaml")
    code_port = free_port()
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text((DEPLOY / "workspace.yaml").read_text().replace("port: 4000", f"port: {code_port}"))

    stack = Stack(home, conf, logs)
    stack.env.update({**env_file(), "DAGSTER_HOME": str(home), "PSEIDON_CONF": str(conf),
                      "DAGSTER_MYSQL_HOST": url.host or "127.0.0.1", "DAGSTER_MYSQL_PORT": str(url.port or 3306),
                      "DAGSTER_MYSQL_USER": url.username or "root", "DAGSTER_MYSQL_PASSWORD": url.password or "",
                      "DAGSTER_MYSQL_DB": db})
    try:
        stack.start("code-server", unit_command("code-server", workspace, code_port, stack.port), cwd=home)
        stack.start("webserver", unit_command("webserver", workspace, code_port, stack.port), cwd=home)
        stack.wait_ready(seconds=120)
        stack.start("daemon", unit_command("daemon", workspace, code_port, stack.port), cwd=home)

        deadline = time.monotonic() + 240
        runs: list[dict] = []
        while time.monotonic() < deadline:
            runs = graphql(stack.port, RUNS, {"filter": {"tags": [{"key": LOG_TAG, "value": topic}]}})[
                "runsOrError"]["results"]
            if any(r["status"] == "SUCCESS" for r in runs) or any(r["status"] == "FAILURE" for r in runs):
                break
            stack.assert_alive()
            time.sleep(2)
        assert [r["status"] for r in runs] == ["SUCCESS"], f"{runs}\n{stack.log_tail()}"
        run_id = runs[0]["runId"]
        assert runs[0]["jobName"] == INGEST_JOB

        selector = {"repositoryLocationName": "pseidon", "repositoryName": "__repository__", "sensorName": SENSOR}
        state = graphql(stack.port, TICKS, {"selector": selector})["sensorOrError"]["sensorState"]
        assert state["status"] == "RUNNING"
        assert any(run_id in t["runIds"] and t["status"] == "SUCCESS" for t in state["ticks"]), state["ticks"]
    finally:
        stack.stop()

    marks = KafkaSource(settings).watermarks(topic)
    assert store.all_offsets(topic) == {p: hi for p, (_, hi) in marks.items()}
    assert sum(1 for _ in (Path(settings.data_dir) / "lake" / "raw" / topic).rglob("*.gz")) > 0
    engine = sa.create_engine(url.set(database=db))
    with engine.connect() as c:  # the run is in MariaDB, not in DAGSTER_HOME
        assert c.execute(sa.text("SELECT status FROM runs WHERE run_id = :r"), {"r": run_id}).scalar() == "SUCCESS"
    engine.dispose()
    assert not (home / "history").exists()
