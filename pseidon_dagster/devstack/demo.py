"""`pseidon-dagster demo --config conf/pseidon.edn` (`make demo`): the whole path on one machine, through Dagster.

1. Starts the embedded stack on loopback if it is not running: tansu (Kafka protocol) and Redis (var/services/).
2. Creates the pseidon_logs table (SQLite, var/pseidon.db) with two sample logs, their topics (3 partitions each),
   and produces sample messages whose event times spread over the last few hours (plus one bad message and one
   null message, to show the quarantine and the filter).
3. With a persistent Dagster instance in var/dagster_home, evaluates ingest_sensor once, applies its partition
   requests and executes the runs it requested -- the same runs `dagster dev` would launch, recorded in the same
   instance, so the UI shows them.
4. Prints where the files are and what they hold, and how to open the UI on the same stack.

Running it again produces new messages and ingests them (and only them).
"""
from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # the checkout: pseidon_dagster/devstack/demo.py
HOUR_MS = 3_600_000

SAMPLE_LOGS = [
    # Pipe-separated text, the event time in ms in field 0; gzip files.
    dict(log="clicks", format="txt:sep=pipe;ts=0", output_format="gzip", base_partition="lake",
         log_partition="raw/clicks", quarantine="quarantine", hive_table_name="clicks", enabled=1),
    # Tab-separated text, the event time in seconds in field 1; keeps fields 0..2; bzip2 files.
    dict(log="views", format="txt:sep=tab;ts_sec=1;msg=0:3", output_format="bzip2", base_partition="lake",
         log_partition="raw/views", quarantine="quarantine", hive_table_name="views", enabled=1),
]
MESSAGES = {"clicks": 600, "views": 300}
HOURS = 5
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def say(text: str = "") -> None:
    print(text, flush=True)


def _port(hostport: str, what: str) -> int:
    host, _, port = hostport.rpartition(":")
    if host.strip("[]") not in LOOPBACK:
        raise SystemExit(f"demo: {what} is {hostport}; the demo only starts and uses servers on 127.0.0.1")
    return int(port)


def sample_messages(log: str, n: int, now_ms: int, seed: int) -> list[tuple[int, bytes | None]]:
    """(partition, value) pairs, round-robin over 3 partitions, event times spread over the last HOURS hours."""
    out: list[tuple[int, bytes | None]] = []
    for i in range(n):
        ts = now_ms - ((seed + i * 7_919_003) % (HOURS * HOUR_MS))  # spread over HOURS hours
        if log == "clicks":
            value = f"{ts}|user-{i % 37}|/page/{i % 11}|click".encode()
        else:
            value = f"view-{seed + i}\t{ts // 1000}\tuser-{i % 23}\t/article/{i % 7}\tdropped-by-msg".encode()
        out.append((i % 3, value))
    out.append((0, b"not-a-timestamp|oops" if log == "clicks" else b"view-x\tnot-a-time\tuser\t/a"))  # quarantined
    out.append((1, None))  # a null message: filtered
    return out


def forget(settings, spec_row: dict) -> list[str]:
    """A demo topic was (re)created on the embedded broker, which keeps nothing across restarts: drop what an
    earlier demo left for it (Redis offsets/plan/lock, its files), so offsets and file names start afresh."""
    import shutil

    from ..core.offsets import OffsetStore, connect

    log = spec_row["log"]
    store = OffsetStore(connect(settings.redis), settings.etl_group)
    keys = [k for k in store.r.scan_iter(match=f"/{settings.etl_group}/*/{log}*")
            if k.split("/")[-1] == log or k.split("/")[-2] == log]
    for k in keys:
        store.r.delete(k)
    dirs = []
    for root in (spec_row["base_partition"], spec_row["quarantine"]):
        d = Path(settings.resolve_path(root)) / spec_row["log_partition"].strip("/")
        if d.exists():
            shutil.rmtree(d)
            dirs.append(str(d))
    return keys + dirs


def count_lines(path: Path) -> tuple[int, list[str]]:
    """The records of a published file of any output format, and its first two lines (none for Parquet)."""
    from pyarrow.fs import LocalFileSystem

    from ..core.output_formats import count_records, format_of_file, text_chunks

    fs, name = LocalFileSystem(), str(path)
    head = b""
    if format_of_file(name).decompress is not None:
        for chunk in text_chunks(fs, name):
            head += chunk
            if head.count(b"\n") >= 2:
                break
    return count_records(fs, name), head.decode("utf-8", "replace").splitlines()[:2]


