"""The `pseidon-dagster` command: one small function per subcommand, calling core/ (no logic here). A failure is one
line naming the server and the pseidon.edn key, or what to run (core/diagnose.py); -v shows the traceback.

Long because every subcommand's argparse declaration, with the help a user reads, is here; the work is in core/.
"""
from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from pathlib import Path

from .core import config as config_mod


def _settings(args):
    """pseidon.edn (--config, --strict), its Kafka clients quiet unless -v; kept on ARGS for the error message."""
    from .core.diagnose import quiet_kafka

    args.settings = quiet_kafka(config_mod.load(args.config, strict=args.strict), args.verbose)
    return args.settings


def _store(settings):
    from .core.offsets import OffsetStore, connect

    return OffsetStore(connect(settings.redis), settings.etl_group)


def _table(settings):
    from .core.logtable import LogTable

    return LogTable.for_settings(settings)  # rows confined to this config's roots, hosts and Vault prefixes


def cmd_ingest(args) -> int:
    from .core.ingest import ingest

    settings = _settings(args)
    spec = _table(settings).get(args.log, settings.etl_group)
    register = None
    if spec.hive_url and not args.no_hive:
        from .core.hive import registrar_for

        register = registrar_for(settings, spec)
    from .progress import Progress

    progress = Progress(f"ingest {args.log}")
    try:
        result = ingest(settings, spec, _store(settings), register=register, progress=progress)
    finally:
        progress.close()
    print(result.to_json())
    return 0


