"""Ingest throughput, CPU and memory against the fastest plain read of the same data, measured in the same run.

    python bench/bench_ingest.py [--messages 1000000] [--partitions 4] [--rounds 3] [--json out.json]
                                 [--backlog 10000000]    # also: peak RSS of a 10M-message backlog (slow)
                                 [--profile DIR]         # also: gzip and parquet once under cProfile

Data: ~200-byte CSV lines with 12 typed fields (epoch-ms timestamp, ids, strings, a URL, ints, a double, a boolean,
a decimal), spread over 6 event hours, in N partitions of a fresh tansu broker. Every path is a whole process
(python startup and imports included), run side by side round after round; the table shows medians.

  bare-read      the ceiling: confluent-kafka by assignment with fetch.max.bytes 64 MiB, max.partition.fetch.bytes
                 16 MiB, queued.min.messages 200000, consume(10000), stopping at the known message count, nothing
                 else per message
  gzip / parquet `pseidon-dagster ingest` of a log writing gzip text / typed Parquet (12 columns from a schema file):
                 plan, read, parse, route by hour, write, fsync, publish, commit
  ... x2         the same with :ingest-workers 2 (the run's Kafka partitions split over two processes)
  gzip nofsync   gzip with :writer {:fsync false}: what durability (fsync before the commit) costs

Figures: messages/s, MB/s of message payload, ratio to bare-read, CPU seconds (user+sys of the process and its
children), peak RSS of the largest process.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pseidon_dagster.devstack.services import create_topics, produce_sealed, redis_binary, tansu_binary, wait_port  # noqa

BASE_TS = 1_795_000_000_000
COLUMNS = [("ts", "bigint"), ("user_id", "bigint"), ("session", "string"), ("event", "string"), ("url", "string"),
           ("status", "int"), ("latency", "double"), ("bytes", "bigint"), ("country", "string"), ("agent", "string"),
           ("ok", "boolean"), ("price", "decimal(10,2)")]
EVENTS = ["view", "click", "scroll", "purchase", "signup", "logout"]
COUNTRIES = ["de", "fr", "us", "br", "jp", "in", "ng", "au"]
AGENTS = ["Mozilla/5.0 (X11; Linux x86_64) Firefox/131.0", "Mozilla/5.0 (Macintosh) Safari/605.1.15",
          "Mozilla/5.0 (Windows NT 10.0) Chrome/130.0.0.0", "curl/8.5.0 (x86_64-pc-linux-gnu)"]

BARE = """
import sys, time
from confluent_kafka import Consumer, TopicPartition
bootstrap, topic, parts, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-bare", "enable.auto.commit": False,
              "fetch.max.bytes": 64 << 20, "max.partition.fetch.bytes": 16 << 20, "queued.min.messages": 200000})
c.assign([TopicPartition(topic, p, 0) for p in range(parts)])
seen = 0
while seen < n:
    seen += len(c.consume(10000, 1.0))
c.close()
"""


def line(i: int) -> bytes:
    ts = BASE_TS + (i * 7919) % (6 * 3_600_000)
    return (f"{ts},{1_000_000 + i % 50_000},{(i * 2654435761) % (1 << 64):016x},{EVENTS[i % 6]},"
            f"https://shop.example.com/catalog/item/{i % 9973}?ref=campaign-{i % 37},{200 if i % 17 else 404},"
            f"{(i % 1000) / 7:.3f},{(i * 31) % 100_000},{COUNTRIES[i % 8]},{AGENTS[i % 4]},"
            f"{'true' if i % 3 else 'false'},{i % 10_000}.{i % 100:02d}").encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(cmd: list[str], env: dict | None = None) -> dict:
    """Wall seconds, CPU seconds (user+sys, children included) and peak RSS (MB) of one process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    out, err = proc.stdout.read(), proc.stderr.read()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} failed ({proc.returncode}): {err.decode()[-3000:]}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss_mb": usage.ru_maxrss / 1024,
            "stdout": out.decode()}


