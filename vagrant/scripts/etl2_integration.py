"""etl2-integration-test.sh: the whole path once, through Dagster, on the ETL box (or any machine whose services
are given by the flags and the config).

  1. create a unique topic etl2-test-<time>-<random>            (create_topic_remote.sh)
  2. push N messages '<ts>,<i>,etl2-integration' to it             (push-kafka-messages.py)
  3. replace earlier etl2-test-* rows of pseidon_logs with this topic's row (txt:sep=comma;ts=0, gzip)
     and, with Hive, create its external table                     (pseidon-dagster hive create-table)
  4. run the ETL through Dagster: a tick of ingest_sensor and the ingest_job run it requests --
       --mode daemon (default; the ETL box): the running dagster-daemon ticks the sensor (every 30 s) and launches
                     the run through the code server; this script watches the runs in $DAGSTER_HOME
       --mode tick:  this process evaluates one sensor tick and executes the run it requests (no daemon needed)
  5. wait up to --timeout seconds until the files under <base-partition>/raw/<topic> hold exactly the N messages
     (every number 0..N-1 once), the offsets in Redis are committed to the end of every partition and, with Hive,
     the table lists a partition for every hour directory written.
Exit 0 only then; 1 with a message saying what was missing; 2 for a usage or setup error.

Every address defaults to the Vagrant cluster and can be set by a flag or an environment variable (see --help).
The config (--config / PSEIDON_CONF) is the one the Dagster processes use; it must name the same Kafka, Redis and
MySQL as the flags, or the ETL never sees what this script writes (a mismatch is reported at the start).
"""
from __future__ import annotations

import argparse
import bz2
import gzip
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cluster

HERE = Path(__file__).resolve().parent
MESSAGE = "{ts},{i},etl2-integration"
FORMAT = "txt:sep=comma;ts=0"
ETL_JOB = "ingest_job"
ETL_SENSOR = "ingest_sensor"


class Failed(Exception):
    pass


def say(text: str) -> None:
    print(text, flush=True)


def parse_args(argv):
    e = cluster.env
    ap = argparse.ArgumentParser(prog="etl2-integration-test.sh", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", "-n", type=int, default=int(os.environ.get("ETL2_MESSAGES") or 10000),
                    help="messages to push (env ETL2_MESSAGES, default 10000)")
    ap.add_argument("--timeout", type=float, default=float(os.environ.get("ETL2_TIMEOUT") or 300),
                    help="seconds to wait for the files after the push (env ETL2_TIMEOUT, default 300)")
    ap.add_argument("--mode", choices=["daemon", "tick"], default=os.environ.get("ETL2_MODE") or "daemon",
                    help="who ticks the sensor and launches the run (env ETL2_MODE, default daemon)")
    ap.add_argument("--topic", help="topic (and log) name (default: etl2-test-<time>-<random>)")
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--config", default=e("PSEIDON_CONF"),
                    help="the pseidon.edn of the Dagster processes (env PSEIDON_CONF, now %(default)s)")
    ap.add_argument("--dagster-home", default=e("DAGSTER_HOME"),
                    help="the Dagster instance (env DAGSTER_HOME, now %(default)s); --mode tick uses a "
                         "temporary one when it does not exist")
    ap.add_argument("--base-partition", default=e("PSEIDON_DATA"),
                    help="base_partition of the row: where the files land (env PSEIDON_DATA, now %(default)s)")
    cluster.add_brokers_arg(ap)
    ap.add_argument("--redis", default=e("REDIS_HOST"), help="host:port (env REDIS_HOST, now %(default)s)")
    ap.add_argument("--redis-password", default=e("REDIS_PASSWORD"),
                    help="(env REDIS_PASSWORD; empty for none; default: the Vagrant one)")
    ap.add_argument("--mysql", default=e("MYSQL_HOST"), help="host:port (env MYSQL_HOST, now %(default)s)")
    ap.add_argument("--mysql-user", default=e("MYSQL_USER"), help="(env MYSQL_USER, now %(default)s)")
    ap.add_argument("--mysql-password", default=e("MYSQL_PASSWORD"),
                    help="(env MYSQL_PASSWORD; default: the Vagrant one)")
    ap.add_argument("--mysql-db", default=e("MYSQL_DB"), help="(env MYSQL_DB, now %(default)s)")
    ap.add_argument("--hive-url", default=e("HIVE_URL"),
                    help="hive_url of the row (env HIVE_URL, now %(default)s); its table is created first")
    ap.add_argument("--no-hive", action="store_true", default=os.environ.get("ETL2_NO_HIVE", "") in ("1", "true"),
                    help="leave hive_url empty: no table, no registration (env ETL2_NO_HIVE=1)")
    args = ap.parse_args(argv)
    if args.messages < 1:
        ap.error("--messages must be at least 1")
    hosts = [args.brokers, args.redis, args.mysql]
    if not args.no_hive:
        hosts.append(args.hive_url.split("//", 1)[-1].split("/", 1)[0])
    cluster.guard(*hosts)
    return args


