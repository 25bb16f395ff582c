"""Ingest throughput against baselines measured in the same run, on the same broker and data.

    python bench/bench_ingest.py [--messages 1000000] [--partitions 3] [--repeat 3]

Baselines:
  bare-read   confluent-kafka consume() by assignment, touching each message's value (the floor of any consumer)
  kcat|pigz   kcat -C ... | pigz -1 > file   (when pigz is installed; when kcat is missing or cannot talk to the
              broker -- Debian's kcat bundles librdkafka 2.0.2, which fails on tansu -- a confluent-kafka dump
              stands in for it: "pyread|pigz")
Measured:
  ingest      pseidon-dagster's full run: plan, read, parse (txt), route by hour, gzip, publish, commit
Figures are messages/second and ratios to bare-read (ratios, not absolute times: machines are shared).
"""
from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from confluent_kafka import Consumer, KafkaError, TopicPartition  # noqa: E402

from pseidon_dagster.core import config as config_mod  # noqa: E402
from pseidon_dagster.core.ingest import ingest  # noqa: E402
from pseidon_dagster.core.logtable import LogSpec  # noqa: E402
from pseidon_dagster.core.offsets import OffsetStore, connect  # noqa: E402
from pseidon_dagster.core.services import (create_topics, port_open, produce_sealed, redis_binary,  # noqa: E402
                                           tansu_binary, wait_port)

BASE_TS = 1_795_000_000_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args: list[str], port: int, log: Path) -> subprocess.Popen:
    proc = subprocess.Popen(args, stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    if not wait_port(port, 20):
        proc.kill()
        raise SystemExit(f"{args[0]} did not start: {log.read_text()[-1000:]}")
    return proc


def messages(n: int, partitions: int) -> list[tuple[int, bytes]]:
    pad = "x" * 60
    return [(i % partitions, f"{BASE_TS + (i * 7919) % (6 * 3_600_000)}|user-{i % 5000}|/page/{i % 97}|{pad}".encode())
            for i in range(n)]


def bare_read(bootstrap: str, topic: str, partitions: int, n: int) -> float:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench", "enable.auto.commit": False,
                  "enable.partition.eof": True, "fetch.max.bytes": 52_428_800,
                  "max.partition.fetch.bytes": 10_485_760, "queued.min.messages": 200_000})
    t0 = time.perf_counter()
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    seen, total, eof = 0, 0, set()
    while len(eof) < partitions:
        for m in c.consume(10_000, 1.0):
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    eof.add(m.partition())
                continue
            total += len(m.value())
            seen += 1
    dt = time.perf_counter() - t0
    c.close()
    assert seen == n, (seen, n)
    return dt


def kcat_works(kcat: str, bootstrap: str, topic: str) -> bool:
    """Debian's kcat bundles librdkafka 2.0.2, which cannot parse tansu's ApiVersion v3 answer."""
    r = subprocess.run([kcat, "-L", "-b", bootstrap, "-t", topic, "-m", "5"], capture_output=True, text=True)
    return r.returncode == 0 and "ERROR" not in r.stderr


