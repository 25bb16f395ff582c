"""The local Hive Thrift Server helper (pseidon_dagster.devstack.hiveserver) without starting Spark: its command
line, and start/stop when a port answers or no server runs. The running server:
tests/integration/system/test_hiveserver.py."""
from __future__ import annotations

import os
import socket

import pytest

from pseidon_dagster.devstack import hiveserver


def test_command_binds_loopback_only_without_ui(tmp_path):
    try:
        args = hiveserver.command(tmp_path, 12345)
    except hiveserver.HiveServerError as e:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(str(e))
    text = " ".join(args)
    assert args[0].endswith("bin/spark-submit")
    assert "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2" in args
    for expected in ("hive.server2.thrift.port=12345", "hive.server2.thrift.bind.host=127.0.0.1",
                     "spark.driver.host=127.0.0.1", "spark.driver.bindAddress=127.0.0.1", "spark.ui.enabled=false",
                     f"javax.jdo.option.ConnectionURL=jdbc:derby:;databaseName={tmp_path.resolve()}/metastore_db;"
                     f"create=true", f"spark.sql.warehouse.dir={tmp_path.resolve()}/warehouse",
                     "--master local[1]", "spark.driver.memory=512m"):
        assert expected in text


def test_start_is_a_no_op_when_the_port_answers(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert hiveserver.start_hive(tmp_path, port) == {"name": "hive", "port": port, "started": False,
                                                         "pid": None}
    assert not (tmp_path / hiveserver.PID_FILE).exists()


def test_stop_without_a_server_is_harmless(tmp_path):
    assert hiveserver.stop_hive(tmp_path) is False
    assert hiveserver.main(["stop", "--state-dir", str(tmp_path)]) == 0
