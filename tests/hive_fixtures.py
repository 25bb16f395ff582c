"""Hive fixtures: a HiveServer2 (Spark's Thrift Server from the pyspark wheel) for tests marked `hive`.

If PSEIDON_TEST_HIVE_PORT is set, the server already listening on 127.0.0.1:<port> is used. Otherwise one server is
started for the whole session on a free loopback port (under CI=true a missing Java or pyspark fails
the tests instead of skipping them), in a temporary directory (embedded Derby metastore,
warehouse, hive.log), and stopped when the session ends. Start-up takes 15-60 s and ~450 MB; it happens only when a
test asks for `hive_port`. Without Java or pyspark those tests are skipped (install the project's [hive] extra).
Each test gets its own Hive database (`hive_db`), dropped afterwards (external tables: the files stay).
"""
from __future__ import annotations

import os
import shutil
import uuid

import pytest

from pseidon_dagster.core.hive import HiveCatalog, HiveTarget
from tests.conftest import _free_port


@pytest.fixture(scope="session")
def hive_port(tmp_path_factory):
    given = os.environ.get("PSEIDON_TEST_HIVE_PORT")
    if given:
        yield int(given)
        return
    from pseidon_dagster.devstack import hiveserver

    missing = pytest.fail if os.environ.get("CI") else pytest.skip  # CI must run them, never skip silently
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        missing("Hive tests need Java 17+ (for Spark's Thrift Server) or PSEIDON_TEST_HIVE_PORT")
    try:
        hiveserver.spark_home()
    except hiveserver.HiveServerError as e:
        missing(f"Hive tests need pyspark (pip install -e '.[hive]') or PSEIDON_TEST_HIVE_PORT: {e}")
    state = tmp_path_factory.mktemp("hive")
    port = _free_port()
    hiveserver.start_hive(state, port)
    try:
        yield port
    finally:
        hiveserver.stop_hive(state)


@pytest.fixture
def hive_catalog(hive_port) -> HiveCatalog:
    return HiveCatalog(HiveTarget("127.0.0.1", hive_port), "pseidon", retries=1, backoff_s=0.5)


@pytest.fixture
def hive_db(hive_catalog):
    name = f"pt_{uuid.uuid4().hex[:10]}"
    hive_catalog.create_database(name)
    yield name
    hive_catalog.execute(f"DROP DATABASE IF EXISTS `{name}` CASCADE")
