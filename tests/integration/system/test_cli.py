"""The pseidon-dagster command guides: one line naming the server and the config key when a server is down, the
command that fixes a missing table, database or topic, `logs add|enable|disable|show` with validation, --strict.
Against the real MariaDB, Redis and tansu; unreachable servers are closed loopback ports. The parser alone (help on
every argument, -v anywhere): tests/unit/test_cli_args.py."""
from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest
import sqlalchemy as sa

from tests.conftest import MYSQL_ADMIN_URL, _free_port, write_conf
from tests.integration.core.test_ingest import add_log
from tests.unit.test_cli_args import cli_main

CLI = [sys.executable, "-m", "pseidon_dagster.cli"]


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def one_line(res: subprocess.CompletedProcess) -> str:
    assert res.returncode == 1, res.stdout + res.stderr
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    return lines[0]


# -- servers that do not answer ------------------------------------------------------------------------------------

def test_redis_refusing_is_one_line_naming_the_server_and_the_key(tmp_path, settings, kafka):
    topic, port = kafka.topic(1), _free_port()
    conf = write_conf(tmp_path / "pseidon.edn", settings, **{"redis-conf": {"host": f"127.0.0.1:{port}"}})
    line = one_line(run("offsets", "show", topic, "--config", conf))
    assert line == f"pseidon-dagster offsets: Redis at 127.0.0.1:{port} (:redis-conf) refused the connection"


def test_kafka_down_is_one_line_without_librdkafka_logs(tmp_path, settings):
    port = _free_port()
    conf = write_conf(tmp_path / "pseidon.edn", settings, **{"kafka-brokers": f"127.0.0.1:{port}",
                                                            "kafka-timeout-ms": 1500})
    line = one_line(run("offsets", "show", "clicks", "--config", conf))
    assert line.startswith(f"pseidon-dagster offsets: Kafka at 127.0.0.1:{port} (:kafka-brokers) did not answer")


def test_the_log_table_refusing_is_one_line(tmp_path, settings):
    port = _free_port()
    conf = write_conf(tmp_path / "pseidon.edn", settings,
                      **{"etl-db-host": f"mysql+pymysql://root@127.0.0.1:{port}/etl"})
    line = one_line(run("logs", "list", "--config", conf))
    assert line == (f"pseidon-dagster logs: the pseidon_logs database at mysql+pymysql://root@127.0.0.1:{port}/etl "
                    f"(:etl-db-host) refused the connection")


# -- what is missing, and the command that fixes it ------------------------------------------------------------------

def test_a_missing_table_names_logs_init(tmp_path, settings):
    conf = write_conf(tmp_path / "pseidon.edn", settings, **{"etl-db-host": f"sqlite:///{tmp_path}/etl.db"})
    line = one_line(run("logs", "list", "--config", conf))
    assert "the pseidon_logs table does not exist in sqlite:///" in line and "(:etl-db-host)" in line
    assert line.endswith(f"create it with: pseidon-dagster logs init --config {conf}")
    assert run("logs", "init", "--config", conf).returncode == 0
    assert run("logs", "list", "--config", conf).returncode == 0


