"""Offsets in Redis: first run, expired data, offsets ahead of Kafka, reset, and the original's key scheme."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time

import pytest

from pseidon_dagster.core.ingest import ingest
from pseidon_dagster.core.kafka import KafkaSource
from pseidon_dagster.core.lease import Lease
from pseidon_dagster.core.offsets import LockedError, OffsetError
from tests.integration.core.test_ingest import InjectedFailure, add_log, fail_before_commit, make_messages


def test_first_run_starts_at_latest_unless_use_earliest(settings, log_table, kafka, store, group, redis_client):
    topic = kafka.topic(2)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, make_messages(20, partitions=2))
    latest = dataclasses.replace(settings, kafka_use_earliest=False)

    first = ingest(latest, spec, store)

    assert first.written == 0
    assert redis_client.get(f"/{group}/offsets/{topic}/0") == "10"  # remembered where it starts
    kafka.produce(topic, make_messages(6, partitions=2, start=100))
    second = ingest(latest, spec, store)
    assert second.written == 6


def test_migrated_offsets_from_pseidon_etl_are_honoured(settings, log_table, kafka, store, group, redis_client):
    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, make_messages(10, partitions=1))
    redis_client.set(f"/{group}/offsets/{topic}/0", "7")  # as the Clojure pseidon-etl left it

    result = ingest(settings, spec, store)

    assert result.offsets == {0: (7, 10)} and result.written == 3


class RetentionSource(KafkaSource):
    """Real tansu broker, but the low watermark is reported as 5 to simulate retention having deleted offsets
    0-4 (tansu cannot delete records)."""

    def watermarks(self, topic, partitions=None, consumer=None):
        return {p: (max(lo, 5), hi) for p, (lo, hi) in super().watermarks(topic, partitions, consumer).items()}


def test_expired_offsets_continue_from_low_watermark_and_report_the_loss(
        settings, log_table, kafka, store, group, caplog):
    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, make_messages(10, partitions=1))
    store.set(topic, {0: 2})

    result = ingest(settings, spec, store, kafka=RetentionSource(settings))

    assert result.lost == {0: (2, 5)}
    assert result.offsets == {0: (5, 10)} and result.written == 5
    assert "LOST DATA" in caplog.text
    assert json.loads(result.to_json())["lost"] == {"0": [2, 5]}


def test_offset_ahead_of_kafka_fails_clearly_and_reset_recovers(settings, log_table, kafka, store, group, tmp_path):
    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, make_messages(10, partitions=1))
    store.set(topic, {0: 1000})

    with pytest.raises(OffsetError, match="beyond Kafka's high watermark 10.*offsets reset"):
        ingest(settings, spec, store)
    assert store.get(topic, [0]) == {0: 1000}

    conf = tmp_path / "pseidon.edn"
    conf.write_text(f'{{:etl-db-host "{settings.etl_db_url}" :etl-group "{group}" '
                    f':kafka-brokers "{settings.bootstrap_servers}" :redis-conf {{:host "127.0.0.1:6379"}} '
                    f':data-dir "{settings.data_dir}"}}')
    out = subprocess.run([sys.executable, "-m", "pseidon_dagster.cli", "offsets", "reset", topic, "--to", "earliest",
                          "--config", str(conf)], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)["offsets"] == {"0": 0}
    assert ingest(settings, spec, store).written == 10


def test_a_second_run_waits_for_the_lease_then_gives_up_naming_the_holder(settings, log_table, kafka, store,
                                                                          group):
    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic)
    short = dataclasses.replace(settings, lease_ttl_s=1.0)
    holder = Lease.acquire(store, topic, owner="someone-else", ttl_s=1.0)  # renewed in the background
    notes = []
    try:
        t0 = time.monotonic()
        with pytest.raises(LockedError, match="held by someone-else"):
            ingest(short, spec, store, notify=notes.append)
        waited = time.monotonic() - t0
    finally:
        holder.release()
    assert short.lease_wait_s <= waited < short.lease_wait_s + 2
    assert notes and "waiting for the lease held by someone-else" in notes[0]
    assert store.all_offsets(topic) == {} and store.load_plan(topic) is None


def test_cli_ingest_prints_one_json_summary(settings, log_table, kafka, group, tmp_path):
    topic = kafka.topic(3)
    add_log(log_table, group, topic)
    kafka.produce(topic, make_messages(300))
    conf = tmp_path / "pseidon.edn"
    conf.write_text(f'{{:etl-db-host "{settings.etl_db_url}" :etl-group "{group}" :kafka-use-earliest true '
                    f':kafka-brokers [{{:host "{settings.kafka_brokers[0].split(":")[0]}" '
                    f':port {settings.kafka_brokers[0].split(":")[1]}}}] '
                    f':redis-conf {{:host "127.0.0.1:6379"}} :data-dir "{tmp_path}" :writer {{:allow-all-ts true}}}}')
    out = subprocess.run([sys.executable, "-m", "pseidon_dagster.cli", "ingest", topic, "--config", str(conf)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["read"] == summary["written"] == 300
    assert summary["quarantined"] == summary["filtered"] == 0
    assert summary["offsets"] == {"0": [0, 100], "1": [0, 100], "2": [0, 100]}
    assert summary["file_count"] == len(summary["files"]) > 0 and summary["bytes"] > 0
    assert summary["seconds"] > 0
    assert f"ingest {topic}: read 300/300 (100%)" in out.stderr  # progress on stderr, the summary last on stdout


def test_kafka_down_fails_cleanly_and_commits_nothing(settings, log_table, kafka, store, group):
    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic)
    down = dataclasses.replace(settings, kafka_brokers=("127.0.0.1:1",), kafka_timeout_s=2.0)
    with pytest.raises(Exception, match="did not answer|watermarks|Kafka"):
        ingest(down, spec, store)
    assert store.all_offsets(topic) == {}
    assert store.load_plan(topic) is None


def test_expired_offsets_with_nothing_new_still_commit_the_jump(settings, log_table, kafka, store, group):
    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, make_messages(5, partitions=1))
    store.set(topic, {0: 2})

    class AllExpired(KafkaSource):
        def watermarks(self, topic, partitions=None, consumer=None):
            return {p: (hi, hi) for p, (lo, hi) in super().watermarks(topic, partitions, consumer).items()}

    result = ingest(settings, spec, store, kafka=AllExpired(settings))

    assert result.lost == {0: (2, 5)} and result.written == 0 and result.committed
    assert store.get(topic, [0]) == {0: 5} and store.load_plan(topic) is None


def test_staged_steps_and_a_reentrant_lock_for_retries(settings, log_table, kafka, store, group):
    from pseidon_dagster.core.ingest import Ingestor

    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, make_messages(10, partitions=1))

    staged = Ingestor(settings, spec, store, owner="root-run-1").stage()
    assert staged.written == 10 and not staged.committed and store.get(topic, [0]) == {0: None}
    # the lease is held (and renewed) between the steps: another run waits and gives up, a later step or a retry
    # of the same root run continues it
    with pytest.raises(LockedError):
        Ingestor(dataclasses.replace(settings, lease_ttl_s=1.0), spec, store).stage()
    retry = Ingestor(settings, spec, store, owner="root-run-1")
    again = retry.stage()
    assert again.replayed and again.plan_id == staged.plan_id
    retry.register_files(again)
    assert retry.commit(again).committed and store.get(topic, [0]) == {0: 10}
    assert store.r.get(store.lease_key(topic)) is None


def test_a_stored_plan_whose_offsets_expired_fails_with_a_way_out(settings, log_table, kafka, store, group):
    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, make_messages(10, partitions=1))

    with pytest.raises(InjectedFailure):
        ingest(settings, spec, store, before_commit=fail_before_commit)
    with pytest.raises(OffsetError, match="cannot be replayed.*offsets reset"):
        ingest(settings, spec, store, kafka=RetentionSource(settings))
    assert store.get(topic, [0]) == {0: None} and store.load_plan(topic) is not None
