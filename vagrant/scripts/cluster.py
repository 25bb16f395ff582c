#!/usr/bin/env python3
"""What the helper scripts in vagrant/scripts share: the Vagrant cluster's addresses (as defaults, every one
overridable by an environment variable or a flag), a guard that keeps CI on loopback, and the Kafka calls
(confluent-kafka: admin, sealed produce, read by assign()).

    python3 cluster.py create-topic TOPIC [--partitions 3] [--replication 2] [--brokers H:P,...]

is what create_topic.sh and create_topic_remote.sh run.

Environment (else, on etl1, /etc/pseidon/scripts.env; else the boxes of vagrant/Vagrantfile):
    KAFKA_BROKERS      192.168.4.40:9092,192.168.4.41:9092,192.168.4.42:9092
    KAFKA_REPLICATION  2                    replication factor of topics the scripts create
    REDIS_HOST         192.168.4.10:6379     REDIS_PASSWORD   pseidon-vagrant
    MYSQL_HOST         192.168.4.10:3306     MYSQL_USER pseidon   MYSQL_PASSWORD pseidon-vagrant   MYSQL_DB pseidon
    PSEIDON_LOOPBACK_ONLY=1 (implied by CI=true): refuse any host that is not 127.0.0.1, ::1 or localhost.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# The Vagrant cluster (vagrant/Vagrantfile). Nothing but these defaults names its addresses.
VAGRANT = {
    "KAFKA_BROKERS": "192.168.4.40:9092,192.168.4.41:9092,192.168.4.42:9092",
    "KAFKA_REPLICATION": "2",
    "REDIS_HOST": "192.168.4.10:6379",
    "REDIS_PASSWORD": "pseidon-vagrant",
    "MYSQL_HOST": "192.168.4.10:3306",
    "MYSQL_USER": "pseidon",
    "MYSQL_PASSWORD": "pseidon-vagrant",
    "MYSQL_DB": "pseidon",
    "HIVE_URL": "//192.168.4.10:10000/pseidon_it",
    "PSEIDON_CONF": "/opt/pseidon-etl/conf/pseidon.edn",
    "DAGSTER_HOME": "/var/lib/dagster",
    "PSEIDON_DATA": "/var/lib/pseidon/lake",
}
LOOPBACK = {"127.0.0.1", "::1", "localhost"}

# Pythons that have confluent-kafka, in the order the scripts try them when the running one lacks it: the ETL box's
# venv, the Kafka boxes' tools venv, the checkout's .venv.
PYTHONS = ["/opt/pseidon-dagster/venv/bin/python", "/opt/pseidon-tools/bin/python",
           str(HERE.parent.parent / ".venv" / "bin" / "python")]


# On etl1, scripts/etl.sh writes the cluster's settings (passwords included) here; readable by root and pseidon.
BOX_ENV_FILE = os.environ.get("PSEIDON_SCRIPTS_ENV", "/etc/pseidon/scripts.env")
_box_env: dict[str, str] | None = None


def box_env() -> dict[str, str]:
    global _box_env
    if _box_env is None:
        _box_env = {}
        try:
            for line in Path(BOX_ENV_FILE).read_text().splitlines():
                key, sep, value = line.strip().partition("=")
                if sep and not key.startswith("#"):
                    _box_env[key.strip()] = value.strip()
        except OSError:
            pass
    return _box_env


def env(name: str) -> str:
    """The environment variable NAME, else the box's /etc/pseidon/scripts.env, else the Vagrant default."""
    for source in (os.environ, box_env()):
        value = source.get(name)
        if value not in (None, ""):
            return value
    return VAGRANT[name]


