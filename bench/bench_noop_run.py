"""How long a run of ingest_job with nothing to do takes through the Dagster daemon, from launch to RUN_SUCCESS.

    python bench/bench_noop_run.py [--runs 3] [--dequeue-interval SECONDS] [--json out.json]

The production path: a temporary DAGSTER_HOME holding the repository's dagster.yaml (so its queued run coordinator
with the run and tag limits, run retries and run monitoring; the default run launcher), `dagster-daemon run -w
workspace.yaml` started from the repository (it starts the code server of workspace.yaml, as in production), a
private tansu and Redis on free loopback ports and pseidon_logs in SQLite. One log whose stored offsets are at the
high watermarks: every run has nothing to read. Each run is submitted with `dagster job launch` (what the UI's
Launch button and the sensor do: the run is created QUEUED and the daemon launches it); the figures come from the
run's own events, so the CLI's start-up is not counted:

  queued     RUN_ENQUEUED -> RUN_STARTING   the daemon's run queue (dagster.yaml's coordinator polls every 5 s)
  launch     RUN_STARTING -> RUN_START      the launcher: the code server starts a run worker process, which
                                            imports Dagster and loads the definitions; in two parts:
    worker   RUN_STARTING -> "Started process for run" (the worker process is up: Python, Dagster, the instance)
    load     "Started process for run" -> RUN_START (the worker loads the code location: our definitions)
  ops        RUN_START -> RUN_SUCCESS       the three ops (plan finds nothing; nothing registered or committed)
  total      RUN_ENQUEUED -> RUN_SUCCESS    launch to success

--dequeue-interval adds `run_queue: {dequeue_interval_seconds: N}` to the copied dagster.yaml (a what-if; the
repository's file is not changed). Also printed: the seconds to import pseidon_dagster.definitions and build its
Definitions in a fresh process (what every run worker pays), median of 3.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
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

from pseidon_dagster.devstack.services import redis_binary, tansu_binary, wait_port  # noqa: E402

LOG = "noop"
GROUP = "bench"
PHASES = [("queued", "RUN_ENQUEUED", "RUN_STARTING"), ("launch", "RUN_STARTING", "RUN_START"),
          ("  worker", "RUN_STARTING", "WORKER_STARTED"), ("  load", "WORKER_STARTED", "RUN_START"),
          ("ops", "RUN_START", "RUN_SUCCESS"), ("total", "RUN_ENQUEUED", "RUN_SUCCESS")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Procs:
    """Processes started here, each in its own session so that stopping one stops its children too."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.procs: list[subprocess.Popen] = []

    def start(self, name: str, args: list[str], **kw) -> subprocess.Popen:
        with open(self.tmp / f"{name}.log", "wb") as out:
            proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, **kw)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)


