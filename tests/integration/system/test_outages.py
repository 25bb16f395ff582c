"""Outages (issue 8, Proof): Kafka, Redis, MariaDB and Hive each stopped *during* a run.

For each server: the run fails with an error naming the server and the step, commits nothing (the Redis offsets are
unchanged and the plan stays for the retry), and the next run after the server is back completes with nothing lost
or doubled -- every produced message is in exactly one data file, the offsets are at the high watermarks, no
temporary file is left, and, for Hive, `SHOW PARTITIONS` and `SELECT count(*)` agree with what was produced.

Every server that is stopped is a private one started by the test (tests/private_servers.py) -- never the machine's
shared MariaDB, Redis or Hive. The moment of the stop is chosen by the core's own hooks, not by sleeps: a consumer
that stops the broker (or Redis) once the first batch has been read, the `before_commit` and `register` hooks of
the Ingestor, and, for Dagster runs, the instance's event listener on the ingest_log step's success.
"""
from __future__ import annotations

import collections
import dataclasses
import json
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import dagster as dg
import pytest

from pseidon_dagster.core import config as config_mod
from pseidon_dagster.core.ingest import Ingestor
from pseidon_dagster.core.kafka import KafkaSource
from pseidon_dagster.core.logtable import LogTable, create_table
from pseidon_dagster.core.offsets import OffsetStore, connect
from pseidon_dagster.defs.ingest.constants import INGEST_OP
from pseidon_dagster.defs.ingest.partitions import logs
from pseidon_dagster.defs.ingest.resources import PseidonResource
from pseidon_dagster.devstack.services import create_topics
from tests.conftest import read_lines, write_conf
from tests.integration.core.test_ingest import HOUR, add_log, make_messages
from tests.integration.defs.test_dagster_run import JOB, materializations
from tests.private_servers import PrivateHive, PrivateKafka, PrivateMariaDB, PrivateRedis

CLI = [sys.executable, "-m", "pseidon_dagster.cli"]


# --- helpers ------------------------------------------------------------------------------------------------------

def conf_for(tmp_path: Path, settings, name: str = "outage.edn", **extra) -> tuple[Path, config_mod.Settings]:
    """A pseidon.edn like the conftest settings with EXTRA keys (private servers, short timeouts)."""
    path = write_conf(tmp_path / name, settings, **extra)
    return path, config_mod.load(str(path))


@dataclasses.dataclass
class HookedKafka(KafkaSource):
    """The real KafkaSource whose consumers call ON_FIRST_BATCH once, right after the first consume() that returned
    messages -- the moment a run is in the middle of reading."""

    on_first_batch: object = None

    def consumer(self, **extra):
        return _HookedConsumer(super().consumer(**extra), self)


class _HookedConsumer:
    def __init__(self, consumer, source: HookedKafka):
        self._c = consumer
        self._source = source

    def consume(self, *args, **kwargs):
        msgs = self._c.consume(*args, **kwargs)
        hook = self._source.on_first_batch
        if hook is not None and any(m.error() is None for m in msgs):
            self._source.on_first_batch = None
            hook()
        return msgs

    def __getattr__(self, name):
        return getattr(self._c, name)


def data_lines(root: Path) -> collections.Counter:
    files = [p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")]
    return collections.Counter(line for f in files for line in read_lines(f))


def hidden_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob(".*") if p.is_file())


def offset_keys(store: OffsetStore, topic: str) -> dict[int, int]:
    return store.all_offsets(topic)


def cli_ingest(conf: Path, topic: str, *extra: str, timeout: float = 180) -> tuple[dict, str]:
    out = subprocess.run([*CLI, "ingest", topic, "--config", str(conf), *extra], capture_output=True, text=True,
                         timeout=timeout)
    assert out.returncode == 0, out.stderr[-4000:]
    return json.loads(out.stdout.strip().splitlines()[-1]), out.stderr


