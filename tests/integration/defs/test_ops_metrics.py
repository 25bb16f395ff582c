"""Operations, part 1: counters written by real runs to Redis, the /metrics JSON page and its Prometheus twin, the
etl-kafka-work-queue list the sensor keeps, and `pseidon-dagster status` -- against the real MariaDB, Redis and tansu.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import urllib.request

import pytest
import redis as redis_lib
from prometheus_client.parser import text_string_to_metric_families

from pseidon_dagster import cli
from pseidon_dagster.core import config as config_mod
from pseidon_dagster.core import metrics
from pseidon_dagster.core.ingest import ingest
from tests.conftest import REDIS_PORT, _free_port, wait_for, write_conf
from tests.integration.core.test_ingest import add_log, make_messages
from tests.integration.defs.test_sensor import tick


def get(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), resp.read()


@pytest.fixture
def served(settings):
    """The metrics HTTP server of `settings` on a free loopback port, in this process."""
    servers = []

    def start(s=None):
        server = metrics.serve(lambda: s or settings, "127.0.0.1", 0, cache_s=0)
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def prom(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


# --- config ------------------------------------------------------------------------------------------------------


# --- counters from real runs, the JSON page, Prometheus --------------------------------------------------------

def test_two_runs_then_metrics_json_and_prometheus(settings, log_table, kafka, store, group, served):
    topic = kafka.topic(3)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, make_messages(30) + [(0, b"no-timestamp-here")])
    first = ingest(settings, spec, store)
    kafka.produce(topic, make_messages(20, start=30))
    second = ingest(settings, spec, store)
    assert (first.read, second.read) == (31, 20) and first.quarantined == 1
    kafka.produce(topic, make_messages(7, start=50))  # left in Kafka: lag 7

    url = served()
    status, ctype, body = get(url + "/metrics")
    assert status == 200 and ctype.startswith("application/json")
    page = json.loads(body)
    # the seed's fields
    for key in ("etl-service-thread-queue", "etl-service-thread-metrics", "open-connections", "topic-errors",
                "memory", "redis"):
        assert key in page, key
    meter = page["etl-service-thread-metrics"]
    assert meter["count"] == 51
    assert meter["one-minute-rate"] > 0 and meter["five-minute-rate"] > 0 and meter["mean-rate"] > 0
    assert set(meter) == {"count", "one-minute-rate", "five-minute-rate", "mean-rate"}
    assert page["topic-errors"] == {}
    assert page["open-connections"]["tcp-conn"] >= 1  # at least this server's own Redis connection
    assert page["memory"]["runs"][topic]["max-rss-mb"] > 10
    assert page["redis"]["redis-conn"]["offsets"]["server"] == f"Redis at 127.0.0.1:{REDIS_PORT}"
    assert isinstance(page["etl-service-thread-queue"], int)
    # per log: live lag per partition, the last commit, the last run
    one = page["logs"][topic]
    assert sum(one["lag"].values()) == 7 and set(one["lag"]) == {"0", "1", "2"} and one["lag-total"] == 7
    assert abs(one["last-commit-ms"] - second.committed_ms) < 5
    last = one["last-run"]
    assert (last["messages"], last["written"], last["quarantined"]) == (20, 20, 0)
    assert last["bytes"] == second.bytes and last["files"] == len(second.files)
    assert one["totals"] == {"messages": 51, "written": 50, "filtered": 0, "quarantined": 1, "runs": 2,
                             "bytes": first.bytes + second.bytes, "files": len(first.files) + len(second.files)}
    assert one["last-hour"] == {"files": len(first.files) + len(second.files), "bytes": first.bytes + second.bytes}
    assert one["freshness"]["state"] == "fresh" and one["freshness"]["limit-minutes"] == 120
    assert "hush" not in body.decode()

    status, ctype, body = get(url + "/metrics/prometheus")
    assert status == 200 and ctype.startswith("text/plain")
    samples = prom(body.decode())
    lag = {p: samples[("pseidon_log_lag_messages", (("log", topic), ("partition", p)))] for p in "012"}
    assert lag == {p: float(v) for p, v in one["lag"].items()}
    assert samples[("pseidon_messages_total", (("log", topic),))] == 51
    assert samples[("pseidon_quarantined_total", (("log", topic),))] == 1
    assert samples[("pseidon_last_run_messages", (("log", topic),))] == 20
    assert samples[("pseidon_last_run_bytes", (("log", topic),))] == second.bytes
    assert samples[("pseidon_last_commit_timestamp_seconds", (("log", topic),))] == pytest.approx(
        second.committed_ms / 1000, abs=0.01)
    assert samples[("pseidon_messages_rate", (("window", "1m"),))] > 0


def test_metrics_go_to_the_redis_named_by_metrics_redis(settings, log_table, kafka, store, group, redis_client):
    import dataclasses

    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, make_messages(5, partitions=1))
    other = config_mod.RedisSettings(hosts=(("127.0.0.1", REDIS_PORT),), db=5)
    s = dataclasses.replace(settings, ops=dataclasses.replace(settings.ops, metrics_redis=other))
    ingest(s, spec, store)
    db5 = redis_lib.Redis(port=REDIS_PORT, db=5, decode_responses=True)
    try:
        assert metrics.MetricsStore(db5, group).log_counters(topic)["messages"] == 5
        assert metrics.MetricsStore(redis_client, group).log_counters(topic)["messages"] == 0
    finally:
        for key in db5.scan_iter(match=f"/{group}/*"):
            db5.delete(key)


def test_a_metrics_redis_that_does_not_answer_never_fails_a_run(settings, log_table, kafka, store, group, caplog):
    import dataclasses

    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, make_messages(5, partitions=1))
    dead = config_mod.RedisSettings(hosts=(("127.0.0.1", _free_port()),), timeout_s=0.5)
    s = dataclasses.replace(settings, ops=dataclasses.replace(settings.ops, metrics_redis=dead))
    with caplog.at_level(logging.WARNING):
        result = ingest(s, spec, store)
    assert result.committed and result.written == 5
    assert store.get(topic, [0]) == {0: 5}
    assert any("metrics" in r.getMessage() and "not recorded" in r.getMessage() for r in caplog.records)


def start_metrics_server(conf, port: int, **popen) -> subprocess.Popen:
    """`pseidon-dagster metrics-server`, once it answers. PYTHONFAULTHANDLER: on a hang, stop_or_show_stacks's SIGABRT
    makes it print every thread's stack."""
    exe = os.path.join(os.path.dirname(sys.executable), "pseidon-dagster")
    proc = subprocess.Popen([exe, "metrics-server", "--config", str(conf)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env={**os.environ, "PYTHONFAULTHANDLER": "1"}, **popen)
    if not wait_for(lambda: _answers(port), 30):
        stop_or_show_stacks(proc, timeout=15)
        pytest.fail(f"metrics-server did not answer: {proc.stdout.read().decode(errors='replace')}")
    return proc


def stop_or_show_stacks(proc: subprocess.Popen, timeout: float = 60) -> None:
    """SIGTERM, and fail with the process's thread stacks if it does not end within TIMEOUT."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        out = proc.communicate(timeout=30)[0].decode(errors="replace")
        pytest.fail(f"{proc.args[:2]} did not end {timeout:.0f} s after SIGTERM; its threads:\n{out[-20000:]}")


def test_metrics_server_command_binds_loopback(tmp_path, settings, log_table, kafka, store, group):
    topic = kafka.topic(2)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, make_messages(10, partitions=2))
    ingest(settings, spec, store)
    port = _free_port()
    conf = write_conf(tmp_path / "pseidon.edn", settings, **{"monitor-port": port})
    proc = start_metrics_server(conf, port)
    try:
        page = json.loads(get(f"http://127.0.0.1:{port}/metrics")[2])
        assert page["logs"][topic]["totals"]["messages"] == 10 and page["logs"][topic]["lag-total"] == 0
        with pytest.raises(urllib.error.HTTPError) as e:
            get(f"http://127.0.0.1:{port}/nope")
        assert e.value.code == 404
        listening = subprocess.run(["ss", "-Htln", f"sport = :{port}"], capture_output=True, text=True).stdout
        assert [line.split()[3] for line in listening.splitlines()] == [f"127.0.0.1:{port}"]  # local address
    finally:
        stop_or_show_stacks(proc)


def test_metrics_server_stops_on_sigterm_even_when_started_with_it_ignored(tmp_path, settings, log_table):
    """A process inherits an ignored SIGTERM from its parent: Dagster maps SIGTERM to whatever SIGINT does, and a job
    started in the background of a non-interactive shell ignores SIGINT, so every process such a Dagster process (or
    this test session, after an in-process run) starts ignored SIGTERM, and `metrics-server` never stopped. It now
    stops on SIGTERM, with exit code 0, whatever it inherited."""
    port = _free_port()
    conf = write_conf(tmp_path / "pseidon.edn", settings, **{"monitor-port": port})
    proc = start_metrics_server(conf, port, preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_IGN))
    stop_or_show_stacks(proc, timeout=15)
    assert proc.returncode == 0, proc.stdout.read().decode(errors="replace")


def _answers(port: int) -> bool:
    try:
        return get(f"http://127.0.0.1:{port}/metrics")[0] == 200
    except OSError:
        return False


# --- etl-kafka-work-queue ----------------------------------------------------------------------------------------

def test_the_sensor_keeps_etl_kafka_work_queue(pseidon, instance, settings, log_table, kafka, store, group,
                                               redis_client):
    busy1, busy2, quiet = kafka.topic(2), kafka.topic(2), kafka.topic(2)
    for t in (busy1, busy2, quiet):
        add_log(log_table, group, t)
    kafka.produce(busy1, make_messages(10, partitions=2))
    kafka.produce(busy2, make_messages(4, partitions=2))
    ingest(settings, log_table.get(quiet, group), store)  # pins quiet's offsets: no lag, no run wanted
    key = f"{group}-kafka-work-queue"
    first = tick(instance, pseidon)
    assert {r.partition_key for r in first.run_requests} == {busy1, busy2}
    assert redis_client.llen(key) == 2 and sorted(redis_client.lrange(key, 0, -1)) == sorted([busy1, busy2])
    for t in (busy1, busy2):
        ingest(settings, log_table.get(t, group), store)
    tick(instance, pseidon, first.cursor)
    assert redis_client.llen(key) == 0
    page = metrics.Snapshotter(settings).snapshot()
    assert page["etl-kafka-work-queue"] == 0 and page["etl-service-thread-queue"] == 0
    redis_client.delete(key)


# --- status ------------------------------------------------------------------------------------------------------

def test_status_prints_one_row_per_log(tmp_path, settings, log_table, kafka, store, group, capsys):
    fresh, off = kafka.topic(2), kafka.topic(1)
    add_log(log_table, group, fresh)
    add_log(log_table, group, off)
    log_table.set_enabled(off, False)
    kafka.produce(fresh, make_messages(12, partitions=2))
    result = ingest(settings, log_table.get(fresh, group), store)
    kafka.produce(fresh, make_messages(3, partitions=2, start=12))
    conf = write_conf(tmp_path / "pseidon.edn", settings, freshness={"logs": {fresh: 45}})

    assert cli.main(["status", "--config", str(conf), "--json"]) == 0
    rows = {r["log"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == {fresh, off}
    r = rows[fresh]
    assert r["enabled"] is True and r["group"] == group
    assert sum(r["lag"].values()) == 3 and r["lag-total"] == 3
    assert r["last-run"]["result"] == "success" and r["last-run"]["messages"] == 12
    assert r["last-error"] is None
    assert r["last-hour"] == {"files": len(result.files), "bytes": result.bytes}
    assert r["freshness"]["state"] == "fresh" and r["freshness"]["limit-minutes"] == 45
    assert rows[off]["enabled"] is False and rows[off]["freshness"]["state"] == "disabled"

    assert cli.main(["status", "--config", str(conf)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["LOG", "ENABLED", "GROUP"]
    line = next(x for x in out if x.startswith(fresh))
    assert " yes " in line and group in line and "fresh" in line and "success" in line
    assert next(x for x in out if x.startswith(off)).split()[1] == "no"


def test_status_adds_the_last_dagster_run_when_dagster_home_is_set(tmp_path, settings, log_table, kafka, group,
                                                                   capsys, monkeypatch):
    import dagster as dg

    from pseidon_dagster.defs.ingest.resources import PseidonResource
    from tests.integration.defs.test_dagster_run import run

    topic = kafka.topic(1)
    add_log(log_table, group, topic)
    kafka.produce(topic, make_messages(6, partitions=1))
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    conf = write_conf(tmp_path / "pseidon.edn", settings)
    with dg.DagsterInstance.get() as instance:
        result = run(instance, PseidonResource(config_path=str(conf)), topic)
        assert result.success
    assert cli.main(["status", "--config", str(conf), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["dagster"]["status"] == "SUCCESS" and row["dagster"]["run_id"] == result.dagster_run.run_id
    assert row["last-run"]["run"] == result.dagster_run.run_id and row["last-run"]["messages"] == 6