def test_a_missing_database_names_the_statement_that_creates_it(tmp_path, settings):
    name = f"pseidon_nope_{uuid.uuid4().hex[:8]}"
    url = sa.engine.make_url(MYSQL_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    conf = write_conf(tmp_path / "pseidon.edn", settings, **{"etl-db-host": url})
    line = one_line(run("logs", "list", "--config", conf))
    assert f"database {name!r} does not exist on 127.0.0.1:3306 (:etl-db-host)" in line
    assert f"CREATE DATABASE {name}" in line and "pseidon-dagster logs init" in line


def test_a_missing_topic_is_named_with_the_fix(tmp_path, settings, log_table, group):
    topic = f"nope-{uuid.uuid4().hex[:8]}"
    add_log(log_table, group, topic)
    conf = write_conf(tmp_path / "pseidon.edn", settings)
    line = one_line(run("ingest", topic, "--config", conf))
    assert f"topic {topic!r} does not exist on {settings.bootstrap_servers} (:kafka-brokers)" in line
    assert "kafka-topics.sh" in line and f"pseidon-dagster logs disable {topic}" in line


# -- logs add | enable | disable | show --------------------------------------------------------------------------------


def test_logs_add_show_disable_enable(tmp_path, settings, log_table, kafka, group, capsys):
    topic = kafka.topic(2)
    conf = write_conf(tmp_path / "pseidon.edn", settings)
    base = ["--config", conf]
    code, out, err = cli_main(capsys, "logs", "add", topic, "--format", "txt:sep=pipe;ts=0", "--output-format", "gzip",
                          "--base-partition", "lake", "--log-partition", f"raw/{topic}",
                          "--hive-password", "s3cret-pw", *base)
    assert code == 0, err
    assert f"added {topic}" in out
    row = log_table.rows(group)[0]
    assert (row["log"], row["log_group"], row["enabled"], row["quarantine"]) == (topic, group, 1, None)

    code, out, err = cli_main(capsys, "logs", "show", topic, *base)
    shown = json.loads(out)
    assert code == 0 and shown["row"]["format"] == "txt:sep=pipe;ts=0" and shown["valid"] is True
    assert shown["row"]["hive_password"] == "***" and "s3cret-pw" not in out + err
    assert shown["partitions"] == 2

    code, out, err = cli_main(capsys, "logs", "add", topic, "--format", "txt:ts=0", "--base-partition", "lake",
                          "--log-partition", "x", *base)
    assert code == 1 and "already exists" in err and "--replace" in err

    assert cli_main(capsys, "logs", "disable", topic, *base)[0] == 0
    assert log_table.rows(group, enabled_only=False)[0]["enabled"] == 0
    assert topic not in cli_main(capsys, "logs", "list", *base)[1]
    assert cli_main(capsys, "logs", "enable", topic, *base)[0] == 0
    assert log_table.rows(group)[0]["enabled"] == 1
    assert topic in cli_main(capsys, "logs", "list", *base)[1]

    code, out, err = cli_main(capsys, "logs", "enable", "no-such-log", *base)
    assert code == 1 and "no pseidon_logs row for log 'no-such-log'" in err


@pytest.mark.parametrize("change,column", [
    (["--format", "csv:ts=0"], "column format"),
    (["--output-format", "snappy"], "column output_format"),
    (["--base-partition", "/etc"], "column base_partition"),
    (["--log-partition", "../../etc"], "column log_partition"),
    (["--quarantine", "/tmp/elsewhere"], "column quarantine"),
])
def test_logs_add_refuses_bad_rows_naming_the_column(tmp_path, settings, log_table, kafka, group, capsys, change,
                                                     column):
    topic = kafka.topic(1)
    conf = write_conf(tmp_path / "pseidon.edn", settings)
    args = {"--format": "txt:ts=0", "--output-format": "gzip", "--base-partition": "lake",
            "--log-partition": f"raw/{topic}", **dict(zip(change[::2], change[1::2]))}
    code, out, err = cli_main(capsys, "logs", "add", topic, *[x for kv in args.items() for x in kv], "--config", conf)
    assert code == 1 and f"pseidon_logs row {topic!r}, {column}" in err, err
    assert log_table.rows(group, enabled_only=False) == []


def test_logs_add_refuses_a_topic_kafka_does_not_have(tmp_path, settings, log_table, group, capsys):
    conf = write_conf(tmp_path / "pseidon.edn", settings)
    code, out, err = cli_main(capsys, "logs", "add", "no-such-topic-x", "--format", "txt:ts=0", "--base-partition",
                          "lake", "--log-partition", "raw/x", "--config", conf)
    assert code == 1 and "topic 'no-such-topic-x' does not exist" in err
    assert log_table.rows(group, enabled_only=False) == []


# -- config check ---------------------------------------------------------------------------------------------------

def test_strict_refuses_unknown_keys(tmp_path, settings, capsys):
    conf = write_conf(tmp_path / "pseidon.edn", settings, **{"kafka-use-earliset": True})
    code, out, err = cli_main(capsys, "config", "check", "--config", conf, "--strict")
    assert code == 1 and "unknown key :kafka-use-earliset (did you mean :kafka-use-earliest?)" in err
    code, out, err = cli_main(capsys, "config", "check", "--config", conf)
    assert code == 0 and f"{conf}: ok" in out