def check_landed(settings, topic: str, produced: list[tuple[int, bytes]], store: OffsetStore, kafka: KafkaSource,
                 partitions: int) -> None:
    """Every produced message in exactly one data file, no temporary file, offsets at the high watermarks."""
    root = Path(settings.data_dir) / "lake" / "raw" / topic
    assert data_lines(root) == collections.Counter(v for _, v in produced)
    assert hidden_files(Path(settings.data_dir)) == []
    marks = kafka.watermarks(topic, list(range(partitions)))
    assert offset_keys(store, topic) == {p: hi for p, (_, hi) in marks.items()}
    assert sum(hi - lo for lo, hi in marks.values()) == len(produced)


# --- Kafka --------------------------------------------------------------------------------------------------------

@pytest.fixture
def private_kafka(tmp_path):
    server = PrivateKafka(tmp_path / "kafka")
    try:
        server.start()
        yield server
    finally:
        server.close()


def test_kafka_stopped_mid_read_fails_the_run_and_the_next_run_completes(
        tmp_path, settings, log_table, group, private_kafka):
    """The broker is killed once the run has read its first batch: the run fails naming Kafka (its address) and
    the read step, Redis keeps the offsets of the previous run and the plan; after the broker is back (same S3
    storage) the next run, a `pseidon-dagster ingest` process, replays the plan and lands every message once."""
    conf, s = conf_for(tmp_path, settings, **{"kafka-brokers": private_kafka.bootstrap, "kafka-timeout-ms": 3000})
    # the failing run fetches little at a time, so that stopping the broker after its first batch leaves most of the
    # range unread (and not already in the consumer's queue)
    small = dataclasses.replace(s, kafka_batch_size=100, kafka_config={
        "fetch.max.bytes": 2048, "max.partition.fetch.bytes": 1024, "message.max.bytes": 1000,
        "queued.max.messages.kbytes": 16, "queued.min.messages": 10})
    store = OffsetStore(connect(s.redis), s.etl_group)
    topic = f"kafka-out-{uuid.uuid4().hex[:8]}"
    create_topics(private_kafka.bootstrap, [topic], 3)
    spec = add_log(log_table, group, topic)
    first = make_messages(300, hours=2)
    private_kafka.produce(topic, first)
    assert Ingestor(s, spec, store).run().committed
    before = offset_keys(store, topic)
    assert before == {0: 100, 1: 100, 2: 100}

    more = make_messages(3000, hours=3, start=300)
    private_kafka.produce(topic, more)
    kafka = HookedKafka(small, on_first_batch=lambda: private_kafka.stop())
    with pytest.raises(Exception) as failed:
        Ingestor(small, spec, store, kafka).run()

    message = str(failed.value)
    print("KAFKA OUTAGE:", type(failed.value).__name__, message)
    assert private_kafka.bootstrap in message and "Kafka" in message, message
    assert "reading" in message, message  # the step
    assert offset_keys(store, topic) == before  # nothing committed
    plan = store.load_plan(topic)
    assert plan is not None and plan.ranges == {0: (100, 1100), 1: (100, 1100), 2: (100, 1100)}

    # a retry while the broker is still down fails too, naming Kafka and the step, and changes nothing
    out = subprocess.run([*CLI, "ingest", topic, "--config", str(conf)], capture_output=True, text=True, timeout=120)
    error = out.stderr.strip().splitlines()[-1]  # the CLI's one line for the user (librdkafka's logs come before)
    print("KAFKA STILL DOWN:", error)
    assert out.returncode == 1 and error.startswith("pseidon-dagster ingest: ")
    assert f"Kafka at {private_kafka.bootstrap}" in error and "watermarks" in error, error
    assert offset_keys(store, topic) == before and store.load_plan(topic) == plan

    private_kafka.start()
    summary, _ = cli_ingest(conf, topic)
    assert summary["replayed"] and summary["committed"] and summary["read"] == 3000
    check_landed(s, topic, first + more, store, KafkaSource(s), 3)


# --- Redis --------------------------------------------------------------------------------------------------------