# --- steps -----------------------------------------------------------------------------------------------------

def run_step(cmd: list[str], env_extra: dict[str, str]) -> str:
    """Run CMD; its stdout, or Failed with its output."""
    res = subprocess.run(cmd, env={**os.environ, **env_extra}, capture_output=True, text=True)
    if res.returncode != 0:
        out = (res.stdout + res.stderr).strip()
        raise Failed(f"{' '.join(Path(c).name if i == 0 else c for i, c in enumerate(cmd))} exited "
                     f"{res.returncode}: {out[-1500:]}")
    return res.stdout.strip()


def check_config(args, settings) -> list[str]:
    """Differences between the config the ETL uses and the services this script writes to."""
    import sqlalchemy as sa

    problems = []
    conf_brokers = {b.strip() for b in settings.kafka_brokers}
    if conf_brokers != {b.strip() for b in args.brokers.split(",") if b.strip()}:
        problems.append(f":kafka-brokers is {','.join(sorted(conf_brokers))}, --brokers is {args.brokers}")
    host, port = settings.redis.hosts[0]
    if (host, int(port)) != cluster.split_hostport(args.redis, 6379):
        problems.append(f":redis-conf :host is {host}:{port}, --redis is {args.redis}")
    url = sa.engine.make_url(settings.etl_db_url)
    mysql_host, mysql_port = cluster.split_hostport(args.mysql, 3306)
    if (url.host, url.port or 3306, url.database) != (mysql_host, mysql_port, args.mysql_db):
        problems.append(f":etl-db-host is {url.host}:{url.port or 3306}/{url.database}, "
                        f"--mysql/--mysql-db is {args.mysql}/{args.mysql_db}")
    return problems


def insert_row(args, topic: str, group: str) -> int:
    import pymysql

    host, port = cluster.split_hostport(args.mysql, 3306)
    conn = pymysql.connect(host=host, port=port, user=args.mysql_user, password=args.mysql_password or None,
                           database=args.mysql_db, connect_timeout=10, autocommit=True)
    try:
        with conn.cursor() as cur:
            dropped = cur.execute("DELETE FROM pseidon_logs WHERE log LIKE %s AND log_group = %s",
                                  ("etl2-test-%", group))
            cur.execute(
                "INSERT INTO pseidon_logs (log, format, output_format, base_partition, log_partition, "
                "hive_table_name, hive_url, quarantine, log_group, enabled) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,1)",
                (topic, FORMAT, "gzip", args.base_partition, f"raw/{topic}", topic.replace("-", "_"),
                 None if args.no_hive else args.hive_url, str(Path(args.base_partition).parent / "quarantine"),
                 group))
    finally:
        conn.close()
    return dropped


def read_lines(path: Path) -> list[bytes]:
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    elif path.suffix == ".bz2":
        raw = bz2.decompress(raw)
    elif path.suffix == ".zst":
        import zstandard

        raw = zstandard.ZstdDecompressor().decompressobj().decompress(raw)
    return raw.splitlines()


