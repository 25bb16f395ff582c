"""Operations, part 2: the run-failure sensor (one line per failed run, POSTed to a webhook), fatal errors appended to
:fatal-errors-file, and freshness per log -- from real runs through Dagster against the real servers. The webhook is
a local HTTP server started here."""
from __future__ import annotations

import http.server
import json
import logging
import os
import stat
import threading

import dagster as dg
import pytest

from pseidon_dagster.core import metrics
from pseidon_dagster.core.ingest import ingest
from pseidon_dagster.core.partitioning import hour_key
from pseidon_dagster.defs.ingest.constants import COMMIT_OP, INGEST_OP, LAKE_FILES, RESOURCE_KEY
from pseidon_dagster.defs.ingest.resources import PseidonResource
from pseidon_dagster.defs.ops.alerts import run_failure_alerts
from pseidon_dagster.defs.ops.freshness import FRESHNESS_CHECK, evaluate_freshness
from tests.conftest import _free_port, write_conf
from tests.integration.core.test_ingest import add_log, make_messages
from tests.integration.defs.test_dagster_run import run


class Hook(http.server.BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).received.append((self.path, self.headers.get("Content-Type"), json.loads(body)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    Hook.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/s3cr3t-token", Hook.received
    server.shutdown()
    server.server_close()


class Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def failure_sensor(instance, result: dg.ExecuteInProcessResult, resource) -> list[str]:
    """Evaluate run_failure_alerts for RESULT's failure, as the daemon would; returns what it logged."""
    ctx = dg.build_run_status_sensor_context(
        sensor_name=run_failure_alerts.name, dagster_instance=instance, dagster_run=result.dagster_run,
        dagster_event=result.get_run_failure_event(), resources={RESOURCE_KEY: resource},
    ).for_run_failure()
    records = Records()
    ctx.log.addHandler(records)
    run_failure_alerts(ctx)
    return records.messages


def test_a_failed_run_gives_one_line_and_a_webhook_post(tmp_path, settings, instance, log_table, kafka, group,
                                                        webhook, caplog):
    url, received = webhook
    topic = kafka.topic(2)
    add_log(log_table, group, topic)
    kafka.produce(topic, make_messages(10, partitions=2))
    fatal_file = tmp_path / "fatalerrors"
    resource = PseidonResource(config_path=str(write_conf(
        tmp_path / "pseidon.edn", settings, alerts={"webhook": url}, **{"fatal-errors-file": str(fatal_file)})))

    result = run(instance, resource, topic, fail_before_commit=True)
    assert not result.success
    logged = failure_sensor(instance, result, resource)
    run_id = result.dagster_run.run_id
    lines = [m for m in logged if run_id in m]
    assert len(lines) == 1
    line = lines[0]
    assert f"log={topic}" in line and f"step={COMMIT_OP}" in line and f"run={run_id}" in line
    assert "injected failure before commit" in line and "\n" not in line
    assert len(received) == 1
    path, ctype, body = received[0]
    assert path == "/hooks/s3cr3t-token" and ctype == "application/json"
    assert body["text"] == line
    assert (body["log"], body["step"], body["run_id"]) == (topic, COMMIT_OP, run_id)
    assert "injected failure before commit" in body["error"] and body["job"] == "ingest_job"
    assert "s3cr3t" not in line
    # an ordinary failure is not fatal: nothing in the fatal-errors file
    assert not fatal_file.exists()
    # the failure is counted for /metrics (topic-errors) and status
    page = metrics.Snapshotter(resource.settings()).snapshot()
    assert page["topic-errors"][topic]["failed-runs"] == 1
    assert "injected failure" in page["topic-errors"][topic]["last-error"]["error"]
    # the retry succeeds: the log's failed-runs since the last success go back to 0
    assert run(instance, resource, topic).success
    page = metrics.Snapshotter(resource.settings()).snapshot()
    assert topic not in page["topic-errors"] or page["topic-errors"][topic]["failed-runs"] == 0


def test_a_webhook_that_does_not_answer_does_not_fail_the_sensor(tmp_path, settings, instance, log_table, kafka,
                                                                 group, caplog):
    topic = kafka.topic(1)
    add_log(log_table, group, topic)
    kafka.produce(topic, make_messages(3, partitions=1))
    dead = f"http://127.0.0.1:{_free_port()}/hook"
    resource = PseidonResource(config_path=str(write_conf(
        tmp_path / "pseidon.edn", settings, alerts={"webhook": dead, "timeout-ms": 500},
        **{"fatal-errors-file": str(tmp_path / "f")})))
    result = run(instance, resource, topic, fail_before_commit=True)
    messages = " ".join(failure_sensor(instance, result, resource))
    assert "webhook" in messages and "127.0.0.1" in messages and "/hook" not in messages


# --- fatal errors ------------------------------------------------------------------------------------------------

def test_authentication_refused_appends_a_fatal_line_and_fails_the_run(tmp_path, settings, instance, log_table,
                                                                       kafka, group):
    topic = kafka.topic(1)
    add_log(log_table, group, topic)
    fatal_file = tmp_path / "fatal" / "fatalerrors"
    fatal_file.parent.mkdir()
    import dataclasses

    assert "root@" in settings.etl_db_url  # the test MariaDB's root has no password: any password is refused
    refused = dataclasses.replace(settings, etl_db_url=settings.etl_db_url.replace("root@", "root:wr0ng-pw@"))
    conf = write_conf(tmp_path / "pseidon.edn", refused, **{"fatal-errors-file": str(fatal_file)})
    result = run(instance, PseidonResource(config_path=str(conf)), topic)
    assert not result.success
    lines = fatal_file.read_text().splitlines()
    assert len(lines) == 1
    assert f"log={topic}" in lines[0] and "authentication refused" in lines[0] and f"step={INGEST_OP}" in lines[0]
    assert lines[0][:4].isdigit() and "T" in lines[0].split()[0]  # an ISO timestamp first
    assert "wr0ng-pw" not in lines[0]
    assert stat.S_IMODE(os.stat(fatal_file).st_mode) == 0o600


def test_an_unreadable_config_appends_to_the_default_file(tmp_path, settings, instance, log_table, kafka, group,
                                                          monkeypatch):
    topic = kafka.topic(1)
    add_log(log_table, group, topic)
    fallback = tmp_path / "fatal-fallback"
    monkeypatch.setenv("PSEIDON_FATAL_ERRORS_FILE", str(fallback))
    broken = tmp_path / "broken.edn"
    broken.write_text("{:etl-group \"x\" :kafka-brokers")  # not valid EDN
    result = run(instance, PseidonResource(config_path=str(broken)), topic)
    assert not result.success
    (line,) = fallback.read_text().splitlines()
    assert f"log={topic}" in line and "unreadable config" in line and "not valid EDN" in line


# --- freshness ---------------------------------------------------------------------------------------------------

def test_freshness_per_log_from_the_last_commit(tmp_path, settings, instance, log_table, kafka, store, group):
    quick, slow = kafka.topic(1), kafka.topic(1)
    for t in (quick, slow):
        add_log(log_table, group, t)
        kafka.produce(t, make_messages(4, partitions=1))
    instance.add_dynamic_partitions("logs", [quick, slow])
    results = {t: ingest(settings, log_table.get(t, group), store) for t in (quick, slow)}
    resource = PseidonResource(config_path=str(write_conf(
        tmp_path / "pseidon.edn", settings, freshness={"default-minutes": 120, "logs": {quick: 1}})))

    later = max(r.committed_ms for r in results.values()) + 2 * 60_000  # two minutes after the last commit
    ctx = dg.build_sensor_context(instance=instance, resources={RESOURCE_KEY: resource})
    states = evaluate_freshness(ctx, resource, now_ms=later)
    assert states[quick]["state"] == "stale" and states[slow]["state"] == "fresh"
    assert states[quick]["limit-minutes"] == 1 and states[slow]["limit-minutes"] == 120
    key = dg.AssetCheckKey(LAKE_FILES, FRESHNESS_CHECK)
    history = instance.event_log_storage.get_asset_check_execution_history(key, limit=10)
    by_partition = {r.partition: r for r in history}
    hour = hour_key(later // 3_600_000)
    assert set(by_partition) == {f"{hour}|{quick}", f"{hour}|{slow}"}
    passed = {p: r.event.dagster_event.event_specific_data.passed for p, r in by_partition.items()}
    assert passed == {f"{hour}|{quick}": False, f"{hour}|{slow}": True}
    # an unchanged state is not reported again within the hour
    evaluate_freshness(ctx, resource, now_ms=later + 1000)
    assert len(instance.event_log_storage.get_asset_check_execution_history(key, limit=10)) == 2