@pytest.fixture
def private_redis(tmp_path):
    server = PrivateRedis(tmp_path / "redis-srv")
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.mark.parametrize("moment", ["mid-read", "before-commit"])
def test_redis_killed_during_a_run_fails_it_and_the_next_run_completes(
        tmp_path, settings, log_table, kafka, group, private_redis, moment):
    """Redis is SIGKILLed mid-read (the files are still to be published) or between publishing and committing: the
    run fails naming Redis (its address) and the step; after the restart (the append-only file brings the data
    back) the offsets are those of the previous run, the plan is there, and the next run lands every message once."""
    conf, s = conf_for(tmp_path, settings, **{"redis-conf": {"host": f"127.0.0.1:{private_redis.port}"},
                                              "lease-ttl-ms": 3000, "kafka-batch-size": 100,
                                              "kafka-config": {"fetch.max.bytes": 2048, "message.max.bytes": 1000,
                                                               "max.partition.fetch.bytes": 1024}})
    store = OffsetStore(connect(s.redis), s.etl_group)
    topic = kafka.topic(3)
    spec = add_log(log_table, group, topic)
    first = make_messages(300, hours=2)
    kafka.produce(topic, first)
    assert Ingestor(s, spec, store).run().committed
    before = offset_keys(store, topic)
    assert before == {0: 100, 1: 100, 2: 100}
    more = make_messages(3000, hours=3, start=300)
    kafka.produce(topic, more)

    if moment == "mid-read":
        ing = Ingestor(s, spec, store, HookedKafka(s, on_first_batch=private_redis.kill))
    else:
        ing = Ingestor(s, spec, store, before_commit=lambda result: private_redis.kill())
    with pytest.raises(Exception) as failed:
        ing.run()

    message = str(failed.value)
    print("REDIS OUTAGE", moment, type(failed.value).__name__, message)
    where = f"127.0.0.1:{private_redis.port}"
    assert "Redis" in message and where in message, message
    step = "publish" if moment == "mid-read" else "commit"
    assert step in message, message

    private_redis.start()
    assert offset_keys(store, topic) == before  # nothing committed
    plan = store.load_plan(topic)
    assert plan is not None and plan.ranges == {0: (100, 1100), 1: (100, 1100), 2: (100, 1100)}

    summary, _ = cli_ingest(conf, topic)
    assert summary["replayed"] and summary["committed"] and summary["read"] == 3000
    check_landed(s, topic, first + more, store, KafkaSource(s), 3)


# --- MariaDB (the pseidon_logs table) in a Dagster run -------------------------------------------------------------

@pytest.fixture
def private_mariadb(tmp_path):
    server = PrivateMariaDB(tmp_path / "mariadb-srv")
    try:
        server.start()
        yield server
    finally:
        server.close()


def run_job(instance, pseidon: PseidonResource, log: str, run_id: str | None = None) -> dg.ExecuteInProcessResult:

    if log not in instance.get_dynamic_partitions(logs.name):
        instance.add_dynamic_partitions(logs.name, [log])
    return JOB.execute_in_process(instance=instance, partition_key=log, resources={"pseidon": pseidon},
                                  raise_on_error=False, run_id=run_id)


def step_failures(result: dg.ExecuteInProcessResult) -> dict[str, str]:
    """{step key: error message (with its causes)} of the run's failed steps."""
    out = {}
    for e in result.all_events:
        if e.event_type_value == "STEP_FAILURE":
            err = e.event_specific_data.error
            texts = []
            while err is not None:
                texts.append(err.message)
                err = err.cause
            out[e.step_key] = "\n".join(texts)
    return out


def stop_after_step(instance, run_id: str, step: str, stop) -> list[str]:
    """Call STOP (once) as soon as the instance records STEP's success in run RUN_ID: in-process, the next op starts
    only after the listener returns, so the server is down before it runs."""
    done: list[str] = []

    def listener(event):
        if (not done and event.is_dagster_event and event.dagster_event.event_type_value == "STEP_SUCCESS"
                and event.step_key == step):
            stop()
            done.append(step)

    instance.add_event_listener(run_id, listener)
    return done