def files_state(root: Path, n: int) -> tuple[bool, str, int]:
    """(exactly the N messages?, description, hour directories) of the published files under ROOT."""
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")) if root.is_dir() else []
    seen: dict[int, int] = {}
    bad = 0
    for f in files:
        for line in read_lines(f):
            fields = line.split(b",")
            if len(fields) != 3 or fields[2] != b"etl2-integration" or not fields[1].isdigit():
                bad += 1
                continue
            i = int(fields[1])
            seen[i] = seen.get(i, 0) + 1
    total = sum(seen.values()) + bad
    dupes = sum(c - 1 for c in seen.values())
    out_of_range = sum(1 for i in seen if i >= n)
    hours = len({f.parent for f in files})
    desc = (f"{len(files)} files in {hours} hour directories hold {total} lines: {len(seen)} distinct messages of "
            f"{n}" + (f", {dupes} duplicates" if dupes else "") + (f", {bad} unexpected lines" if bad else "")
            + (f", {out_of_range} numbers >= {n}" if out_of_range else ""))
    ok = total == n and len(seen) == n and not out_of_range and not bad
    return ok, desc, hours


def committed(args, group: str, topic: str, partitions: int) -> dict[int, int | None]:
    import redis

    host, port = cluster.split_hostport(args.redis, 6379)
    r = redis.Redis(host=host, port=port, password=args.redis_password or None, socket_timeout=10,
                    decode_responses=True)
    try:
        return {p: (int(v) if v is not None else None)
                for p, v in ((p, r.get(f"/{group}/offsets/{topic}/{p}")) for p in range(partitions))}
    finally:
        r.close()


def hive_partitions(args, topic: str) -> list[str]:
    out = run_step([sys.executable, "-m", "pseidon_dagster.cli", "hive", "partitions", topic,
                    "--config", args.config], {})
    return [line for line in out.splitlines() if "=" in line]


# --- Dagster ---------------------------------------------------------------------------------------------------

def tick_and_run(topic: str) -> None:
    """One evaluation of ingest_sensor and the ingest_job run it requests for TOPIC, executed in this process and
    recorded in the instance, as the daemon would have launched it."""
    import dagster as dg
    from dagster._core.storage.tags import RUN_KEY_TAG, SENSOR_NAME_TAG

    from pseidon_dagster.definitions import build_defs

    defs = build_defs()
    sensor = defs.resolve_sensor_def(ETL_SENSOR)
    job = defs.resolve_job_def(ETL_JOB)
    with dg.DagsterInstance.get() as instance:
        result = sensor(dg.build_sensor_context(instance=instance, definitions=defs, sensor_name=ETL_SENSOR,
                                                resources=dict(defs.resources or {})))
        for req in result.dynamic_partitions_requests or []:
            if isinstance(req, dg.AddDynamicPartitionsRequest):
                instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
            else:
                for key in req.partition_keys:
                    instance.delete_dynamic_partition(req.partitions_def_name, key)
        mine = [r for r in result.run_requests or [] if r.partition_key == topic]
        if not mine:
            why = result.skip_reason.skip_message if result.skip_reason else "no reason given"
            raise Failed(f"the {ETL_SENSOR} tick requested no run for {topic}: {why} (timed batches wait for a "
                         "file's worth of messages or :writer :rollover-timeout; vagrant/config/pseidon.edn sets "
                         ":sensor-min-lag 1 to run on any lag)")
        for req in mine:
            tags = {**req.tags, RUN_KEY_TAG: req.run_key, SENSOR_NAME_TAG: ETL_SENSOR,
                    "pseidon/launched_by": "etl2-integration-test"}
            say(f"   tick: run requested for {topic} (run_key {req.run_key}); executing it in this process")
            run = job.execute_in_process(instance=instance, partition_key=req.partition_key, tags=tags,
                                         raise_on_error=False,
                                         run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}})
            say(f"   run {run.run_id[:8]}: {'SUCCESS' if run.success else 'FAILURE'}")
            if not run.success:
                errs = [ev.message for ev in run.all_events if ev.event_type_value == "STEP_FAILURE"]
                raise Failed(f"run {run.run_id} of {ETL_JOB} failed: {' | '.join(errs)[-1500:]}")