class Stack:
    """tansu and redis on free loopback ports, for this run only."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.procs = []
        self.kafka_port, self.redis_port = free_port(), free_port()
        url = f"tcp://127.0.0.1:{self.kafka_port}"
        self._start([tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url],
                    self.kafka_port, "tansu")
        self._start([redis_binary(), "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "",
                     "--appendonly", "no", "--dir", str(tmp)], self.redis_port, "redis")
        self.bootstrap = f"127.0.0.1:{self.kafka_port}"

    def _start(self, args, port, name):
        proc = subprocess.Popen(args, stdout=open(self.tmp / f"{name}.log", "wb"), stderr=subprocess.STDOUT)
        self.procs.append(proc)
        if not wait_port(port, 20):
            raise SystemExit(f"{name} did not start")

    def flush(self):
        import redis

        redis.Redis(port=self.redis_port).flushall()

    def stop(self):
        for p in self.procs:
            p.terminate()
            p.wait(10)


def produce(bootstrap: str, topic: str, n: int, partitions: int) -> int:
    total = 0
    step = 200_000
    for start in range(0, n, step):
        batch = [(i % partitions, line(i)) for i in range(start, min(n, start + step))]
        total += sum(len(v) for _, v in batch)
        produce_sealed(bootstrap, topic, batch) if start + step >= n else _produce(bootstrap, topic, batch)
    return total


def _produce(bootstrap, topic, batch):
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50, "batch.num.messages": 10000,
                  "queue.buffering.max.messages": 1_000_000})
    for part, v in batch:
        while True:
            try:
                p.produce(topic, v, partition=part)
                break
            except BufferError:
                p.poll(0.1)
    p.flush(60)


def write_conf(tmp: Path, stack: Stack, db: str, group: str, data: Path, workers: int, fsync: bool = True) -> Path:
    conf = tmp / f"{group}.edn"
    conf.write_text(
        f'{{:etl-db-host "sqlite:///{db}" :etl-group "{group}" :kafka-brokers "{stack.bootstrap}" '
        f':kafka-use-earliest true :redis-conf {{:host "127.0.0.1:{stack.redis_port}"}} :data-dir "{data}" '
        f':schema-dir "{tmp / "schemas"}" :ingest-workers {workers} '
        f':writer {{:allow-all-ts true :fsync {"true" if fsync else "false"}}}}}')
    return conf


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--paths", default="bare-read,gzip,parquet,gzip x2,parquet x2,gzip nofsync")
    ap.add_argument("--backlog", type=int, default=0, help="also measure peak RSS on a backlog of this many messages")
    ap.add_argument("--json", help="write the results here too")
    ap.add_argument("--profile", metavar="DIR", help="after the rounds, run gzip and parquet once more under cProfile, "
                    "save DIR/<path>.prof and print each one's top functions by own time")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pseidon-bench-"))
    stack = Stack(tmp)
    try:
        return run(args, tmp, stack)
    finally:
        stack.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def setup_logs(tmp: Path, topic: str) -> Path:
    import sqlalchemy as sa

    from pseidon_dagster.core.logtable import LogTable, create_table

    (tmp / "schemas").mkdir(exist_ok=True)
    db = tmp / "logs.db"
    table = LogTable(sa.create_engine(f"sqlite:///{db}"))
    create_table(table.engine)
    rows = []
    for out in ("gzip", "parquet"):
        name = f"{topic}-{out}"
        (tmp / "schemas" / f"{name}.json").write_text(json.dumps(
            {"columns": [{"name": n, "type": t} for n, t in COLUMNS]}))
        rows.append(dict(log=name, format="txt:sep=,;ts=0", output_format=out, base_partition="lake",
                         log_partition=f"raw/{out}", quarantine="quarantine", log_group="bench", enabled=1))
    with table.engine.begin() as c:
        for row in rows:
            c.execute(sa.insert(sa.Table("pseidon_logs", sa.MetaData(), autoload_with=table.engine)).values(**row))
    return db


def run(args, tmp: Path, stack: Stack) -> int:
    n, parts = args.messages, args.partitions
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    db = setup_logs(tmp, topic)
    # one topic, read under two log names (gzip and parquet): the same bytes for every path
    payload = 0
    for out in ("gzip", "parquet"):
        create_topics(stack.bootstrap, [f"{topic}-{out}"], parts)
    t0 = time.perf_counter()
    for out in ("gzip", "parquet"):
        payload = produce(stack.bootstrap, f"{topic}-{out}", n, parts)
    print(f"produced {n:,} messages ({payload / n:.0f} B on average, {payload / 1e6:.0f} MB) x2 in "
          f"{time.perf_counter() - t0:.1f}s; {parts} partitions; {args.rounds} rounds", file=sys.stderr)
    py = sys.executable
    paths = [p.strip() for p in args.paths.split(",")]
    results: dict[str, list[dict]] = {p: [] for p in paths}
    for r in range(args.rounds):
        for path in paths:
            if path == "bare-read":
                m = measure([py, "-c", BARE, stack.bootstrap, f"{topic}-gzip", str(parts), str(n)])
            else:
                out, _, workers = path.replace(" nofsync", "").partition(" x")
                stack.flush()  # every run starts with no offsets: it ingests all n messages
                data = tmp / f"data-{r}-{out}-{workers or 1}"
                conf = write_conf(tmp, stack, db, "bench", data, int(workers or 1), fsync="nofsync" not in path)
                m = measure([py, "-m", "pseidon_dagster.cli", "ingest", f"{topic}-{out}", "--config", str(conf)])
                summary = json.loads(m["stdout"].strip().splitlines()[-1])
                assert summary["written"] == n, summary
                shutil.rmtree(data, ignore_errors=True)
            results[path].append(m)
            print(f"  round {r + 1} {path:12} {n / m['wall']:>10,.0f} msg/s  cpu {m['cpu']:5.2f}s  "
                  f"rss {m['rss_mb']:4.0f} MB", file=sys.stderr)
    table = summarize(results, n, payload)
    if args.profile:
        profile(args, tmp, stack, db, topic)
    if args.backlog:
        table["backlog"] = backlog(args, tmp, stack, db, topic)
    print_table(table)
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=2))
    return 0


def profile(args, tmp: Path, stack: Stack, db: Path, topic: str) -> None:
    """One more gzip and parquet ingest each under cProfile (the whole process: imports, plan, read, commit)."""
    import pstats

    Path(args.profile).mkdir(parents=True, exist_ok=True)
    for out in ("gzip", "parquet"):
        stack.flush()
        data = tmp / f"data-profile-{out}"
        conf = write_conf(tmp, stack, db, "bench", data, 1)
        prof = Path(args.profile) / f"{out}.prof"
        m = measure([sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "pseidon_dagster.cli", "ingest",
                     f"{topic}-{out}", "--config", str(conf)])
        shutil.rmtree(data, ignore_errors=True)
        print(f"\n== {out} under cProfile: {m['wall']:.2f} s wall, {m['cpu']:.2f} s CPU; top functions by own time",
              file=sys.stderr)
        pstats.Stats(str(prof), stream=sys.stderr).sort_stats("tottime").print_stats(12)


def summarize(results: dict, n: int, payload: int) -> dict:
    rows = {}
    base = statistics.median(m["wall"] for m in results["bare-read"]) if "bare-read" in results else None
    for path, ms in results.items():
        wall = statistics.median(m["wall"] for m in ms)
        rows[path] = {"msg_per_s": round(n / wall), "mb_per_s": round(payload / wall / 1e6, 1),
                      "ratio": round(base / wall, 2) if base else None,
                      "cpu_s": round(statistics.median(m["cpu"] for m in ms), 2),
                      "peak_rss_mb": round(max(m["rss_mb"] for m in ms)),
                      "walls": [round(m["wall"], 3) for m in ms]}
    return {"messages": n, "payload_mb": round(payload / 1e6), "paths": rows}


def backlog(args, tmp, stack, db, topic) -> dict:
    big = f"{topic}-backlog"
    create_topics(stack.bootstrap, [big], args.partitions)
    produce(stack.bootstrap, big, args.backlog, args.partitions)
    out = {}
    for kind in ("gzip", "parquet"):
        import sqlalchemy as sa

        eng = sa.create_engine(f"sqlite:///{db}")
        t = sa.Table("pseidon_logs", sa.MetaData(), autoload_with=eng)
        with eng.begin() as c:
            c.execute(sa.delete(t).where(t.c.log == big))
            c.execute(sa.insert(t).values(log=big, format="txt:sep=,;ts=0", output_format=kind, base_partition="lake",
                                          log_partition=f"raw/backlog-{kind}", quarantine="quarantine",
                                          log_group="bench", enabled=1))
        shutil.copy(tmp / "schemas" / f"{topic}-parquet.json", tmp / "schemas" / f"{big}.json")
        group = f"backlog{kind}"
        stack.flush()
        conf = write_conf(tmp, stack, db, "bench", tmp / group, 1)
        m = measure([sys.executable, "-m", "pseidon_dagster.cli", "ingest", big, "--config", str(conf)])
        out[kind] = {"messages": args.backlog, "msg_per_s": round(args.backlog / m["wall"]),
                     "peak_rss_mb": round(m["rss_mb"])}
        shutil.rmtree(tmp / group, ignore_errors=True)
    return out


def print_table(table: dict) -> None:
    print(f"\n{table['messages']:,} messages, {table['payload_mb']} MB of payload; medians\n")
    print("| path | msg/s | MB/s | ÷ bare read | CPU s | peak RSS MB |")
    print("|---|---|---|---|---|---|")
    for path, r in table["paths"].items():
        print(f"| {path} | {r['msg_per_s']:,} | {r['mb_per_s']} | {r['ratio']} | {r['cpu_s']} | {r['peak_rss_mb']} |")
    for kind, r in table.get("backlog", {}).items():
        print(f"\nbacklog {r['messages']:,} messages, {kind}: {r['msg_per_s']:,} msg/s, peak RSS {r['peak_rss_mb']} MB")


if __name__ == "__main__":
    sys.exit(main())
