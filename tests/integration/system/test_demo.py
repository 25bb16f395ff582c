"""The README's first command, `pseidon-dagster demo --config conf/pseidon.edn`, run twice in a fresh directory holding
only the repository's sample config: data lands through Dagster runs, and the second run ingests the new sample
messages (and only those).

The sample config is used as it is, except for two values that keep the test apart from a real demo on this machine:
its own :etl-group (so its own Redis keys) and the test session's Kafka broker instead of 127.0.0.1:19092.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from tests import REPO_ROOT as REPO
from tests.conftest import read_lines


def lines_of(root: Path) -> int:
    return sum(len(read_lines(p)) for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))


def demo(cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "PSEIDON_CONF")}
    cli = Path(sys.executable).parent / "pseidon-dagster"
    proc = subprocess.run([str(cli), "demo", "--config", "conf/pseidon.edn"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc


def test_demo_runs_twice_from_a_fresh_directory(tmp_path, kafka_bootstrap, group):
    sample = (REPO / "conf" / "pseidon.edn").read_text()
    host, port = kafka_bootstrap.rsplit(":", 1)
    conf = sample.replace(':etl-group "etl"', f':etl-group "{group}"')
    conf = conf.replace('{:host "127.0.0.1" :port 19092}', f'{{:host "{host}" :port {port}}}')
    assert conf.count(group) == 1 and conf.count(f":port {port}}}") == 1
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "pseidon.edn").write_text(conf)

    first = demo(tmp_path)
    out = first.stdout
    assert "run " in out and "clicks: SUCCESS" in out and "views: SUCCESS" in out, out
    assert "checks passed" in out and "FAILED" not in out
    assert "make ui" in out and "dagster dev" in out
    lake = tmp_path / "var" / "data" / "lake" / "raw"
    clicks, views = lines_of(lake / "clicks"), lines_of(lake / "views")
    assert clicks >= 600 and views >= 300

    second = demo(tmp_path)
    assert "clicks: SUCCESS" in second.stdout and "views: SUCCESS" in second.stdout, second.stdout
    assert lines_of(lake / "clicks") == clicks + 600  # the new sample messages, once
    assert lines_of(lake / "views") == views + 300

    home = tmp_path / "var" / "dagster_home"
    assert (home / "dagster.yaml").read_text() == (REPO / "dagster.yaml").read_text()
    os.environ["DAGSTER_HOME"] = str(home)
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            runs = instance.get_runs(filters=dg.RunsFilter(job_name="ingest_job"))
            assert len(runs) == 4 and all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
            assert {r.tags["log"] for r in runs} == {"clicks", "views"}
            assert sorted(instance.get_dynamic_partitions("logs")) == ["clicks", "views"]
            parts = instance.get_materialized_partitions(dg.AssetKey("lake_files"))
            assert {p.split("|")[1] for p in parts} == {"clicks", "views"}
    finally:
        del os.environ["DAGSTER_HOME"]


def test_demo_survives_a_broker_that_forgot_its_topics(tmp_path, group, redis_client):
    """tansu keeps nothing across restarts while Redis does: the demo must start its topics afresh, not stall on
    offsets from an earlier broker (the product itself rightly refuses offsets beyond the high watermark)."""
    from pseidon_dagster.devstack.services import tansu_binary, wait_port
    from tests.conftest import _free_port

    port = _free_port()
    url = f"tcp://127.0.0.1:{port}"
    broker = subprocess.Popen([tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_port(port, 20)
        sample = (REPO / "conf" / "pseidon.edn").read_text()
        conf = sample.replace(':etl-group "etl"', f':etl-group "{group}"')
        conf = conf.replace('{:host "127.0.0.1" :port 19092}', f'{{:host "127.0.0.1" :port {port}}}')
        (tmp_path / "conf").mkdir()
        (tmp_path / "conf" / "pseidon.edn").write_text(conf)
        for p in range(3):  # left by a demo against an earlier broker
            redis_client.set(f"/{group}/offsets/clicks/{p}", 5000)
        stale = tmp_path / "var" / "data" / "lake" / "raw" / "clicks" / "date=20200101" / "hour=2020010100"
        stale.mkdir(parents=True)
        (stale / "clicks-2020-01-01-00.p0.o0-10.gz").write_bytes(b"")

        out = demo(tmp_path).stdout

        assert "topic clicks is new on this broker" in out and "clicks: SUCCESS" in out, out
        assert not stale.exists()
        assert lines_of(tmp_path / "var" / "data" / "lake" / "raw" / "clicks") == 600
    finally:
        broker.terminate()
        broker.wait(10)