class RunWatcher:
    """Reports the runs of ingest_job for one log as the daemon launches them (from $DAGSTER_HOME)."""

    def __init__(self, topic: str):
        import dagster as dg

        self.dg = dg
        self.topic = topic
        self.instance = dg.DagsterInstance.get()
        self.seen: dict[str, str] = {}

    def daemon_alive(self, wait_s: float = 0.0) -> str | None:
        """None when a dagster-daemon wrote a heartbeat into this instance in the last 2 minutes (waiting up to
        WAIT_S seconds for one: a daemon that has just started writes its first after a few seconds)."""
        deadline = time.monotonic() + wait_s
        while True:
            beats = self.instance.get_daemon_heartbeats()
            newest = max((b.timestamp for b in beats.values()), default=None)
            if newest is not None and time.time() - newest <= 120:
                return None
            if time.monotonic() >= deadline:
                return (f"no dagster-daemon heartbeat in the last 2 minutes in DAGSTER_HOME "
                        f"{os.environ.get('DAGSTER_HOME')}: is dagster-daemon running with it (on etl1: systemctl "
                        "status dagster-daemon)? Or use --mode tick")
            time.sleep(2.0)

    def poll(self) -> list:
        from dagster._core.storage.tags import PARTITION_NAME_TAG, SENSOR_NAME_TAG

        runs = self.instance.get_runs(filters=self.dg.RunsFilter(job_name=ETL_JOB,
                                                                 tags={PARTITION_NAME_TAG: self.topic}))
        for run in reversed(runs):
            status = run.status.value
            if self.seen.get(run.run_id) != status:
                self.seen[run.run_id] = status
                by = run.tags.get(SENSOR_NAME_TAG) or "not a sensor"
                say(f"   run {run.run_id[:8]} ({by}): {status}")
        return runs

    def summary(self) -> str:
        runs = self.poll()
        if not runs:
            return f"no {ETL_JOB} run for {self.topic} was launched"
        parts = []
        for run in runs:
            text = f"run {run.run_id[:8]} {run.status.value}"
            if run.status.value == "FAILURE":
                fails = self.instance.all_logs(run.run_id, of_type=self.dg.DagsterEventType.STEP_FAILURE)
                if fails:
                    text += f": {fails[-1].message[-600:]}"
            parts.append(text)
        return "; ".join(parts)

    def close(self):
        self.instance.dispose()


# --- main ------------------------------------------------------------------------------------------------------

