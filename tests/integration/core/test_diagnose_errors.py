"""The one line the CLI prints for a failure (core/diagnose.py), from real failures: MariaDB refusing a user, a
metrics Redis (:metrics :redis) that refuses connections, and an error of no known kind."""
from __future__ import annotations

import socket

import pytest
import redis
import sqlalchemy as sa

from pseidon_dagster.core import config as config_mod
from pseidon_dagster.core.diagnose import explain
from pseidon_dagster.core.logtable import LogTable


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_mariadb_refusing_the_user_names_the_keys_to_fix(mysql_url):
    url = sa.engine.make_url(mysql_url).set(username="nobody_here", password="wrong")
    s = config_mod.from_mapping({"etl-db-host": url.render_as_string(hide_password=False)})
    with pytest.raises(Exception) as e:
        LogTable.for_settings(s).rows()

    line = explain(e.value, s)

    shown = url.render_as_string(hide_password=True)
    assert line.startswith(f"the pseidon_logs database at {shown} (:etl-db-host) refused the user or password "
                           "(:etl-db-user, :etl-db-pwd): Access denied for user 'nobody_here'")
    assert "wrong" not in line


def test_a_refusing_metrics_redis_is_named_by_its_own_key(tmp_path):
    port = _closed_port()
    s = config_mod.from_mapping({"data-dir": str(tmp_path), "metrics": {"redis": {"host": f"127.0.0.1:{port}"}}})
    with pytest.raises(redis.ConnectionError) as e:
        redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=2).ping()

    assert explain(e.value, s) == f"Redis at 127.0.0.1:{port} (:metrics :redis) refused the connection"


def test_an_error_of_no_known_kind_shows_its_type_on_one_line():
    assert explain(RuntimeError("disk\n  full")) == "RuntimeError: disk full"