def test_mariadb_stopped_after_the_stage_op_does_not_stop_the_run_and_the_next_run_fails_until_it_is_back(
        tmp_path, settings, kafka, group, instance, private_mariadb):
    """mariadbd (holding pseidon_logs) is stopped once ingest_log has published the files. The stage op handed the
    row (without secrets) to the next ops, so register_hive and commit_offsets need no database: the run commits and
    reports, every message once. The next run, which must read the row, fails in its stage op naming the database
    server and commits nothing; with the server back, the run after it completes."""
    import sqlalchemy as sa

    admin = sa.create_engine(private_mariadb.url("mysql"))
    with admin.begin() as c:
        c.execute(sa.text("CREATE DATABASE pseidon_etl"))
    admin.dispose()
    url = private_mariadb.url("pseidon_etl")
    table = LogTable.from_url(url)
    create_table(table.engine)
    conf, s = conf_for(tmp_path, settings, **{"etl-db-host": url, "lease-ttl-ms": 3000})
    pseidon = PseidonResource(config_path=str(conf))
    store = OffsetStore(connect(s.redis), s.etl_group)
    topic = kafka.topic(3)
    add_log(table, group, topic)
    table.engine.dispose()
    first = make_messages(300, hours=2)
    kafka.produce(topic, first)
    assert run_job(instance, pseidon, topic).success
    assert offset_keys(store, topic) == {0: 100, 1: 100, 2: 100}
    more = make_messages(3000, hours=3, start=300)
    kafka.produce(topic, more)

    run_id = str(uuid.uuid4())
    stopped = stop_after_step(instance, run_id, INGEST_OP, private_mariadb.stop)
    done = run_job(instance, pseidon, topic, run_id=run_id)

    assert stopped == [INGEST_OP]
    assert done.success, step_failures(done)  # the files were published: registered and committed all the same
    assert offset_keys(store, topic) == {0: 1100, 1: 1100, 2: 1100}
    assert store.load_plan(topic) is None
    mats = materializations(done)
    assert mats and sum(m.metadata["records"].value for m in mats.values()) == 3000
    check_landed(s, topic, first + more, store, KafkaSource(s), 3)

    last = make_messages(30, hours=1, start=3300)
    kafka.produce(topic, last)
    failed = run_job(instance, pseidon, topic)  # MariaDB is still down: the stage op cannot read the row
    assert not failed.success
    failures = step_failures(failed)
    print("MARIADB OUTAGE", failures)
    assert list(failures) == [INGEST_OP]  # the step (op) that failed ...
    error = failures[INGEST_OP]
    assert f'op "{INGEST_OP}"' in error and "read the row of log" in error, error  # ... named in the error
    assert f"the pseidon_logs table at mysql+pymysql://root@127.0.0.1:{private_mariadb.port}/" in error, error
    assert offset_keys(store, topic) == {0: 1100, 1: 1100, 2: 1100}  # nothing committed
    assert store.load_plan(topic) is None  # nor planned
    assert store.r.get(store.lease_key(topic)) is None

    private_mariadb.start()
    again = run_job(instance, pseidon, topic)
    assert again.success, step_failures(again)
    check_landed(s, topic, first + more + last, store, KafkaSource(s), 3)


# --- Hive ---------------------------------------------------------------------------------------------------------

def _wants_private_hive(item) -> bool:
    return "private_hive" in getattr(item, "fixturenames", ())


@pytest.fixture(scope="module", autouse=True)
def _private_hive_server(request, tmp_path_factory):
    """One private Hive for the module, started in a background thread as soon as the module starts (only if a test
    that needs it is selected), so its 25-60 s start-up overlaps the other outage tests."""
    if not any(_wants_private_hive(i) and i.module is request.module for i in request.session.items):
        yield None
        return
    from pseidon_dagster.devstack import hiveserver

    server = PrivateHive(tmp_path_factory.mktemp("private-hive"))
    problem: list[str] = []
    try:
        hiveserver.spark_home()
    except hiveserver.HiveServerError as e:
        problem.append(str(e))
    started: dict = {}

    def start():
        try:
            server.start()
        except Exception as e:  # noqa: BLE001 - reported by the fixture that needs it
            started["error"] = e

    thread = threading.Thread(target=start, name="private-hive-start", daemon=True)
    if not problem:
        thread.start()
    try:
        yield {"server": server, "thread": thread, "started": started, "problem": problem}
    finally:
        if thread.is_alive():
            thread.join(240)
        server.close()


