"""ingest_job with Hive: the register_hive op (in the hive_ddl pool) registers every hour the run wrote, the
hive_table asset is materialized with those partitions, and Hive being down fails the run before the commit."""
from __future__ import annotations

import pytest

from pseidon_dagster.defs.ingest.constants import HIVE_TABLE, REGISTER_OP
from tests.integration.core.test_ingest import add_log, make_messages
from tests.integration.defs.test_dagster_run import expected_hours, materializations, run
from tests.unit.defs.test_ingest_definitions import DEFS


@pytest.mark.hive
def test_hive_table_materializations_carry_the_registered_partitions(
        pseidon, instance, settings, log_table, kafka, store, group, hive_port, hive_db, hive_catalog):
    from pseidon_dagster.core.hive import create_table_for

    topic = kafka.topic(2)
    spec = add_log(log_table, group, topic, hive_url=f"//127.0.0.1:{hive_port}/{hive_db}", hive_table_name="t")
    create_table_for(settings, spec)
    msgs = make_messages(400, hours=3, partitions=2)
    kafka.produce(topic, msgs)

    result = run(instance, pseidon, topic)

    assert result.success
    hours = expected_hours(msgs)
    mats = materializations(result, HIVE_TABLE)
    assert set(mats) == {f"{h}|{topic}" for h in hours}
    for key, mat in mats.items():  # each (hour, log) partition names exactly its own Hive partition
        hour = key.split("|")[0]  # YYYY-MM-DD-HH:00
        assert mat.metadata["partitions"].value == [f"dt={hour[:10].replace('-', '')}/hr={hour[:13].replace('-', '')}"]
    registered = sorted(p for m in mats.values() for p in m.metadata["partitions"].value)
    assert registered == hive_catalog.show_partitions(hive_db, "t") and len(registered) == len(hours)
    assert hive_catalog.execute(f"SELECT count(*) FROM `{hive_db}`.`t`", fetch=True) == [(400,)]
    assert store.get(topic, [0, 1]) == {0: 200, 1: 200}


@pytest.mark.hive
def test_hive_down_fails_the_run_before_the_commit_and_the_next_run_registers(
        instance, settings, log_table, kafka, store, group, hive_port, hive_db, hive_catalog, tmp_path):
    import socket

    from pseidon_dagster.core.hive import create_table_for
    from pseidon_dagster.defs.ingest.resources import PseidonResource
    from tests.conftest import write_conf

    pseidon = PseidonResource(config_path=str(write_conf(tmp_path / "pseidon.edn", settings,
                                                         hive={"retries": 1, "retry-backoff-ms": 50})))

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    topic = kafka.topic(1)
    good = add_log(log_table, group, topic, hive_url=f"//127.0.0.1:{hive_port}/{hive_db}", hive_table_name="t")
    create_table_for(settings, good)
    add_log(log_table, group, topic, hive_url=f"//127.0.0.1:{closed}/{hive_db}", hive_table_name="t")
    kafka.produce(topic, make_messages(50, partitions=1))

    failed = run(instance, pseidon, topic)

    assert not failed.success
    step_failures = [e for e in failed.all_events if e.event_type_value == "STEP_FAILURE"]
    assert [e.step_key for e in step_failures] == [REGISTER_OP]
    assert store.get(topic, [0]) == {0: None} and store.load_plan(topic) is not None
    assert store.r.get(store.lease_key(topic)) is None  # the lock was released for the retry

    add_log(log_table, group, topic, hive_url=f"//127.0.0.1:{hive_port}/{hive_db}", hive_table_name="t")
    retried = run(instance, pseidon, topic)

    assert retried.success
    assert store.get(topic, [0]) == {0: 50}
    assert hive_catalog.execute(f"SELECT count(*) FROM `{hive_db}`.`t`", fetch=True) == [(50,)]


@pytest.mark.hive
def test_hive_table_job_creates_the_table_from_the_schema_file(
        instance, settings, log_table, kafka, group, hive_port, hive_db, hive_catalog, tmp_path):
    import json

    from pseidon_dagster.defs.ingest.constants import HIVE_TABLE_JOB
    from pseidon_dagster.defs.ingest.partitions import logs
    from pseidon_dagster.defs.ingest.resources import PseidonResource
    from tests.conftest import write_conf

    schemas = tmp_path / "schemas"
    schemas.mkdir()
    topic = kafka.topic(1)
    (schemas / f"{topic}.json").write_text(json.dumps({"columns": [{"name": "ts", "type": "bigint"},
                                                                   {"name": "msg", "type": "string"}]}))
    add_log(log_table, group, topic, out="parquet", hive_url=f"//127.0.0.1:{hive_port}/{hive_db}",
            hive_table_name="typed")
    resource = PseidonResource(config_path=str(write_conf(tmp_path / "pseidon.edn", settings,
                                                          **{"schema-dir": str(schemas)})))
    instance.add_dynamic_partitions(logs.name, [topic])

    result = DEFS.resolve_job_def(HIVE_TABLE_JOB).execute_in_process(
        instance=instance, partition_key=topic, resources={"pseidon": resource})

    assert result.success
    assert hive_catalog.describe("typed", hive_db) == [("ts", "bigint"), ("msg", "string")]
    outputs = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    ddl = outputs[0].event_specific_data.metadata["ddl"].value
    assert "STORED AS PARQUET" in ddl and "PARTITIONED BY" in ddl and "LOCATION" in ddl
