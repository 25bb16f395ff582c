"""Fixtures that talk to real servers: MariaDB (127.0.0.1:3306), Redis (127.0.0.1:6379) and tansu (Kafka protocol).

tansu is started here on a free loopback port unless PSEIDON_TEST_KAFKA names a running broker. Every test gets its
own :etl-group (so its own Redis keys), its own topic names and its own output folder.
"""
from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import time
import uuid
from pathlib import Path

# The tests' event times are in November 2026: show hours from the start of the year as partitions (the default window
# is the last 7 days, which moves).
os.environ.setdefault("PSEIDON_HOURS_START", "2026-01-01-00:00")

import dagster as dg  # noqa: E402
import edn_format
import pytest
import redis as redis_lib
import sqlalchemy as sa

from pseidon_dagster.core import config as config_mod
from pseidon_dagster.core.logtable import LogTable, create_table
from pseidon_dagster.core.offsets import OffsetStore, connect
from pseidon_dagster.defs.ingest.resources import PseidonResource
from pseidon_dagster.devstack.services import create_topics, produce_sealed, tansu_binary, wait_port

pytest_plugins = ["tests.hive_fixtures"]

# A test that asks for one of these (directly or through settings, store, kafka, log_table, pseidon, ...) needs a
# server. Tests under tests/integration/ are marked `integration`; a test under tests/unit/ (`make test-unit`: no
# server, about a minute) that asks for a server fails at collection, naming the fixture, so the split cannot rot.
SERVER_FIXTURES = {"kafka_bootstrap", "mysql_url", "redis_client", "hive_port"}
UNIT_DIR = Path(__file__).parent / "unit"
INTEGRATION_DIR = Path(__file__).parent / "integration"


def pytest_collection_modifyitems(config, items):
    for item in items:
        path = Path(str(item.path))
        needs = SERVER_FIXTURES & set(getattr(item, "fixturenames", ()))
        if path.is_relative_to(INTEGRATION_DIR):
            item.add_marker(pytest.mark.integration)
        elif needs and path.is_relative_to(UNIT_DIR):
            raise pytest.UsageError(f"{item.nodeid} needs a server ({', '.join(sorted(needs))}): it belongs under "
                                    "tests/integration/")

MYSQL_ADMIN_URL = os.environ.get("PSEIDON_TEST_MYSQL", "mysql+pymysql://root@127.0.0.1:3306/test")
REDIS_PORT = int(os.environ.get("PSEIDON_TEST_REDIS_PORT", "6379"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory):
    given = os.environ.get("PSEIDON_TEST_KAFKA")
    if given:
        yield given
        return
    port = _free_port()
    url = f"tcp://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("tansu") / "tansu.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url],
                                stdout=out, stderr=subprocess.STDOUT)
    if not wait_port(port, 20):
        proc.kill()
        raise RuntimeError(f"tansu did not start: {log.read_text()[-2000:]}")
    yield f"127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="session")
def mysql_url():
    """A fresh database on the local MariaDB for this test session."""
    name = f"pseidon_test_{os.getpid()}"
    admin = sa.create_engine(MYSQL_ADMIN_URL)
    with admin.begin() as c:
        c.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        c.execute(sa.text(f"CREATE DATABASE {name}"))
    url = MYSQL_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    yield url
    with admin.begin() as c:
        c.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
    admin.dispose()


@pytest.fixture
def log_table(mysql_url):
    table = LogTable.from_url(mysql_url)
    with table.engine.begin() as c:
        c.execute(sa.text("DROP TABLE IF EXISTS pseidon_logs"))
    create_table(table.engine)
    yield table
    table.engine.dispose()


@pytest.fixture
def redis_client():
    r = redis_lib.Redis(host="127.0.0.1", port=REDIS_PORT, decode_responses=True)
    r.ping()
    return r


@pytest.fixture
def group(redis_client):
    g = f"t{uuid.uuid4().hex[:10]}"
    yield g
    for key in redis_client.scan_iter(match=f"/{g}/*"):
        redis_client.delete(key)


@pytest.fixture
def settings(tmp_path, kafka_bootstrap, mysql_url, group):
    return config_mod.from_mapping({
        "etl-db-host": mysql_url,
        "etl-group": group,
        "kafka-brokers": kafka_bootstrap,
        "kafka-use-earliest": True,
        "kafka-timeout-ms": 10000,
        "redis-conf": {"host": f"127.0.0.1:{REDIS_PORT}"},
        "data-dir": str(tmp_path),
        "writer": {"allow-all-ts": True},
    })


@pytest.fixture
def store(settings):
    return OffsetStore(connect(settings.redis), settings.etl_group)


@dataclasses.dataclass
class KafkaHelper:
    bootstrap: str

    def topic(self, partitions: int = 3, prefix: str = "t") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        assert create_topics(self.bootstrap, [name], partitions) == [name]
        return name

    def produce(self, topic: str, messages: list[tuple[int, bytes | None]]) -> None:
        produce_sealed(self.bootstrap, topic, messages)


@pytest.fixture
def kafka(kafka_bootstrap):
    return KafkaHelper(kafka_bootstrap)


def read_lines(path: str | Path) -> list[bytes]:
    import bz2
    import gzip

    import zstandard

    p = str(path)
    raw = Path(p).read_bytes()
    if p.endswith(".gz"):
        raw = gzip.decompress(raw)
    elif p.endswith(".bz2"):
        raw = bz2.decompress(raw)
    elif p.endswith(".zst"):
        raw = zstandard.ZstdDecompressor().decompressobj().decompress(raw)
    return raw.splitlines()


def wait_for(fn, seconds: float = 10.0, every: float = 0.2):
    deadline = time.monotonic() + seconds
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every)


# --- Dagster: a resource on the test servers, and a throw-away instance ------------------------------------------

def _edn(value):
    if isinstance(value, dict):
        return {edn_format.Keyword(k): _edn(v) for k, v in value.items()}
    return value


def write_conf(path: Path, settings, **extra) -> Path:
    """A pseidon.edn equivalent to the conftest `settings` (plus EXTRA keys), for PseidonResource(config_path=...)."""
    host, port = settings.redis.hosts[0]
    mapping = {
        "etl-db-host": settings.etl_db_url,
        "etl-group": settings.etl_group,
        "kafka-brokers": ",".join(settings.kafka_brokers),
        "kafka-use-earliest": settings.kafka_use_earliest,
        "kafka-timeout-ms": int(settings.kafka_timeout_s * 1000),
        "redis-conf": {"host": f"{host}:{port}"},
        "data-dir": settings.data_dir,
        "writer": {"allow-all-ts": settings.writer.allow_all_ts},
        "sensor-min-lag": 1,  # the tests want a run for any lag at once (timed batches are tested on their own)
        **extra,
    }
    path.write_text(edn_format.dumps(_edn(mapping)))
    return path


@pytest.fixture
def pseidon(tmp_path, settings) -> PseidonResource:
    return PseidonResource(config_path=str(write_conf(tmp_path / "pseidon.edn", settings)))


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst
