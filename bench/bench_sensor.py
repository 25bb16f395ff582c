"""How long one evaluation of ingest_sensor takes as the number of logs grows.

    python bench/bench_sensor.py [--sizes 500,1000,2000] [--partitions 3] [--rounds 3] [--log-table URL]
                                 [--json out.json] [--profile 2000]

A private tansu and a private Redis on free loopback ports (stopped at the end), pseidon_logs in SQLite (or
--log-table, e.g. a database on the local MariaDB: mysql+pymysql://root@127.0.0.1:3306/bench_sensor, created and
dropped here), a throw-away Dagster instance (SQLite, in a temporary directory). max(sizes) topics of N partitions
are created, one message produced to each partition; for each size the table enables that many logs. The tick is
the sensor's evaluation called directly (as tick() in tests/integration/defs/test_sensor.py does), so it includes
reading pseidon_logs, the Kafka metadata and watermarks, Redis, the run-status queries and the decisions, but not
the daemon's handling of the result (launching runs). Two situations are timed per size, each `--rounds` times
(the table shows medians):

  lag    no offsets stored yet: every log has lag and gets a run request (a fresh cursor each round)
  quiet  every partition's offset stored at its high watermark: nothing to request (the steady state)
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("PSEIDON_HOURS_START", "2026-01-01-00:00")

from pseidon_dagster.devstack.services import redis_binary, tansu_binary, wait_port  # noqa: E402

GROUP = "bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stack:
    """tansu and redis-server on free loopback ports, for this run only."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.procs: list[subprocess.Popen] = []
        self.kafka_port, self.redis_port = free_port(), free_port()
        url = f"tcp://127.0.0.1:{self.kafka_port}"
        self._start([tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url],
                    self.kafka_port, "tansu")
        self._start([redis_binary(), "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "",
                     "--appendonly", "no", "--dir", str(tmp)], self.redis_port, "redis")
        self.bootstrap = f"127.0.0.1:{self.kafka_port}"

    def _start(self, args, port, name):
        with open(self.tmp / f"{name}.log", "wb") as out:
            proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.procs.append(proc)
        if not wait_port(port, 20):
            raise SystemExit(f"{name} did not start: see {self.tmp / (name + '.log')}")

    def stop(self):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


def create_and_fill(bootstrap: str, names: list[str], partitions: int) -> float:
    """Create the topics (in batches of 500) and produce one message per partition; returns the seconds taken."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    t0 = time.perf_counter()
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for i in range(0, len(names), 500):
        futures = admin.create_topics([NewTopic(n, partitions, 1) for n in names[i:i + 500]], request_timeout=120)
        for f in futures.values():
            f.result(180)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for n in names:
        for p in range(partitions):
            producer.produce(n, value=f"{1_795_000_000_000}|{n}|{p}".encode(), partition=p)
        producer.poll(0)
    if producer.flush(120):
        raise SystemExit("could not deliver the messages")
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="500,1000,2000")
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--log-table", help="SQLAlchemy URL of a database for pseidon_logs (default: SQLite in a "
                                         "temporary directory); a MySQL/MariaDB database is created and dropped")
    ap.add_argument("--json", help="write the results here too")
    ap.add_argument("--profile", type=int, help="print a cProfile summary of one lag tick of this size")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pseidon-bench-sensor-"))
    stack = Stack(tmp)
    try:
        return run(args, tmp, stack)
    finally:
        stack.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def run(args, tmp: Path, stack: Stack) -> int:
    import dagster as dg
    import redis
    import sqlalchemy as sa

    from pseidon_dagster.core.logtable import LogTable, create_table
    from pseidon_dagster.defs.ingest.constants import RESOURCE_KEY
    from pseidon_dagster.defs.ingest.partitions import logs as logs_partitions
    from pseidon_dagster.defs.ingest.resources import PseidonResource
    from pseidon_dagster.defs.ingest.sensors import ingest_sensor

    sizes = sorted(int(s) for s in args.sizes.split(","))
    names = [f"bench-{i:05d}" for i in range(max(sizes))]
    print(f"creating {len(names)} topics of {args.partitions} partitions on tansu ...", flush=True)
    setup_s = create_and_fill(stack.bootstrap, names, args.partitions)
    print(f"  {setup_s:.1f}s (topic creation and one message per partition)", flush=True)

    db_url, drop_db = args.log_table, None
    if not db_url:
        db_url = f"sqlite:///{tmp / 'logs.db'}"
    elif db_url.startswith("mysql"):
        base, name = db_url.rsplit("/", 1)
        admin = sa.create_engine(base + "/")
        with admin.begin() as c:
            c.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
            c.execute(sa.text(f"CREATE DATABASE {name}"))
        drop_db = (admin, name)
    table = LogTable(sa.create_engine(db_url))
    create_table(table.engine)
    t = sa.Table("pseidon_logs", sa.MetaData(), autoload_with=table.engine)
    with table.engine.begin() as c:
        c.execute(sa.insert(t), [dict(log=n, format="txt:sep=pipe;ts=0", output_format="gzip", base_partition="lake",
                                      log_partition=f"raw/{n}", quarantine="quarantine", log_group=GROUP, enabled=0)
                                 for n in names])
    conf = tmp / "pseidon.edn"
    conf.write_text(f'{{:etl-db-host "{db_url}" :etl-group "{GROUP}" :kafka-brokers "{stack.bootstrap}" '
                    f':kafka-use-earliest true :redis-conf {{:host "127.0.0.1:{stack.redis_port}"}} '
                    f':data-dir "{tmp / "data"}" :writer {{:allow-all-ts true}} '
                    # one message waiting is enough for a run (else timed batches would wait for bytes or time)
                    f':sensor-min-lag 1}}')
    resource = PseidonResource(config_path=str(conf))
    r = redis.Redis(port=stack.redis_port, decode_responses=True)

    tick_log = open(tmp / "ticks.log", "w")

    def tick(instance, cursor=None) -> tuple[float, dg.SensorResult]:
        # the tick's log lines (one per run requested) are written as usual, to a file instead of the terminal
        with contextlib.redirect_stderr(tick_log):
            ctx = dg.build_sensor_context(instance=instance, cursor=cursor, resources={RESOURCE_KEY: resource})
            t0 = time.perf_counter()
            result = ingest_sensor(ctx)
            return time.perf_counter() - t0, result

    results = []
    try:
        for n in sizes:
            with table.engine.begin() as c:
                c.execute(sa.update(t).values(enabled=0))
                c.execute(sa.update(t).where(t.c.log.in_(names[:n])).values(enabled=1))
            r.flushall()
            (tmp / f"dagster-{n}").mkdir()
            with dg.instance_for_test(temp_dir=str(tmp / f"dagster-{n}")) as instance:
                _, first = tick(instance)  # the logs become partitions, as the daemon would apply them
                assert len(first.run_requests) == n, f"{len(first.run_requests)} run requests for {n} logs"
                instance.add_dynamic_partitions(logs_partitions.name, names[:n])
                if args.profile == n:
                    profile(lambda: tick(instance))
                lag = []
                for _ in range(args.rounds):
                    s, res = tick(instance)
                    assert len(res.run_requests) == n
                    lag.append(s)
                # every offset at its high watermark (1: one message per partition): nothing to do
                pipe = r.pipeline(transaction=False)
                for name in names[:n]:
                    for p in range(args.partitions):
                        pipe.set(f"/{GROUP}/offsets/{name}/{p}", 1)
                pipe.execute()
                quiet = []
                cursor = None
                for _ in range(args.rounds):
                    s, res = tick(instance, cursor)
                    assert not res.run_requests, f"{len(res.run_requests)} requests on a quiet tick"
                    cursor = res.cursor
                    quiet.append(s)
            row = {"logs": n, "partitions": n * args.partitions, "lag_s": statistics.median(lag),
                   "quiet_s": statistics.median(quiet), "lag_rounds": lag, "quiet_rounds": quiet}
            results.append(row)
            print(f"  {n} logs: lag tick {row['lag_s']:.2f}s  quiet tick {row['quiet_s']:.2f}s  "
                  f"(rounds: {', '.join(f'{x:.2f}' for x in lag)} / {', '.join(f'{x:.2f}' for x in quiet)})",
                  flush=True)
    finally:
        tick_log.close()
        table.engine.dispose()
        if drop_db:
            admin, name = drop_db
            with admin.begin() as c:
                c.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
            admin.dispose()

    load = os.getloadavg()
    print()
    print(f"sensor tick, medians of {args.rounds} (load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
          f"{args.partitions} partitions per log; pseidon_logs in {db_url.split(':', 1)[0]})")
    print(f"{'logs':>6} {'partitions':>10} {'lag tick s':>11} {'quiet tick s':>13} {'ms/log (lag)':>13}")
    for row in results:
        print(f"{row['logs']:>6} {row['partitions']:>10} {row['lag_s']:>11.2f} {row['quiet_s']:>13.2f} "
              f"{row['lag_s'] * 1000 / row['logs']:>13.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"load_average": load, "setup_s": setup_s, "results": results},
                                              indent=2))
    return 0


def profile(fn) -> None:
    import cProfile
    import io
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(30)
    print(out.getvalue())


if __name__ == "__main__":
    sys.exit(main())