def instance_home(state: Path) -> Path:
    """var/dagster_home with the repository's dagster.yaml (rewritten every time, so it follows the repo)."""
    home = (state / "dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    source = REPO / "dagster.yaml"
    if source.is_file():
        shutil.copyfile(source, home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def show_files(settings, spec, written: set[str]) -> None:
    """Per hour directory of the log: the files this demo run wrote and all files, with their line counts."""
    root = (Path(settings.resolve_path(spec.base_partition)) / spec.log_partition).resolve()
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    say(f"  {spec.log}: {os.path.relpath(root)}/  ({spec.output_format}; file names: "
        "<log>-<hour>.p<kafka partition>.o<first offset>-<end offset>)")
    by_dir: dict[Path, list[tuple[Path, int]]] = {}
    for p in files:
        by_dir.setdefault(p.parent, []).append((p, count_lines(p)[0]))
    for d, entries in sorted(by_dir.items()):
        new = [(p, n) for p, n in entries if str(p) in written]
        say(f"    {d.relative_to(root)}  new: {len(new)} files, {sum(n for _, n in new):4} lines   "
            f"all: {len(entries)} files, {sum(n for _, n in entries):5} lines")
    newest = [p for p in files if str(p) in written][-1:]
    for p in newest:
        say(f"    first lines of {p.relative_to(root)}:")
        for line in count_lines(p)[1]:
            say(f"      {line[:110]}")
    qroot = (Path(settings.resolve_path(spec.quarantine)) / spec.log_partition).resolve()
    qfiles = sorted(p for p in qroot.rglob("*") if p.is_file() and not p.name.startswith("."))
    if qfiles:
        say(f"    quarantine: {os.path.relpath(qroot)}/  {len(qfiles)} files, "
            f"{sum(count_lines(p)[0] for p in qfiles)} records (JSON lines with the error and the raw message)")


def main(args) -> int:
    import logging

    import dagster as dg

    from ..core import config as config_mod
    from ..core.logtable import LogTable, create_table
    from ..core.offsets import now_ms
    from ..definitions import build_defs
    from ..defs.ingest.constants import INGEST_JOB, LAKE_FILES, RESOURCE_KEY, SENSOR
    from ..defs.ingest.resources import PseidonResource
    from . import services

    logging.getLogger("alembic").setLevel(logging.WARNING)  # Dagster's storage migrations: not news
    config_path = Path(args.config or os.environ.get("PSEIDON_CONF") or "conf/pseidon.edn").resolve()
    settings = config_mod.load(config_path)
    state = Path("var")
    t0 = time.monotonic()

    say("== 1. embedded stack (loopback only)")
    kafka_port = _port(settings.kafka_brokers[0], ":kafka-brokers")
    host, redis_port = settings.redis.hosts[0]
    _port(f"{host}:{redis_port}", ":redis-conf :host")
    for info in services.up(state / "services", kafka_port=kafka_port, redis_port=redis_port):
        say(f"  {info['name']:6} 127.0.0.1:{info['port']}  {'started' if info['started'] else 'already running'}")

    say("== 2. pseidon_logs, topics and sample messages")
    table = LogTable.for_settings(settings)
    create_table(table.engine)
    table.upsert([{**row, "log_group": settings.etl_group} for row in SAMPLE_LOGS])
    say(f"  pseidon_logs in {table.engine.url.render_as_string(hide_password=True)}: "
        f"{', '.join(r['log'] for r in SAMPLE_LOGS)} (log_group {settings.etl_group!r})")
    table.engine.dispose()
    bootstrap = settings.bootstrap_servers
    created = services.create_topics(bootstrap, [r["log"] for r in SAMPLE_LOGS])
    for row in SAMPLE_LOGS:
        if row["log"] in created:
            dropped = forget(settings, row)
            if dropped:
                say(f"  topic {row['log']} is new on this broker: dropped what an earlier demo left for it "
                    f"({len(dropped)} Redis keys and folders)")
    now = now_ms()
    seed = int(now // 1000) % 100_000
    for row in SAMPLE_LOGS:
        msgs = sample_messages(row["log"], MESSAGES[row["log"]], now, seed)
        services.produce_sealed(bootstrap, row["log"], msgs)
        say(f"  produced {len(msgs)} messages to {row['log']} (event times over the last {HOURS} hours, "
            "1 malformed, 1 null)")

    say("== 3. one sensor tick and its runs, through Dagster")
    home = instance_home(state)
    defs = build_defs()
    resource = PseidonResource(config_path=str(config_path))
    ok = True
    with dg.DagsterInstance.get() as instance:
        sensor = defs.resolve_sensor_def(SENSOR)
        tick = sensor(dg.build_sensor_context(instance=instance, resources={RESOURCE_KEY: resource},
                                              definitions=defs))
        for req in tick.dynamic_partitions_requests or []:
            if isinstance(req, dg.AddDynamicPartitionsRequest):
                instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
                say(f"  partitions added to {req.partitions_def_name!r}: {', '.join(req.partition_keys)}")
            else:
                for key in req.partition_keys:
                    instance.delete_dynamic_partition(req.partitions_def_name, key)
                say(f"  partitions removed from {req.partitions_def_name!r}: {', '.join(req.partition_keys)}")
        if not tick.run_requests:
            say(f"  the sensor requested no run: {tick.skip_reason.skip_message if tick.skip_reason else ''}")
            ok = False  # the demo has just produced messages: a tick without runs is a failure
        job = defs.resolve_job_def(INGEST_JOB)
        written: set[str] = set()
        for req in tick.run_requests:
            # Dagster's documented system tags of a sensor's run, so the UI links the run to its tick
            tags = {**req.tags, "dagster/run_key": req.run_key, "dagster/sensor_name": SENSOR,
                    "pseidon/launched_by": "demo"}
            result = job.execute_in_process(
                instance=instance, partition_key=req.partition_key, tags=tags, resources={RESOURCE_KEY: resource},
                run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}}, raise_on_error=False)
            md = {}
            for ev in result.all_node_events:
                if ev.event_type_value == "STEP_OUTPUT":
                    md = {k: v.value for k, v in ev.event_specific_data.metadata.items()}
            checks = [ev.event_specific_data for ev in result.all_events
                      if ev.event_type_value == "ASSET_CHECK_EVALUATION"]
            failed = sorted({c.check_name for c in checks if not c.passed})
            ok = ok and result.success and not failed
            say(f"  run {result.run_id[:8]} {req.partition_key}: {'SUCCESS' if result.success else 'FAILURE'}; "
                f"read {md.get('read', 0)} = written {md.get('written', 0)} + filtered {md.get('filtered', 0)} + "
                f"quarantined {md.get('quarantined', 0)}; {md.get('run_files', 0)} files; "
                f"{md.get('throughput_msgs_per_s', 0)} msg/s; lag after {md.get('lag_after', '?')}; checks "
                + (f"FAILED: {', '.join(failed)}" if failed else f"passed ({len(checks)} results)"))
            for ev in result.all_events:
                if ev.event_type_value == "ASSET_MATERIALIZATION":
                    mat = ev.event_specific_data.materialization
                    detail = mat.metadata.get("files_detail")
                    written.update(f["path"] for f in (detail.value if detail else []))
            if not result.success:
                for ev in result.all_events:
                    if ev.event_type_value == "STEP_FAILURE":
                        say(f"    {ev.message}")
        parts = instance.get_materialized_partitions(LAKE_FILES)
        by_log: dict[str, list[str]] = {}
        for key in sorted(parts):
            hour, log = key.split("|")  # multi-partition keys print as hour|log (dimensions sorted by name)
            by_log.setdefault(log, []).append(hour)
        for log, hours in sorted(by_log.items()):
            say(f"  lake_files partitions of {log} with data: {len(hours)} hours, {hours[0]} .. {hours[-1]}")

    say("== 4. the files")
    settings = config_mod.load(config_path)
    table = LogTable.for_settings(settings)
    for row in SAMPLE_LOGS:
        show_files(settings, table.get(row["log"]), written)
    table.engine.dispose()

    say("== 5. the UI on the same stack")
    rel_conf = os.path.relpath(config_path)
    say(f"  make ui        # = DAGSTER_HOME={home} PSEIDON_CONF={rel_conf} \\")
    say("                 #   .venv/bin/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000")
    say("  then open http://127.0.0.1:3000/asset-groups/pseidon (lineage: kafka_topic -> lake_files -> hive_table)")
    say("       and  http://127.0.0.1:3000/assets/lake_files?view=partitions (per log, the event hours with data)")
    say("  The sensor ingest_sensor runs every 30 s there; produce more messages and watch the runs appear.")
    say(f"demo {'finished' if ok else 'finished WITH ERRORS'} in {time.monotonic() - t0:.1f}s")
    return 0 if ok else 1


if __name__ == "__main__":  # pragma: no cover
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="conf/pseidon.edn")
    sys.exit(main(ap.parse_args()))
