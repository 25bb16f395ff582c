"""Dagster and issue 8: a run that failed before storing a plan is requested again after a back-off; a failure between
the Redis commit and the run's report leaves no hour unreported (the retry reports the stored result, with no false
continuity failure); and nothing secret reaches Dagster's storage, the event log, run metadata or the CLI's output."""
from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import dagster as dg

from pseidon_dagster.core.lease import Lease
from pseidon_dagster.defs.ingest.constants import INGEST_OP, LAKE_FILES, LOG_TAG, OFFSET_CONTINUITY, RESOURCE_KEY
from pseidon_dagster.defs.ingest.resources import PseidonResource
from tests.conftest import write_conf
from tests.integration.core.test_ingest import add_log, make_messages
from tests.integration.defs.test_dagster_run import JOB, check_evaluations, expected_hours, run
from tests.integration.defs.test_sensor import apply_partitions, requested, tick


def test_a_run_that_failed_before_its_plan_is_requested_again_after_a_back_off(
        tmp_path, settings, instance, log_table, kafka, store, group):
    topic = kafka.topic(1)
    add_log(log_table, group, topic)
    kafka.produce(topic, make_messages(30, partitions=1))
    pseidon = PseidonResource(config_path=str(write_conf(
        tmp_path / "p.edn", settings, **{"lease-ttl-ms": 1000, "sensor-retry-backoff-ms": 1500})))

    first = tick(instance, pseidon)
    apply_partitions(instance, first)
    req = requested(first)[topic]
    holder = Lease.acquire(store, topic, owner="someone-else", ttl_s=1)  # the log is busy: the run fails early
    try:
        failed = JOB.execute_in_process(instance=instance, partition_key=topic, tags=req.tags, raise_on_error=False,
                                        resources={RESOURCE_KEY: pseidon})
    finally:
        holder.release()
    assert not failed.success and "held by someone-else" in str(failed.all_events)
    assert store.load_plan(topic) is None  # failed before storing a plan: nothing the run key is made of moved

    soon = tick(instance, pseidon, first.cursor)
    assert soon.run_requests == [] and "requesting again in" in soon.skip_reason.skip_message
    import time

    time.sleep(1.6)
    later = tick(instance, pseidon, soon.cursor)
    again = requested(later)[topic]
    assert again.run_key == f"{req.run_key}:retry1" and "failed" in again.tags["pseidon/reason"]
    done = JOB.execute_in_process(instance=instance, partition_key=topic, tags=again.tags,
                                  resources={RESOURCE_KEY: pseidon})
    assert done.success and store.get(topic, [0]) == {0: 30}


def test_a_failure_between_the_commit_and_the_report_is_reported_by_the_retry(
        pseidon, instance, settings, log_table, kafka, store, group):
    topic = kafka.topic(2)
    add_log(log_table, group, topic)
    msgs = make_messages(400, hours=3, partitions=2)
    kafka.produce(topic, msgs)
    # an earlier run sets where the log's offsets stand in Dagster's record
    assert run(instance, pseidon, topic).success is True
    kafka.produce(topic, make_messages(200, hours=3, partitions=2, start=400))

    failed = JOB.execute_in_process(
        instance=instance, partition_key=topic, raise_on_error=False, resources={RESOURCE_KEY: pseidon},
        run_config={"ops": {INGEST_OP: {"config": {"fail_after_commit": True}}}})
    assert not failed.success and "injected failure after the commit" in str(failed.all_events)
    assert store.get(topic, [0, 1]) == {0: 300, 1: 300}  # committed ...
    reported_before = instance.get_materialized_partitions(LAKE_FILES)

    retry = JOB.execute_in_process(instance=instance, partition_key=topic, raise_on_error=False,
                                   resources={RESOURCE_KEY: pseidon}, tags={"dagster/retry_number": "1"})
    assert retry.success
    # ... and reported by the retry: every hour of the committed run, with passing checks
    hours = expected_hours(make_messages(200, hours=3, partitions=2, start=400))
    keys = {f"{h}|{topic}" for h in hours}
    assert keys <= instance.get_materialized_partitions(LAKE_FILES) and reported_before
    evaluations = check_evaluations(instance, OFFSET_CONTINUITY)
    assert all(evaluations[k].status.value == "SUCCEEDED" for k in keys), {
        k: evaluations[k].status for k in keys}
    assert store.unreported(topic) == []


def test_no_secret_reaches_dagster_storage_logs_metadata_or_the_cli_output(
        tmp_path, settings, log_table, kafka, store, group, hive_port, hive_db):
    """Known secret values in the row (hive_password) and in pseidon.edn (a :kafka-config SASL password that the
    broker never asks for, a Vault token): after a Dagster run (sqlite storage in a DAGSTER_HOME of its own) and a
    CLI run, grep every byte Dagster stored, the run's events and metadata, and the CLI's stdout and stderr."""
    from pseidon_dagster.core.hive import create_table_for

    secrets = ["Hive-pw-7f3a9c", "sasl-pw-51d0e2", "vault-token-9b8c7a"]
    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic, hive_url=f"//127.0.0.1:{hive_port}/{hive_db}", hive_table_name="t",
                   hive_user="etl", hive_password=secrets[0])
    create_table_for(settings, spec)
    kafka.produce(topic, make_messages(50, partitions=1))
    conf = write_conf(tmp_path / "p.edn", settings, **{
        "kafka-config": {"sasl.password": secrets[1]},
        "vault": {"addr": "http://127.0.0.1:1", "token": secrets[2]}})
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        instance.add_dynamic_partitions("logs", [topic])
        # The filesystem IO manager of a deployed run (execute_in_process would keep op outputs in memory): the
        # Staged value the stage op hands on is pickled under DAGSTER_HOME, as a retry from failure reads it.
        io = dg.FilesystemIOManager(base_dir=str(home / "storage"))
        result = JOB.execute_in_process(instance=instance, partition_key=topic,
                                        resources={RESOURCE_KEY: PseidonResource(config_path=str(conf)),
                                                   "io_manager": io})
        assert result.success
        events = [str(e) for e in instance.all_logs(result.run_id)]
        run_record = str(instance.get_run_by_id(result.run_id))
        mats = str(instance.fetch_materializations(LAKE_FILES, limit=100))
    kafka.produce(topic, make_messages(20, partitions=1, start=50))
    cli = subprocess.run([sys.executable, "-m", "pseidon_dagster.cli", "-v", "ingest", topic, "--config", str(conf)],
                         capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr[-2000:]
    stored = b"".join(p.read_bytes() for p in Path(home).rglob("*") if p.is_file())
    assert len(stored) > 10_000  # the run's database, event log and pickled op outputs are really there
    for secret in secrets:
        assert secret.encode() not in stored, f"{secret} in Dagster's storage"
        for name, text in (("events", "".join(events)), ("run", run_record), ("materializations", mats),
                           ("CLI stdout", cli.stdout), ("CLI stderr", cli.stderr)):
            assert secret not in text, f"{secret} in {name}"
    with open(home / "storage" / result.run_id / INGEST_OP / "result", "rb") as f:
        staged = pickle.load(f)
    # the row rides along to the later ops, its hive_password cleared (register_hive reads it again)
    assert staged.spec.log == topic and staged.spec.hive_url == spec.hive_url and staged.spec.hive_user == "etl"
    assert staged.spec.hive_password is None and staged.row_has_password
    assert LOG_TAG in result.dagster_run.tags