def main(argv=None) -> int:
    args = parse_args(argv)
    t0 = time.monotonic()
    try:
        from pseidon_dagster.core import config as config_mod
    except ImportError:
        print("etl2-integration-test.sh needs pseidon-dagster installed in this Python (the ETL box's "
              "/opt/pseidon-dagster/venv, or the checkout's .venv: make install)", file=sys.stderr)
        return 2
    os.environ["PSEIDON_CONF"] = str(Path(args.config).resolve())
    try:
        settings = config_mod.load(args.config)
    except Exception as e:  # noqa: BLE001
        print(f"etl2-integration-test.sh: config {args.config}: {e}", file=sys.stderr)
        return 2
    cluster.guard(*settings.kafka_brokers, "{}:{}".format(*settings.redis.hosts[0]))
    group = settings.etl_group
    mismatch = check_config(args, settings)
    for m in mismatch:
        say(f"WARNING: {args.config}: {m} -- the ETL will not see what this test writes")
    home = Path(args.dagster_home)
    tmp_home = None
    if args.mode == "tick" and not home.is_dir():
        tmp_home = tempfile.TemporaryDirectory(prefix="etl2-dagster-")
        home = Path(tmp_home.name)
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    if args.mode == "daemon" and not home.is_dir():
        print(f"etl2-integration-test.sh: DAGSTER_HOME {home} does not exist (--mode daemon watches the runs the "
              "dagster-daemon records there; use --mode tick to run without a daemon)", file=sys.stderr)
        return 2
    os.environ["DAGSTER_HOME"] = str(home.resolve())
    topic = args.topic or f"etl2-test-{int(time.time())}-{random.randrange(16**6):06x}"
    root = Path(args.base_partition) / "raw" / topic
    kafka_env = {"KAFKA_BROKERS": args.brokers, "PYTHON": sys.executable}
    watcher = None
    say(f"etl2 integration test: topic {topic}, {args.messages} messages, mode {args.mode}, group {group}, "
        f"config {args.config}, DAGSTER_HOME {home}")
    try:
        say(f"== 1. create topic {topic} ({args.partitions} partitions)")
        say("   " + run_step([str(HERE / "create_topic_remote.sh"), topic, str(args.partitions)], kafka_env))
        say(f"== 2. push {args.messages} messages")
        say("   " + run_step([sys.executable, str(HERE / "push-kafka-messages.py"), str(args.messages), topic,
                              MESSAGE], kafka_env))
        t_pushed = time.monotonic()
        say("== 3. pseidon_logs row" + ("" if args.no_hive else " and Hive table"))
        dropped = insert_row(args, topic, group)
        say(f"   {args.mysql}/{args.mysql_db}: inserted {topic} ({FORMAT}, gzip, {root}, "
            f"hive_url {None if args.no_hive else args.hive_url}); removed {dropped} earlier etl2-test row(s)")
        if not args.no_hive:
            ddl = run_step([sys.executable, "-m", "pseidon_dagster.cli", "hive", "create-table", topic,
                            "--config", args.config], {})
            say("   " + " ".join(ddl.split())[:150] + " ...")
        say(f"== 4. the ETL through Dagster ({args.mode})")
        if args.mode == "tick":
            tick_and_run(topic)
        else:
            watcher = RunWatcher(topic)
            dead = watcher.daemon_alive(wait_s=min(60.0, args.timeout))
            if dead:
                raise Failed(dead)
            say(f"   waiting for the daemon's {ETL_SENSOR} tick (every 30 s) and the run it launches")
        say(f"== 5. wait up to {args.timeout:.0f}s for exactly {args.messages} messages under {root}")
        deadline = t_pushed + args.timeout
        last = ""
        while True:
            if watcher:
                watcher.poll()
            ok, desc, hours = files_state(root, args.messages)
            if desc != last:
                say(f"   {desc}")
                last = desc
            if ok:
                offsets = committed(args, group, topic, args.partitions)
                parts = hive_partitions(args, topic) if not args.no_hive else []
                if sum(o or 0 for o in offsets.values()) == args.messages and (args.no_hive or len(parts) >= hours):
                    say(f"   Redis offsets committed: {offsets}")
                    if not args.no_hive:
                        say(f"   Hive partitions registered: {len(parts)} ({', '.join(parts[:3])}"
                            f"{' ...' if len(parts) > 3 else ''})")
                    break
            if time.monotonic() > deadline:
                detail = [f"files: {desc}"]
                if ok:
                    detail.append(f"Redis offsets: {committed(args, group, topic, args.partitions)}")
                    if not args.no_hive:
                        detail.append(f"Hive partitions: {len(hive_partitions(args, topic))} of {hours}")
                if watcher:
                    detail.append(f"Dagster: {watcher.summary()}")
                    dead = watcher.daemon_alive()
                    if dead:
                        detail.append(dead)
                detail += [f"config: {m}" for m in mismatch]
                raise Failed(f"after {args.timeout:.0f}s the ETL has not landed exactly {args.messages} messages: "
                             + "; ".join(detail))
            if watcher:
                runs = watcher.poll()  # newest first
                if runs and runs[0].status.value == "FAILURE" and runs[0].tags.get("dagster/will_retry") == "false":
                    raise Failed(f"the ETL run failed and will not be retried: {watcher.summary()}")
            time.sleep(1.0)
    except Failed as e:
        say(f"FAIL: {e}")
        return 1
    finally:
        if watcher:
            watcher.close()
        if tmp_home:
            tmp_home.cleanup()
    say(f"PASS: {args.messages} messages from Kafka topic {topic} are in {root}, exactly once, via "
        f"{ETL_SENSOR} and {ETL_JOB} ({time.monotonic() - t0:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
