"""ingest_job's ops share the row the stage op read (the `Staged` value, without the hive_password): register_hive
and commit_offsets need no pseidon_logs database, except that register_hive reads the hive_password column again
for a log whose row has one. A private MariaDB (tests/private_servers.py), stopped once ingest_log has succeeded,
shows which op needs it; Hive is the shared test server."""
from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from pseidon_dagster.core.hive import create_table_for
from pseidon_dagster.core.logtable import LogTable, create_table
from pseidon_dagster.core.offsets import OffsetStore, connect
from pseidon_dagster.defs.ingest.constants import INGEST_OP, REGISTER_OP
from pseidon_dagster.defs.ingest.resources import PseidonResource
from tests.integration.core.test_ingest import add_log, make_messages
from tests.integration.defs.test_dagster_run import expected_hours
from tests.integration.defs.test_scale_out import expected, lake_messages
from tests.integration.system.test_outages import conf_for, run_job, step_failures, stop_after_step
from tests.private_servers import PrivateMariaDB


@pytest.fixture
def mariadb(tmp_path):
    server = PrivateMariaDB(tmp_path / "mariadb-srv")
    try:
        server.start()
        admin = sa.create_engine(server.url("mysql"))
        with admin.begin() as c:
            c.execute(sa.text("CREATE DATABASE pseidon_etl"))
        admin.dispose()
        yield server
    finally:
        server.close()


@pytest.mark.hive
def test_register_hive_reads_only_the_password_and_only_for_a_row_that_has_one(
        tmp_path, settings, kafka, group, instance, mariadb, hive_port, hive_catalog, hive_db):
    url = mariadb.url("pseidon_etl")
    table = LogTable.from_url(url)
    create_table(table.engine)
    conf, s = conf_for(tmp_path, settings, **{"etl-db-host": url, "lease-ttl-ms": 3000})
    pseidon = PseidonResource(config_path=str(conf))
    store = OffsetStore(connect(s.redis), s.etl_group)
    hive_url = f"//127.0.0.1:{hive_port}/{hive_db}"
    plain, secret = kafka.topic(2), kafka.topic(2)
    produced = {}
    for log, extra in ((plain, {}), (secret, {"hive_user": "etl", "hive_password": "pw-" + uuid.uuid4().hex[:8]})):
        create_table_for(s, add_log(table, group, log, hive_url=hive_url, hive_table_name=log.replace("-", "_"),
                                    **extra))
        produced[log] = make_messages(400, hours=3, partitions=2)
        kafka.produce(log, produced[log])
    table.engine.dispose()

    # no password in the row: with the database gone after the stage op, the run still registers and commits
    run_id = str(uuid.uuid4())
    stopped = stop_after_step(instance, run_id, INGEST_OP, mariadb.stop)
    done = run_job(instance, pseidon, plain, run_id=run_id)
    assert stopped == [INGEST_OP] and done.success, step_failures(done)
    assert store.all_offsets(plain) == {0: 200, 1: 200}
    assert len(hive_catalog.show_partitions(hive_db, plain.replace("-", "_"))) == len(expected_hours(produced[plain]))
    assert sorted(lake_messages(s, plain)) == expected(produced[plain])

    # a password in the row: register_hive reads it, and fails naming the database; nothing is registered or committed
    mariadb.start()
    run_id = str(uuid.uuid4())
    stopped = stop_after_step(instance, run_id, INGEST_OP, mariadb.stop)
    failed = run_job(instance, pseidon, secret, run_id=run_id)
    failures = step_failures(failed)
    assert stopped == [INGEST_OP] and not failed.success and list(failures) == [REGISTER_OP], failures
    assert f"read the hive_password of log '{secret}'" in failures[REGISTER_OP], failures
    assert f"127.0.0.1:{mariadb.port}" in failures[REGISTER_OP], failures
    assert store.all_offsets(secret) == {}
    assert hive_catalog.show_partitions(hive_db, secret.replace("-", "_")) == []
    plan = store.load_plan(secret)
    assert plan is not None and store.r.get(store.lease_key(secret)) is None

    mariadb.start()
    again = run_job(instance, pseidon, secret)
    assert again.success, step_failures(again)
    assert store.all_offsets(secret) == {0: 200, 1: 200} and store.load_plan(secret) is None
    assert len(hive_catalog.show_partitions(hive_db, secret.replace("-", "_"))) == len(expected_hours(produced[secret]))
    assert sorted(lake_messages(s, secret)) == expected(produced[secret])