def _utc_hour(text: str) -> int:
    """YYYY-MM-DDTHH[:MM] (UTC) -> an hour number; minutes must be 0."""
    import datetime as dt

    try:
        t = dt.datetime.fromisoformat(text.strip().replace(" ", "T"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a UTC time like 2026-11-20T10:00") from None
    if t.tzinfo is not None:
        t = t.astimezone(dt.timezone.utc).replace(tzinfo=None)
    if t.minute or t.second or t.microsecond:
        raise argparse.ArgumentTypeError(f"{text!r} is not on the hour: backfills rebuild whole hours")
    return int(t.replace(tzinfo=dt.timezone.utc).timestamp()) // 3600


def cmd_backfill(args) -> int:
    from .core.rebuild import Rebuilder
    from .progress import Progress

    if args.to <= args.from_:
        raise SystemExit("pseidon-dagster backfill: --to must be after --from (it is exclusive)")
    settings = _settings(args)
    spec = _table(settings).get(args.log, settings.etl_group)
    progress = Progress(f"backfill {args.log}")
    try:
        result = Rebuilder(settings, spec, _store(settings), progress=progress).run(
            range(args.from_, args.to), dry_run=args.dry_run, allow_shrink=args.allow_shrink)
    finally:
        progress.close()
    for h in result.hours:
        d = h.to_dict()
        print(f"{d['hour']}  now {d['records_now']:>9} records in {d['files_now']:>3} files  rebuilt "
              f"{d['records_new']:>9} in {d['files_new']:>3}  quarantined {d['quarantined_new']:>5}  {d['action']}"
              + (f"  ({d['note']})" if d["note"] else ""), file=sys.stderr)
    print(result.to_json())
    return 2 if any(h.action == "refused" for h in result.hours) else 0


def cmd_compact(args) -> int:
    from .core.compact import compact
    from .progress import Progress

    settings = _settings(args)
    spec = _table(settings).get(args.log, settings.etl_group)
    progress = Progress(f"compact {args.log}")
    try:
        result = compact(settings, spec, _store(settings), older_than_hours=args.older_than, dry_run=args.dry_run,
                         min_files=args.min_files, progress=progress)
    finally:
        progress.close()
    for h in result.hours:
        d = h.to_dict()
        print(f"{d['hour']}  {d['files_now']:>4} files -> {d['files_new']:>4}  ({d['records_now']} records)  "
              f"{d['action']}", file=sys.stderr)
    print(result.to_json())
    return 0


def cmd_retention(args) -> int:
    from .core.retention import Retention, keeps_for

    settings = _settings(args)
    spec = _table(settings).get(args.log, settings.etl_group)
    keep, quarantine_keep = keeps_for(settings, spec)
    result = Retention(settings, spec, _store(settings), keep_hours=args.keep if args.keep is not None else keep,
                       quarantine_keep_hours=args.quarantine_keep if args.quarantine_keep is not None
                       else quarantine_keep).run_all(dry_run=args.dry_run)
    for h in result.hours:
        d = h.to_dict()
        print(f"{d['hour']}  {d['files_now']:>4} files, {d['records_now']} records  {d['action']}", file=sys.stderr)
    print(result.to_json())
    return 0


def cmd_quarantine(args) -> int:
    from .core import redrive

    settings = _settings(args)
    spec = _table(settings).get(args.log, settings.etl_group)
    first = args.from_ if args.from_ is not None else None
    if args.action == "show":
        print(json.dumps(redrive.show(settings, spec, first, args.to), sort_keys=True))
        return 0
    register = None
    if spec.hive_url:
        from .core.hive import registrar_for

        register = registrar_for(settings, spec)
    result = redrive.Redriver(settings, spec, _store(settings), register=register).run(first, args.to)
    print(result.to_json())
    return 0


def _hours(text: str) -> float:
    t = text.strip().lower()
    try:
        return float(t[:-1]) / 60 if t.endswith("m") else float(t[:-1]) * 24 if t.endswith("d") else float(
            t[:-1] if t.endswith("h") else t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 2h, 90m or 1d") from None


def cmd_services(args) -> int:
    from .devstack import services

    state = Path(args.state_dir)
    if args.action == "up":
        for info in services.up(state, args.kafka_port, args.redis_port, args.hive_port):
            how = "started" if info["started"] else "already running"
            print(f"{info['name']:6} 127.0.0.1:{info['port']}  {how}")
    elif args.action == "down":
        print("stopped: " + (", ".join(services.down(state)) or "nothing"))
    else:
        for name, port in (("kafka", args.kafka_port), ("redis", args.redis_port), ("hive", args.hive_port)):
            if port:
                print(f"{name:6} 127.0.0.1:{port}  {'up' if services.port_open(port) else 'down'}")
    return 0


def cmd_logs_init(args) -> int:
    from .core.logtable import create_table

    table = _table(_settings(args))
    create_table(table.engine, with_date_format=args.with_date_format)
    print(f"pseidon_logs ready in {table.engine.url.render_as_string(hide_password=True)}")
    return 0


def cmd_logs_list(args) -> int:
    settings = _settings(args)
    good, bad = _table(settings).logs(settings.etl_group)
    for spec in good:
        print(f"{spec.log:30} {spec.format:40} {spec.output_format:8} {spec.base_partition}/{spec.log_partition}")
    for err in bad:
        print(f"ERROR {err}", file=sys.stderr)
    return 1 if bad else 0


def cmd_logs_add(args) -> int:
    from .core.kafka import KafkaSource

    settings = _settings(args)
    row = {"log": args.log, "format": args.format, "output_format": args.output_format,
           "base_partition": args.base_partition, "log_partition": args.log_partition, "quarantine": args.quarantine,
           "hive_url": args.hive_url, "hive_table_name": args.hive_table_name, "hive_user": args.hive_user,
           "hive_password": args.hive_password, "log_group": args.group or settings.etl_group,
           "enabled": 0 if args.disabled else 1, "date_format": args.date_format}
    spec = _table(settings).add(row, replace=args.replace, partitions=KafkaSource(settings).partitions)
    print(f"added {spec.log} (log_group {row['log_group']}, {'disabled' if args.disabled else 'enabled'}): "
          f"{spec.format} -> {spec.output_format} under {settings.resolve_path(spec.base_partition)}/"
          f"{spec.log_partition}")
    return 0


def cmd_logs_show(args) -> int:
    from .core.kafka import KafkaSource

    settings = _settings(args)
    shown = _table(settings).describe(args.log, partitions=KafkaSource(settings).partitions)
    print(json.dumps(shown, indent=2, default=str))
    return 0 if shown["valid"] else 1


def cmd_logs_enable(args) -> int:
    _table(_settings(args)).set_enabled(args.log, True)
    print(f"enabled {args.log}")
    return 0


def cmd_logs_disable(args) -> int:
    _table(_settings(args)).set_enabled(args.log, False)
    print(f"disabled {args.log}")
    return 0


def cmd_config_check(args) -> int:
    print(f"{_settings(args).source}: ok")
    return 0


def cmd_config_keys(args) -> int:
    print(config_mod.markdown())
    print(config_mod.markdown_inert())
    return 0


def cmd_offsets(args) -> int:
    from .core.kafka import KafkaSource

    if args.action == "reset" and args.to is None:
        raise SystemExit("pseidon-dagster offsets reset: give --to earliest, latest or an offset")
    settings = _settings(args)
    store = _store(settings)
    if args.action == "show":
        marks = KafkaSource(settings).watermarks(args.log)
        stored = store.get(args.log, sorted(marks))
        plan = store.load_plan(args.log)
        out = {str(p): {"stored": stored[p], "low": lo, "high": hi,
                        "lag": (hi - stored[p]) if stored[p] is not None else None}
               for p, (lo, hi) in sorted(marks.items())}
        print(json.dumps({"log": args.log, "partitions": out, "plan": json.loads(plan.to_json()) if plan else None},
                         indent=2))
        return 0
    # reset: under the log's lease, so no run is in flight while the offsets move
    from .core.ingest import discard_plan
    from .core.lease import Lease, new_owner

    marks = KafkaSource(settings).watermarks(args.log)
    if args.partition is not None and args.partition not in marks:
        raise SystemExit(f"pseidon-dagster offsets reset: {args.log} has no partition {args.partition} "
                         f"(partitions: {', '.join(map(str, sorted(marks)))})")
    parts = [args.partition] if args.partition is not None else sorted(marks)
    new = {}
    for p in parts:
        lo, hi = marks[p]
        new[p] = lo if args.to == "earliest" else hi if args.to == "latest" else int(args.to)
        if not lo <= new[p] <= hi:
            raise SystemExit(f"pseidon-dagster offsets reset: offset {new[p]} is outside {args.log}[{p}]'s range "
                             f"[{lo}, {hi}] (low and high watermarks)")
    lease = Lease.acquire(store, args.log, new_owner("reset"), ttl_s=settings.lease_ttl_s,
                          wait_s=settings.lease_wait_s)
    try:
        dropped = discard_plan(store, args.log)
        current = store.get(args.log, parts)
        floor = {**store.load_reset_floor(args.log)}
        for p in parts:
            if current[p] is not None and new[p] < current[p]:
                floor[p] = max(floor.get(p, 0), current[p])
            elif p in floor and new[p] >= floor[p]:
                del floor[p]
        store.save_reset_floor(args.log, floor)
        store.set(args.log, new)
    finally:
        lease.release()
    if floor:
        print(f"offsets of {args.log} moved back: the lake may already hold files up to "
              f"{', '.join(f'[{p}] {o}' for p, o in sorted(floor.items()))}; the next ingest refuses to publish over "
              f"them. To rebuild hours instead, put the offsets back (--to latest) and run: pseidon-dagster backfill "
              f"{args.log} --from ... --to ...",
              file=sys.stderr)
    print(json.dumps({"log": args.log, "offsets": {str(p): o for p, o in new.items()}, **dropped}))
    return 0


def _offset_target(value: str) -> str:
    if value in ("earliest", "latest") or (value.isdigit()):
        return value
    raise argparse.ArgumentTypeError(f"{value!r} is not earliest, latest or a non-negative offset")


def cmd_hive(args) -> int:
    from .core import hive

    settings = _settings(args)
    spec = _table(settings).get(args.log, settings.etl_group)
    if args.action == "create-table":
        print(hive.create_table_for(settings, spec))
        return 0
    cat, db, table = hive.catalog_for(settings, spec)
    for part in cat.show_partitions(db, table):
        print(part)
    return 0


def cmd_metrics_server(args) -> int:
    """The /metrics page (JSON) and /metrics/prometheus, on loopback unless --host says otherwise."""
    from .core import metrics

    settings = _settings(args)  # fail now on a bad config; each page re-reads it
    port = args.port if args.port is not None else settings.ops.monitor_port
    server = metrics.make_server(lambda: _settings(args), args.host, port, cache_s=args.cache_seconds)
    host, bound = server.server_address[:2]
    print(f"serving http://{'[' + host + ']' if ':' in host else host}:{bound}/metrics and /metrics/prometheus",
          file=sys.stderr, flush=True)
    # SIGTERM stops it (exit 0), even when the parent left SIGTERM ignored: Dagster maps SIGTERM to SIGINT's handler,
    # and a process started in the background of a non-interactive shell ignores SIGINT, so its children inherited
    # an ignored SIGTERM and this server could only be killed.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _exit_on_signal(signum, frame) -> None:
    raise SystemExit(0)


def _dagster_runs(logs: list[str]) -> dict[str, dict]:
    """The latest ingest run of each log in Dagster's instance, when $DAGSTER_HOME is set (else nothing)."""
    import os

    if not os.environ.get("DAGSTER_HOME"):
        return {}
    import dagster as dg

    from .defs.ingest.constants import LOG_TAG

    out = {}
    with dg.DagsterInstance.get() as instance:
        for name in logs:
            recs = instance.get_run_records(filters=dg.RunsFilter(tags={LOG_TAG: name}), limit=1)
            if recs:
                run = recs[0].dagster_run
                out[name] = {"status": run.status.value, "run_id": run.run_id,
                             "end": recs[0].end_time, "job": run.job_name}
    return out


def cmd_status(args) -> int:
    """One row per log of this :etl-group: enabled, group, lag per partition, last run and its result, last error,
    files/bytes in the last hour, freshness."""
    from .core import metrics

    settings = _settings(args)
    page = metrics.Snapshotter(settings).snapshot()
    rows = metrics.status_rows(page, _dagster_runs(list(page["logs"])))
    if args.json:
        print(json.dumps(rows, indent=2, sort_keys=True))
    else:
        print(metrics.status_table(rows, page["measured-at-ms"]))
        print(f"etl-kafka-work-queue: {page['etl-kafka-work-queue']} logs waiting for a run; "
              f"runs queued: {page['etl-service-thread-queue']}, in progress: {page['runs-in-progress']}",
              file=sys.stderr)
    return 0


def cmd_demo(args) -> int:
    from .devstack.demo import main as demo_main

    return demo_main(args)


class _Command(argparse.ArgumentParser):
    """A subcommand's parser: -v works after the subcommand too."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                          help="debug logs (librdkafka's too), and the traceback of a failure")


def with_config(p):
    p.add_argument("--config", help="pseidon.edn (default: $PSEIDON_CONF, else /opt/pseidon-etl/conf/pseidon.edn)")
    p.add_argument("--strict", action="store_true", help="unknown keys in pseidon.edn are an error (as :strict true)")
    return p


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="pseidon-dagster", description=__doc__)
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="debug logs (librdkafka's too), and the traceback of a failure")
    sub = ap.add_subparsers(dest="command", required=True, parser_class=_Command)
    log_help = "the log (pseidon_logs.log, the Kafka topic)"

    p = with_config(sub.add_parser("ingest", help="run one micro-batch of one log and print a JSON summary"))
    p.add_argument("log", help=log_help)
    p.add_argument("--no-hive", action="store_true", help="skip Hive partition registration")
    p.set_defaults(fn=cmd_ingest)

    p = with_config(sub.add_parser(
        "backfill", help="rebuild a log's hours from Kafka (its committed offsets), swapped in atomically",
        description="Rebuild hours [--from, --to) of LOG: exactly the log's committed messages whose event time falls "
                    "in each hour, from Kafka, swapped in atomically for Hive and directory readers. Offsets in Redis "
                    "do not move. Exit 2 when an hour was refused because it would shrink."))
    p.add_argument("log", help=log_help)
    p.add_argument("--from", dest="from_", type=_utc_hour, required=True, help="first hour, UTC: 2026-11-20T10:00")
    p.add_argument("--to", type=_utc_hour, required=True, help="end hour, UTC, exclusive: 2026-11-20T14:00")
    p.add_argument("--dry-run", action="store_true", help="report per hour what a rebuild would write; change nothing")
    p.add_argument("--allow-shrink", action="store_true",
                   help="replace hours even when the rebuild holds fewer records than they do now")
    p.set_defaults(fn=cmd_backfill)

    p = with_config(sub.add_parser(
        "compact", help="rewrite a log's closed hours that hold many or small files into fewer files",
        description="Merge, per Kafka partition, the files of each closed hour of LOG that holds more than "
                    "--min-files files per partition (or small ones) into files of at most :writer :rollover-size, "
                    "swapped in atomically like a backfill. Offsets in Redis do not move."))
    p.add_argument("log", help="the log (pseidon_logs.log, the Kafka topic)")
    p.add_argument("--older-than", type=_hours, default=2.0, metavar="DURATION",
                   help="only hours that ended at least this long ago (2h, 90m, 1d; default 2h)")
    p.add_argument("--min-files", type=int, default=4, help="compact an hour with more files than this per partition")
    p.add_argument("--dry-run", action="store_true", help="report what would be merged; change nothing")
    p.set_defaults(fn=cmd_compact)

    p = with_config(sub.add_parser(
        "retention", help="drop a log's hours (from Hive, then the lake) and quarantine files older than it keeps",
        description="Drop LOG's event hours that ended more than --keep ago: their Hive partitions first, then "
                    "their files; and its quarantine files older than --quarantine-keep. Holds the log's lease."))
    p.add_argument("log", help="the log (pseidon_logs.log, the Kafka topic)")
    p.add_argument("--keep", type=_hours, metavar="DURATION",
                   help="keep this much data (720h, 30d); unset: the log's retention_hours, else :retention-hours, "
                        "else all")
    p.add_argument("--quarantine-keep", type=_hours, metavar="DURATION",
                   help="keep this much quarantine (30d); unset: quarantine_retention_hours, else "
                        ":quarantine-retention-hours, else all")
    p.add_argument("--dry-run", action="store_true", help="list what would be dropped; change nothing")
    p.set_defaults(fn=cmd_retention)

    p = with_config(sub.add_parser(
        "quarantine", help="summarise a log's quarantine, or re-drive the messages that now parse",
        description="show: quarantined records by reason, and how many were re-driven. redrive: re-parse the raw "
                    "bytes of the quarantine files read in [--from, --to) with the log's current format and land "
                    "those that now parse in their event hours, exactly once (a second re-drive adds nothing)."))
    p.add_argument("action", choices=["show", "redrive"], help="show a summary, or re-drive")
    p.add_argument("log", help="the log (pseidon_logs.log, the Kafka topic)")
    p.add_argument("--from", dest="from_", type=_utc_hour, metavar="TIME",
                   help="first hour the quarantined messages were read, UTC (default: all)")
    p.add_argument("--to", type=_utc_hour, metavar="TIME", help="end hour, exclusive, UTC (default: all)")
    p.set_defaults(fn=cmd_quarantine)

    p = sub.add_parser("services", help="start/stop tansu, Redis (and Hive) on loopback for the demo and tests")
    p.add_argument("action", choices=["up", "down", "status"], help="start what is not running, stop what "
                   "`up` started, or say what answers")
    p.add_argument("--state-dir", default="var/services", help="where pids and data live (default var/services)")
    p.add_argument("--kafka-port", type=int, default=19092, help="tansu's port (default 19092)")
    p.add_argument("--redis-port", type=int, default=6379, help="Redis's port (default 6379)")
    p.add_argument("--hive-port", type=int, default=None, help="also a Hive Thrift Server on this port")
    p.set_defaults(fn=cmd_services)

    logs = sub.add_parser("logs", help="manage the pseidon_logs table: init, list, add, show, enable, disable")
    actions = logs.add_subparsers(dest="action", required=True, parser_class=_Command)
    p = with_config(actions.add_parser("init", help="create the pseidon_logs table (the original DDL)"))
    p.add_argument("--with-date-format", action="store_true", help="add the optional date_format column")
    p.set_defaults(fn=cmd_logs_init)
    p = with_config(actions.add_parser("list", help="the enabled logs of :etl-group; rows that fail validation "
                                                    "on stderr (exit 1)"))
    p.set_defaults(fn=cmd_logs_list)
    p = with_config(actions.add_parser(
        "add", help="add a log, checked as every run checks it, and its topic in Kafka",
        description="Add a pseidon_logs row. It is checked as every run checks it (format descriptor, output format, "
                    "paths inside :data-dir/:allowed-roots, hive_url, hive_password references) and its topic must "
                    "exist in Kafka; nothing is written otherwise."))
    p.add_argument("log", help=log_help)
    p.add_argument("--format", required=True, help="input descriptor, e.g. txt:sep=pipe;ts=0 (docs/formats.md)")
    p.add_argument("--output-format", default="gzip", help="gzip (default), txt, bzip2, zstd or parquet")
    p.add_argument("--base-partition", required=True, help="root of the log's files (relative: under :data-dir)")
    p.add_argument("--log-partition", required=True, help="the log's directory under --base-partition")
    p.add_argument("--quarantine", help="root of the log's quarantine (default <data-dir>/quarantine)")
    p.add_argument("--hive-url", help="register Hive partitions: //host:10000/db or jdbc:hive2://...")
    p.add_argument("--hive-table-name", help="db.table or table (default: the log name, non-word characters as _)")
    p.add_argument("--hive-user", help="the HiveServer2 user")
    p.add_argument("--hive-password", help="its password, or a vault: reference under :vault :row-prefixes")
    p.add_argument("--group", help="log_group (default: :etl-group, so this deployment runs it)")
    p.add_argument("--date-format", choices=["datehour", "date"], help="date=/hour= (default) or date= directories "
                   "(needs the date_format column: logs init --with-date-format)")
    p.add_argument("--disabled", action="store_true", help="add it disabled (enable it later)")
    p.add_argument("--replace", action="store_true", help="overwrite an existing row of this log")
    p.set_defaults(fn=cmd_logs_add)
    for name, fn, what in (("show", cmd_logs_show, "a log's row (passwords hidden), whether runs can use it, its "
                                                   "topic's partitions"),
                           ("enable", cmd_logs_enable, "enable a log (its row is checked first)"),
                           ("disable", cmd_logs_disable, "disable a log: no more runs for it")):
        p = with_config(actions.add_parser(name, help=what))
        p.add_argument("log", help=log_help)
        p.set_defaults(fn=fn)

    p = with_config(sub.add_parser("offsets", help="show or reset a log's Redis offsets"))
    p.add_argument("action", choices=["show", "reset"], help="show the stored offsets, watermarks and lag, or reset")
    p.add_argument("log", help=log_help)
    p.add_argument("--partition", type=int, help="only this Kafka partition (reset; default: all)")
    p.add_argument("--to", type=_offset_target, help="earliest, latest or an offset (required by reset)")
    p.set_defaults(fn=cmd_offsets)

    p = with_config(sub.add_parser("hive", help="create a log's external Hive table, or list its partitions"))
    p.add_argument("action", choices=["create-table", "partitions"], help="create the table, or list its partitions")
    p.add_argument("log", help=log_help)
    p.set_defaults(fn=cmd_hive)

    p = with_config(sub.add_parser(
        "metrics-server", help="serve /metrics (JSON, the original's fields) and /metrics/prometheus",
        description="Serve GET /metrics (JSON: the original pseidon-etl fields plus per-log lag, last commit and last "
                    "run) and GET /metrics/prometheus (Prometheus text format). Counters come from runs, through the "
                    "Redis of :metrics {:redis ...}; lag is measured live per page."))
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: loopback only)")
    p.add_argument("--port", type=int, default=None, help="port (default :monitor-port, 8282)")
    p.add_argument("--cache-seconds", type=float, default=5.0,
                   help="serve the same page for this long, so scrapes cannot hammer Kafka (default 5)")
    p.set_defaults(fn=cmd_metrics_server)

    p = with_config(sub.add_parser("status", help="one row per log: lag, last run, last error, last hour, freshness"))
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.set_defaults(fn=cmd_status)

    p = with_config(sub.add_parser("demo", help="embedded stack + sample data + one sensor tick through Dagster"))
    p.set_defaults(fn=cmd_demo)

    config = sub.add_parser("config", help="check pseidon.edn, or print the table of its keys")
    actions = config.add_subparsers(dest="action", required=True, parser_class=_Command)
    p = with_config(actions.add_parser("check", help="read pseidon.edn as every command does; say ok or what is "
                                                     "wrong"))
    p.set_defaults(fn=cmd_config_check)
    p = actions.add_parser("keys", help="every key: default and meaning (the README's table, as Markdown)")
    p.set_defaults(fn=cmd_config_keys)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return args.fn(args)
    except Exception as e:  # noqa: BLE001 - one clear line for the user, the traceback with -v
        if args.verbose:
            raise
        from .core.diagnose import explain

        settings = getattr(args, "settings", None)
        print(f"pseidon-dagster {args.command}: {explain(e, settings, settings.source if settings else None)}",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
