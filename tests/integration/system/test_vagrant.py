"""vagrant/ scripts on loopback: every helper script works against the test session's tansu, and
etl2-integration-test.sh --mode tick passes against tansu, a password-protected redis-server started here, a
throw-away MariaDB database and user, and the Hive Thrift Server. What needs no server (syntax, shellcheck, the
Vagrantfile, --help, the loopback refusal): tests/unit/test_vagrant_static.py."""
from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pymysql
import pytest
import sqlalchemy as sa

from tests.conftest import MYSQL_ADMIN_URL, _free_port
from tests.unit.test_vagrant_static import SCRIPTS, VAGRANT, loopback_env, run


def test_helper_scripts_against_tansu(kafka_bootstrap):
    env = loopback_env(KAFKA_BROKERS=kafka_bootstrap, KAFKA_REPLICATION="1")
    res = run([SCRIPTS / "test-kafka.py", "--messages", "300"], env)
    assert res.returncode == 0 and "OK: sent and read back 300 messages" in res.stdout, res.stdout + res.stderr

    topic = f"vagrant-{uuid.uuid4().hex[:8]}"
    res = run([SCRIPTS / "create_topic.sh", topic], env)
    assert res.returncode == 0 and f"topic {topic} created" in res.stdout, res.stderr
    res = run([SCRIPTS / "create_topic_remote.sh", topic, "3"], env)
    assert res.returncode == 0 and "already exists" in res.stdout, res.stderr

    res = run([SCRIPTS / "push-kafka-messages.py", "40", topic, "{ts},{i},hello"], env)
    assert res.returncode == 0 and f"sent 40 messages to {topic}" in res.stdout, res.stderr
    res = run([SCRIPTS / "print-kafka-messages.py", topic, "40", "--timeout", "30"], env)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert sorted(int(line.split(",")[1]) for line in lines) == list(range(40))
    assert all(line.endswith(",hello") and line.split(",")[0].isdigit() for line in lines)

    res = run([SCRIPTS / "print-kafka-messages.py", topic, "41", "--timeout", "2", "--quiet"], env)
    assert res.returncode == 1 and "expected 41 messages" in res.stderr and "read 40" in res.stderr


# --- etl2-integration-test.sh ----------------------------------------------------------------------------------------

@pytest.fixture
def redis_with_password(tmp_path):
    binary = shutil.which("redis-server") or str(Path(sys.executable).parent / "redis-server")
    port, password = _free_port(), f"pw-{uuid.uuid4().hex[:12]}"
    proc = subprocess.Popen([binary, "--bind", "127.0.0.1", "--port", str(port), "--protected-mode", "yes",
                             "--requirepass", password, "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("redis-server did not start") from None
            time.sleep(0.1)
    yield f"127.0.0.1:{port}", password
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def vagrant_db():
    """A database loaded from vagrant/config/db.sql and a user limited to 127.0.0.1 with a password."""
    name = f"pseidon_vt_{uuid.uuid4().hex[:8]}"
    user, password = name, f"pw-{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(MYSQL_ADMIN_URL)
    try:
        with admin.begin() as c:
            c.execute(sa.text(f"CREATE DATABASE {name}"))
            c.execute(sa.text(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{password}'"))
            c.execute(sa.text(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {name}.* TO '{user}'@'127.0.0.1'"))
        # the whole file in one go, as `mysql pseidon < db.sql` does on services1
        url = sa.engine.make_url(MYSQL_ADMIN_URL)
        conn = pymysql.connect(host=url.host, port=url.port or 3306, user=url.username, password=url.password or "",
                               database=name, client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS, autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute((VAGRANT / "config" / "db.sql").read_text())
                while cur.nextset():
                    pass
                cur.execute("DELETE FROM pseidon_logs")  # the sample row names a Vagrant box
        finally:
            conn.close()
        yield name, user, password
    finally:
        with admin.begin() as c:
            c.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
            c.execute(sa.text(f"DROP USER IF EXISTS '{user}'@'127.0.0.1'"))
        admin.dispose()


def _integration_env(tmp_path, kafka_bootstrap, redis_with_password, vagrant_db, hive_url=None) -> dict[str, str]:
    (redis_host, redis_password), (db, user, password) = redis_with_password, vagrant_db
    conf = tmp_path / "pseidon.edn"
    conf.write_text(
        f'{{:etl-db-host "//127.0.0.1:3306/{db}?autoReconnect=true" :etl-db-user "{user}" :etl-db-pwd "{password}"\n'
        f' :etl-group "etl" :kafka-brokers "{kafka_bootstrap}" :kafka-use-earliest true :sensor-min-lag 1\n'
        f' :redis-conf {{:host "{redis_host}" :password "{redis_password}"}} :data-dir "{tmp_path / "data"}"}}\n')
    return loopback_env(
        KAFKA_BROKERS=kafka_bootstrap, KAFKA_REPLICATION="1", REDIS_HOST=redis_host, REDIS_PASSWORD=redis_password,
        MYSQL_HOST="127.0.0.1:3306", MYSQL_USER=user, MYSQL_PASSWORD=password, MYSQL_DB=db,
        PSEIDON_CONF=str(conf), PSEIDON_DATA=str(tmp_path / "data" / "lake"),
        DAGSTER_HOME=str(tmp_path / "no-dagster-home"),
        HIVE_URL=hive_url or "//127.0.0.1:1/none", ETL2_NO_HIVE="0" if hive_url else "1")


@pytest.mark.hive
def test_etl2_integration_tick_mode(tmp_path, kafka_bootstrap, redis_with_password, vagrant_db, hive_port,
                                    hive_catalog):
    hive_db = f"pt_{uuid.uuid4().hex[:10]}"
    env = _integration_env(tmp_path, kafka_bootstrap, redis_with_password, vagrant_db,
                           hive_url=f"//127.0.0.1:{hive_port}/{hive_db}")
    try:
        res = run([SCRIPTS / "etl2-integration-test.sh", "--mode", "tick", "--messages", "1500", "--timeout", "90"],
                  env, timeout=240)
    finally:
        hive_catalog.execute(f"DROP DATABASE IF EXISTS `{hive_db}` CASCADE")
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert "PASS: 1500 messages" in out and "1500 distinct messages of 1500" in out
    assert "Hive partitions registered: " in out
    files = [p for p in (tmp_path / "data" / "lake" / "raw").rglob("*.gz")]
    assert files


def test_etl2_integration_fails_clearly_when_nothing_lands(tmp_path, kafka_bootstrap, redis_with_password,
                                                           vagrant_db):
    """--mode daemon with an instance no daemon serves: non-zero, and the message says why."""
    env = _integration_env(tmp_path, kafka_bootstrap, redis_with_password, vagrant_db)
    home = tmp_path / "dagster_home"
    home.mkdir()
    env["DAGSTER_HOME"] = str(home)
    res = run([SCRIPTS / "etl2-integration-test.sh", "--mode", "daemon", "--messages", "10", "--timeout", "5"],
              env, timeout=120)
    out = res.stdout + res.stderr
    assert res.returncode == 1, out
    assert "FAIL: no dagster-daemon heartbeat" in out