def definitions_load_seconds(env: dict) -> float:
    code = ("import time; t = time.perf_counter(); import pseidon_dagster.definitions as d; d.build_defs(); "
            "print(time.perf_counter() - t)")
    times = []
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True,
                             check=True)
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dequeue-interval", type=int, help="run_queue dequeue_interval_seconds (default: Dagster's 5)")
    ap.add_argument("--json", help="write the results here too")
    ap.add_argument("--events", action="store_true", help="print each run's events with their times")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pseidon-bench-noop-"))
    procs = Procs(tmp)
    try:
        return run(args, tmp, procs)
    finally:
        procs.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def run(args, tmp: Path, procs: Procs) -> int:
    import sqlalchemy as sa

    from pseidon_dagster.core import config as config_mod
    from pseidon_dagster.core.kafka import KafkaSource
    from pseidon_dagster.core.logtable import LogTable, create_table
    from pseidon_dagster.core.offsets import OffsetStore, connect
    from pseidon_dagster.devstack.services import create_topics, produce_sealed

    kafka_port, redis_port = free_port(), free_port()
    url = f"tcp://127.0.0.1:{kafka_port}"
    procs.start("tansu", [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url])
    procs.start("redis", [redis_binary(), "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "no", "--dir", str(tmp)])
    if not (wait_port(kafka_port, 20) and wait_port(redis_port, 10)):
        raise SystemExit("tansu or redis did not start")
    bootstrap = f"127.0.0.1:{kafka_port}"
    create_topics(bootstrap, [LOG], 3)
    produce_sealed(bootstrap, LOG, [(i % 3, f"{1_795_000_000_000 + i}|m{i}".encode()) for i in range(30)])

    db = tmp / "logs.db"
    table = LogTable(sa.create_engine(f"sqlite:///{db}"))
    create_table(table.engine)
    table.upsert([dict(log=LOG, format="txt:sep=pipe;ts=0", output_format="gzip", base_partition="lake",
                       log_partition=f"raw/{LOG}", quarantine="quarantine", log_group=GROUP, enabled=1)])
    table.engine.dispose()
    conf = tmp / "pseidon.edn"
    conf.write_text(f'{{:etl-db-host "sqlite:///{db}" :etl-group "{GROUP}" :kafka-brokers "{bootstrap}" '
                    f':kafka-use-earliest true :redis-conf {{:host "127.0.0.1:{redis_port}"}} '
                    f':data-dir "{tmp / "data"}" :writer {{:allow-all-ts true}}}}')
    settings = config_mod.load(str(conf))
    marks = KafkaSource(settings).watermarks(LOG)
    OffsetStore(connect(settings.redis), GROUP).set(LOG, {p: hi for p, (_, hi) in marks.items()})  # no lag

    home = tmp / "dagster_home"
    home.mkdir()
    yaml = (REPO / "dagster.yaml").read_text()
    if args.dequeue_interval is not None:
        yaml += f"\nrun_queue:\n  dequeue_interval_seconds: {args.dequeue_interval}\n"
    (home / "dagster.yaml").write_text(yaml)
    env = {**os.environ, "DAGSTER_HOME": str(home), "PSEIDON_CONF": str(conf)}
    env.setdefault("PSEIDON_HOURS_START", "2026-01-01-00:00")
    bindir = Path(sys.executable).parent

    load_s = definitions_load_seconds(env)
    print(f"import pseidon_dagster.definitions + build Definitions, fresh process: {load_s:.2f}s", flush=True)

    os.environ.update(DAGSTER_HOME=str(home), PSEIDON_CONF=str(conf))
    import dagster as dg

    instance = dg.DagsterInstance.get()
    instance.add_dynamic_partitions("logs", [LOG])
    t0 = time.monotonic()
    procs.start("daemon", [str(bindir / "dagster-daemon"), "run", "-w", "workspace.yaml"], cwd=REPO, env=env)
    while not any(h.daemon_type == "QUEUED_RUN_COORDINATOR" for h in instance.get_daemon_heartbeats().values()):
        if time.monotonic() - t0 > 120:
            raise SystemExit(f"the daemon did not start: {(tmp / 'daemon.log').read_text()[-3000:]}")
        time.sleep(0.5)
    print(f"daemon up after {time.monotonic() - t0:.1f}s", flush=True)

    rounds = []
    for i in range(args.runs):
        run_id = str(uuid.uuid4())
        subprocess.run([str(bindir / "dagster"), "job", "launch", "-w", "workspace.yaml", "-j", "ingest_job",
                        "--run-id", run_id, "--tags", json.dumps({"log": LOG, "dagster/partition": LOG})],
                       cwd=REPO, env=env, check=True, capture_output=True)
        deadline = time.monotonic() + 120
        while True:
            r = instance.get_run_by_id(run_id)
            if r is not None and r.is_finished:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"run {run_id} did not finish: {r.status if r else 'not found'}")
            time.sleep(0.2)
        if r.status != dg.DagsterRunStatus.SUCCESS:
            raise SystemExit(f"run {run_id} ended {r.status}; see {tmp}")
        stamps = {}
        records = instance.get_records_for_run(run_id).records
        for rec in records:
            ev = rec.event_log_entry
            if ev.dagster_event is not None:
                stamps.setdefault(ev.dagster_event.event_type.name, ev.timestamp)
                if (ev.dagster_event.message or "").startswith("Started process for run"):
                    stamps.setdefault("WORKER_STARTED", ev.timestamp)
            if args.events:
                what = ev.dagster_event.event_type.name if ev.dagster_event else "log"
                print(f"    {ev.timestamp - records[0].event_log_entry.timestamp:6.2f}  {what:<22} "
                      f"{(ev.user_message or '')[:90]}")
        row = {name.strip(): stamps[b] - stamps[a] for name, a, b in PHASES}
        rounds.append(row)
        print(f"  run {i + 1}: " + "  ".join(f"{k} {v:.2f}s" for k, v in row.items()), flush=True)

    load = os.getloadavg()
    med = {name.strip(): statistics.median(r[name.strip()] for r in rounds) for name, _, _ in PHASES}
    print()
    print(f"no-op ingest_job through dagster-daemon, medians of {args.runs} (load average {load[0]:.2f} {load[1]:.2f} "
          f"{load[2]:.2f}; dequeue interval {args.dequeue_interval or 'default (5 s)'})")
    for name, a, b in PHASES:
        print(f"  {name:<8} {med[name.strip()]:6.2f}s   {a} -> {b}")
    print(f"  definitions load in a fresh process: {load_s:.2f}s")
    if args.json:
        Path(args.json).write_text(json.dumps({"load_average": load, "definitions_load_s": load_s, "median": med,
                                               "runs": rounds}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