@pytest.fixture
def private_hive(_private_hive_server):
    import os

    missing = pytest.fail if os.environ.get("CI") else pytest.skip
    info = _private_hive_server
    if info["problem"]:
        missing(f"the Hive outage test needs pyspark and Java: {info['problem'][0]}")
    info["thread"].join(240)
    if "error" in info["started"]:
        raise info["started"]["error"]
    if info["thread"].is_alive():
        pytest.fail("the private Hive did not start within 240 s")
    return info["server"]  # stopped by _private_hive_server at the end of the module


@pytest.mark.hive
def test_hive_stopped_after_publish_fails_the_registration_and_the_next_run_registers(
        tmp_path, settings, log_table, kafka, group, private_hive):
    """The private HiveServer2 is stopped after the files are published, as the register step begins: the run
    fails naming Hive (host:port, table) and the registration, commits nothing, registers nothing; after the
    restart (the Derby metastore persists in its state directory) the next `pseidon-dagster ingest` registers the
    partitions and commits. SHOW PARTITIONS and SELECT count(*) then agree with what was produced."""
    from pseidon_dagster.core.hive import CatalogError, HiveCatalog, HiveTarget, create_table_for, registrar_for

    conf, s = conf_for(tmp_path, settings, hive={"retries": 1, "retry-backoff-ms": 50})
    store = OffsetStore(connect(s.redis), s.etl_group)
    catalog = HiveCatalog(HiveTarget("127.0.0.1", private_hive.port), "pseidon", retries=2, backoff_s=0.5)
    db = f"po_{uuid.uuid4().hex[:10]}"
    catalog.create_database(db)
    topic = kafka.topic(2)
    spec = add_log(log_table, group, topic, hive_url=f"//127.0.0.1:{private_hive.port}/{db}", hive_table_name="t")
    create_table_for(s, spec)
    first = make_messages(200, hours=2, partitions=2)
    kafka.produce(topic, first)
    done = Ingestor(s, spec, store, register=registrar_for(s, spec)).run()
    first_hours = {int(v.split(b"|")[0]) // HOUR for _, v in first}
    assert done.committed and len(done.registered) == len(first_hours) == 1
    before = offset_keys(store, topic)
    assert before == {0: 100, 1: 100}
    more = make_messages(2000, hours=3, start=200, partitions=2)
    kafka.produce(topic, more)
    hours = first_hours | {int(v.split(b"|")[0]) // HOUR for _, v in more}
    assert len(hours) == 3

    register = registrar_for(s, spec)

    def stop_hive_then_register(result):
        private_hive.stop()
        return register(result)

    with pytest.raises(CatalogError) as failed:
        Ingestor(s, spec, store, register=stop_hive_then_register).run()

    message = str(failed.value)
    print("HIVE OUTAGE", message)
    assert f"127.0.0.1:{private_hive.port}" in message and "HiveServer2" in message, message  # the server
    assert "could not register" in message and f"{db}.t" in message, message  # the step and the table
    assert offset_keys(store, topic) == before  # nothing committed
    plan = store.load_plan(topic)
    assert plan is not None and plan.ranges == {0: (100, 1100), 1: (100, 1100)}

    private_hive.start()  # same state directory: the metastore kept the table and the first run's partitions
    assert catalog.show_partitions(db, "t") == done.registered  # the failed run registered nothing
    summary, _ = cli_ingest(conf, topic)
    assert summary["replayed"] and summary["committed"] and summary["read"] == 2000
    assert len(summary["registered"]) == 3
    check_landed(s, topic, first + more, store, KafkaSource(s), 2)
    assert catalog.show_partitions(db, "t") == sorted(summary["registered"])
    assert catalog.execute(f"SELECT count(*) FROM `{db}`.`t`", fetch=True) == [(2200,)]
    catalog.execute(f"DROP DATABASE IF EXISTS `{db}` CASCADE")
