"""The local Hive Thrift Server helper (pseidon_dagster.devstack.hiveserver) against the running server; its command
line and start/stop without one: tests/unit/devstack/test_hiveserver.py."""
from __future__ import annotations

import pytest

from pseidon_dagster.devstack import hiveserver


@pytest.mark.hive
def test_running_server_answers_select_1(hive_port, capsys):
    assert hiveserver.ping(hive_port)
    assert hiveserver.main(["status", "--port", str(hive_port)]) == 0
    assert "up" in capsys.readouterr().out