def dump(bootstrap: str, topic: str, partitions: int) -> None:
    """kcat stand-in: confluent-kafka read, values + newline to stdout (for `| pigz`)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench", "enable.auto.commit": False,
                  "enable.partition.eof": True, "fetch.max.bytes": 52_428_800,
                  "max.partition.fetch.bytes": 10_485_760, "queued.min.messages": 200_000})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out, eof = sys.stdout.buffer, set()
    while len(eof) < partitions:
        chunk = []
        for m in c.consume(10_000, 1.0):
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    eof.add(m.partition())
                continue
            chunk.append(m.value())
        if chunk:
            out.write(b"\n".join(chunk) + b"\n")
    out.flush()
    c.close()


def read_pigz(bootstrap: str, topic: str, partitions: int, out: Path) -> tuple[str, float] | None:
    pigz = shutil.which("pigz")
    if not pigz:
        return None
    kcat = shutil.which("kcat") or shutil.which("kafkacat")
    if kcat and kcat_works(kcat, bootstrap, topic):
        name, src = "kcat|pigz", f"{kcat} -C -b {bootstrap} -t {topic} -o beginning -e -q"
    else:
        name = "pyread|pigz"
        src = f"{sys.executable} {Path(__file__).resolve()} --dump {topic} --bootstrap {bootstrap} " \
              f"--partitions {partitions}"
    t0 = time.perf_counter()
    subprocess.run(f"{src} | {pigz} -1 > {out}", shell=True, check=True)
    return name, time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dump", help=argparse.SUPPRESS)
    ap.add_argument("--bootstrap", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.dump:
        dump(args.bootstrap, args.dump, args.partitions)
        return 0
    work = Path(tempfile.mkdtemp(prefix="pseidon-bench-"))
    procs = []
    try:
        kport = free_port()
        url = f"tcp://127.0.0.1:{kport}"
        procs.append(start([tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url],
                           kport, work / "tansu.log"))
        bootstrap = f"127.0.0.1:{kport}"
        rport = 6379
        if not port_open(rport):
            rport = free_port()
            procs.append(start([redis_binary(), "--port", str(rport), "--bind", "127.0.0.1", "--save", ""], rport,
                               work / "redis.log"))
        topic = f"bench-{uuid.uuid4().hex[:8]}"
        create_topics(bootstrap, [topic], args.partitions)
        t0 = time.perf_counter()
        produce_sealed(bootstrap, topic, messages(args.messages, args.partitions))
        n = args.messages
        print(f"produced {n:,} messages ({args.partitions} partitions) in {time.perf_counter() - t0:.1f}s")

        settings = config_mod.from_mapping({
            "kafka-brokers": bootstrap, "kafka-use-earliest": True, "etl-group": f"bench{uuid.uuid4().hex[:6]}",
            "redis-conf": {"host": f"127.0.0.1:{rport}"}, "data-dir": str(work / "data"),
            "writer": {"allow-all-ts": True},
        })
        store = OffsetStore(connect(settings.redis), settings.etl_group)
        spec = LogSpec(log=topic, format="txt:sep=pipe;ts=0", output_format="gzip", base_partition="lake",
                       log_partition=topic, hive_table_name=None, hive_url=None, hive_user=None)
        bare, ing, kc = [], [], []
        for i in range(args.repeat):
            bare.append(bare_read(bootstrap, topic, args.partitions, n))
            store.set(topic, {p: 0 for p in range(args.partitions)})
            shutil.rmtree(work / "data", ignore_errors=True)
            r = ingest(settings, spec, store)
            assert r.written == n and r.committed, r.to_dict()
            ing.append(r.seconds)
            k = read_pigz(bootstrap, topic, args.partitions, work / "kcat.gz")
            if k is not None:
                kc_name = k[0]
                kc.append(k[1])
        for key in list(store.r.scan_iter(match=f"/{settings.etl_group}/*")):
            store.r.delete(key)
        b, g = min(bare), min(ing)
        print(f"{'bare-read':10} {n / b:>12,.0f} msg/s   (best of {args.repeat}: {b:.2f}s)")
        if kc:
            k = min(kc)
            print(f"{kc_name:10} {n / k:>12,.0f} msg/s   (best of {args.repeat}: {k:.2f}s)  "
                  f"ratio to bare-read {b / k:.2f}")
        else:
            print(f"{'kcat|pigz':10} skipped (install pigz, and kcat: apt-get install kcat pigz)")
        print(f"{'ingest':10} {n / g:>12,.0f} msg/s   (best of {args.repeat}: {g:.2f}s)  "
              f"ratio to bare-read {b / g:.2f}  (target >= 0.75)")
        if kc:
            print(f"ingest / {kc_name} = {min(kc) / g:.2f}")
        gz = sum(f.stat().st_size for f in (work / "data").rglob("*.gz"))
        print(f"ingest output: {r.to_dict()['file_count']} files, {gz / 1e6:.1f} MB gzip")
        return 0
    finally:
        for p in procs:
            p.terminate()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