def loopback_only() -> bool:
    flag = os.environ.get("PSEIDON_LOOPBACK_ONLY", "").lower()
    if flag in ("1", "true", "yes"):
        return True
    if flag in ("0", "false", "no"):
        return False
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def split_hostport(hostport: str, default_port: int) -> tuple[str, int]:
    hostport = hostport.strip()
    if hostport.startswith("["):
        host, _, rest = hostport[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default_port
    host, sep, port = hostport.rpartition(":")
    if not sep or ":" in host:  # no port, or a bare IPv6 address
        return hostport, default_port
    return host, int(port)


def guard(*hostports: str) -> None:
    """Under CI (or PSEIDON_LOOPBACK_ONLY=1) exit 2 before contacting a host that is not loopback."""
    if not loopback_only():
        return
    for hp in hostports:
        for item in hp.split(","):
            host = split_hostport(item, 0)[0] if item.strip() else ""
            if host and host not in LOOPBACK:
                sys.exit(f"{Path(sys.argv[0]).name}: refusing to contact {item.strip()!r}: only loopback addresses "
                         "are allowed under CI / PSEIDON_LOOPBACK_ONLY=1 (override the Vagrant defaults with the "
                         "flags or KAFKA_BROKERS, REDIS_HOST, MYSQL_HOST, HIVE_URL)")


def ensure_confluent_kafka() -> None:
    """Re-run this script with a Python that has confluent-kafka when the current one lacks it."""
    try:
        import confluent_kafka  # noqa: F401
        return
    except ImportError:
        pass
    if not os.environ.get("PSEIDON_VAGRANT_REEXEC"):  # once only
        for py in PYTHONS:
            # a venv's python is a symlink to the system one: compare the environments, not the binaries
            if os.access(py, os.X_OK) and Path(py).parent.parent.resolve() != Path(sys.prefix).resolve():
                os.environ["PSEIDON_VAGRANT_REEXEC"] = "1"
                os.execv(py, [py, os.path.abspath(sys.argv[0]), *sys.argv[1:]])
    sys.exit(f"{Path(sys.argv[0]).name} needs confluent-kafka: pip install confluent-kafka, or run it with the "
             "project's .venv/bin/python (make install)")


def add_brokers_arg(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--brokers", default=env("KAFKA_BROKERS"),
                    help="bootstrap servers host:port,... (env KAFKA_BROKERS, else broker1..3 of the Vagrant "
                         "cluster; now: %(default)s)")


# --- Kafka ---------------------------------------------------------------------------------------------------------

def admin(brokers: str):
    from confluent_kafka.admin import AdminClient

    guard(brokers)
    return AdminClient({"bootstrap.servers": brokers})


def create_topic(brokers: str, topic: str, partitions: int = 3, replication: int | None = None,
                 timeout_s: float = 30.0, attempts: int = 5) -> bool:
    """Create TOPIC (True) or find it existing (False); waits until its partitions have leaders. A young cluster can
    refuse a creation (controller not elected yet, too few brokers registered): it is retried ATTEMPTS times."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import NewTopic

    replication = replication or int(env("KAFKA_REPLICATION"))
    client = admin(brokers)
    created = False
    for attempt in range(1, attempts + 1):
        fut = client.create_topics([NewTopic(topic, partitions, replication)], request_timeout=timeout_s)[topic]
        try:
            fut.result(timeout_s)
            created = True
            break
        except KafkaException as e:
            err = e.args[0]
            if err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                break
            if attempt == attempts or not err.retriable():
                raise RuntimeError(f"could not create topic {topic} on {brokers}: {err.str()}") from None
            print(f"create {topic}: {err.str()} (attempt {attempt}/{attempts}, retrying)", file=sys.stderr)
            time.sleep(2 * attempt)
    deadline = time.monotonic() + timeout_s
    while True:
        md = client.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if md is not None and md.error is None and md.partitions and all(
                p.leader >= 0 for p in md.partitions.values()):
            return created
        if time.monotonic() > deadline:
            raise RuntimeError(f"topic {topic} has no leader for every partition after {timeout_s:.0f}s")
        time.sleep(0.5)


def partitions_of(brokers: str, topic: str, timeout_s: float = 15.0) -> list[int]:
    md = admin(brokers).list_topics(topic, timeout=timeout_s).topics.get(topic)
    if md is None or md.error is not None or not md.partitions:
        raise RuntimeError(f"topic {topic} not found on {brokers}" + (f": {md.error.str()}" if md and md.error else ""))
    return sorted(md.partitions)


def produce(brokers: str, topic: str, values: list[bytes], timeout_s: float = 60.0) -> dict[int, int]:
    """Send VALUES round-robin over the topic's partitions; returns {partition: count}.

    Each partition's last message is sent alone, in its own record batch, after the others are delivered. On Kafka
    this changes nothing; on tansu (the Kafka-protocol broker the tests and CI use) the high watermark is the last
    batch's base offset + 1, so this makes it cover every message."""
    from confluent_kafka import Producer

    guard(brokers)
    parts = partitions_of(brokers, topic)
    assigned = [(parts[i % len(parts)], v) for i, v in enumerate(values)]
    last = {p: i for i, (p, _) in enumerate(assigned)}
    held = set(last.values())
    errors: list[str] = []

    def report(err, _msg):
        if err is not None:
            errors.append(err.str())

    bulk = Producer({"bootstrap.servers": brokers, "linger.ms": 20, "acks": "all", "enable.idempotence": False})
    for i, (p, v) in enumerate(assigned):
        if i in held:
            continue
        while True:
            try:
                bulk.produce(topic, value=v, partition=p, on_delivery=report)
                break
            except BufferError:
                bulk.poll(0.05)
        bulk.poll(0)
    if bulk.flush(timeout_s):
        raise RuntimeError(f"could not deliver every message to {topic} within {timeout_s:.0f}s")
    single = Producer({"bootstrap.servers": brokers, "linger.ms": 0, "batch.num.messages": 1, "acks": "all"})
    for i in sorted(held):
        p, v = assigned[i]
        single.produce(topic, value=v, partition=p, on_delivery=report)
        if single.flush(timeout_s):
            raise RuntimeError(f"could not deliver to {topic}[{p}] within {timeout_s:.0f}s")
    if errors:
        raise RuntimeError(f"{len(errors)} message(s) not delivered to {topic}: {errors[0]}")
    counts: dict[int, int] = {}
    for p, _ in assigned:
        counts[p] = counts.get(p, 0) + 1
    return counts


def read_all(brokers: str, topic: str, expected: int, timeout_s: float = 60.0, on_message=None) -> list[bytes]:
    """Read TOPIC from the start of every partition, by assign() (no consumer group is joined, nothing is
    committed), until EXPECTED messages were read and every partition is read to its high watermark, or TIMEOUT_S
    passed (the topic may still be filling up). Returns the values read."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    guard(brokers)
    parts = partitions_of(brokers, topic)
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": f"pseidon-vagrant-reader-{os.getpid()}",
                         "enable.auto.commit": False, "enable.partition.eof": True,
                         "auto.offset.reset": "earliest"})
    values: list[bytes] = []
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        position = {p: None for p in parts}  # next offset to read, None before the first message or EOF
        deadline = time.monotonic() + timeout_s
        last_check = 0.0
        while time.monotonic() < deadline:
            for msg in consumer.consume(1000, timeout=0.5):
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        position[msg.partition()] = msg.offset()
                        continue
                    raise RuntimeError(f"reading {topic}: {msg.error().str()}")
                position[msg.partition()] = msg.offset() + 1
                values.append(msg.value())
                if on_message:
                    on_message(msg)
            if len(values) >= expected and time.monotonic() - last_check > 0.5:
                last_check = time.monotonic()
                highs = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
                if all(highs[p] == 0 or (position[p] is not None and position[p] >= highs[p]) for p in parts):
                    break
    finally:
        consumer.close()
    return values


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="cluster.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("create-topic", help="create a topic (no error if it exists) and wait for its leaders")
    p.add_argument("topic")
    p.add_argument("--partitions", type=int, default=3)
    p.add_argument("--replication", type=int, default=None,
                   help="replication factor (env KAFKA_REPLICATION, default {})".format(VAGRANT["KAFKA_REPLICATION"]))
    add_brokers_arg(p)
    args = ap.parse_args(argv)
    ensure_confluent_kafka()
    try:
        created = create_topic(args.brokers, args.topic, args.partitions, args.replication)
    except RuntimeError as e:
        print(f"create-topic: {e}", file=sys.stderr)
        return 1
    print(f"topic {args.topic} {'created' if created else 'already exists'} on {args.brokers} "
          f"({len(partitions_of(args.brokers, args.topic))} partitions)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
