"""Backfills launched through Dagster exactly as the UI launches them, and run by the real daemon.

`dagster-webserver` and `dagster-daemon run` run as subprocesses on loopback, on the repository's workspace.yaml, with
a temporary DAGSTER_HOME holding the repository's dagster.yaml, and PSEIDON_CONF pointing at this test's pseidon.edn
(real MariaDB, Redis and tansu). The logs are ingested once by the core; then asset backfills of `lake_files` are
launched with what the UI's "Materialize" button sends: it asks `assetNodeAdditionalRequiredKeys` (nothing, since
rebuild_hours is subsettable: lake_files alone), then `launchPartitionBackfill` with `assetSelection`, the exploded
`partitionNames` of the ranges chosen in the partition dialog and the launchpad's `runConfigData` (the mutation and
the parameters are those of ui-core's LaunchAssetChoosePartitionsDialog in dagster-webserver 1.13). The daemon makes
runs of them (BackfillPolicy.single_run(): partition range tags), and the test waits until the backfills complete.

Dagster's backfill daemon iterates every 30 s (not configurable), and a backfill completes at the first iteration
after its runs ended. So the backfills are launched before the daemon starts: its first iteration submits the runs
at once, the next one sees them done. About 50 s in all (80 s when the machine is busy).
"""
from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import dagster as dg

from pseidon_dagster.core.ingest import ingest
from pseidon_dagster.core.partitioning import FileName, partition_dir
from pseidon_dagster.defs.ingest.checks import verify_continuity
from tests import REPO_ROOT as REPO
from tests.conftest import write_conf
from tests.integration.core.test_ingest import add_log
from tests.integration.defs.test_backfill import H0, hour_of, hourly, lines_of_hour, snapshot

BIN = Path(sys.executable).parent

# The UI's mutation (LAUNCH_PARTITION_BACKFILL_MUTATION, ui-core/src/instance/backfill/BackfillUtils.tsx).
LAUNCH_BACKFILL = """
mutation LaunchPartitionBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PartitionSetNotFoundError { message }
    ... on PartitionKeysNotFoundError { message }
    ... on InvalidStepError { invalidStepKey }
    ... on InvalidOutputError { stepKey invalidOutputName }
    ... on UnauthorizedError { message }
    ... on PipelineNotFoundError { message }
    ... on RunConflict { message }
    ... on ConflictingExecutionParamsError { message }
    ... on PresetNotFoundError { message }
    ... on InvalidSubsetError { message }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on PythonError { message stack }
  }
}"""

# What "Materialize" asks first (LaunchAssetLoaderQuery): the assets a selection must be materialized with.
REQUIRED_KEYS = """
query LaunchAssetLoaderQuery($assetKeys: [AssetKeyInput!]!) {
  assetNodeAdditionalRequiredKeys(assetKeys: $assetKeys) { path }
}"""

# What the backfill's page shows: its status, per asset the partitions targeted/in progress/materialized/failed, runs.
BACKFILL = """
query Backfill($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill {
      id status numPartitions error { message }
      assetBackfillData {
        assetBackfillStatuses {
          __typename
          ... on AssetPartitionsStatusCounts {
            assetKey { path } numPartitionsTargeted numPartitionsInProgress numPartitionsMaterialized
            numPartitionsFailed
          }
        }
      }
      runs { runId status tags { key value } }
    }
    ... on PythonError { message stack }
  }
}"""

READY = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"
DONE = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=body,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            out = json.loads(resp.read())
    except urllib.error.HTTPError as e:
        raise AssertionError(f"GraphQL answered {e.code}: {e.read()[:3000]!r}") from None
    assert "errors" not in out, out["errors"]
    return out["data"]


def _start(args: list[str], env: dict, log: Path, cwd: Path = REPO) -> subprocess.Popen:
    with open(log, "wb") as out:
        # a session of its own, so the code server and run workers it starts are stopped with it
        return subprocess.Popen(args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 5)):
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(wait)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of the group it started


class Stack:
    """dagster-webserver and dagster-daemon on the repository's workspace; stopped with their process groups."""

    def __init__(self, home: Path, conf: Path, logs: Path):
        self.env = {**os.environ, "DAGSTER_HOME": str(home), "PSEIDON_CONF": str(conf)}
        self.logs = logs
        self.port = free_port()
        self.procs: list[subprocess.Popen] = []

    def log_tail(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}"
                         for p in sorted(self.logs.glob("*.log")))

    def start(self, name: str, args: list[str], cwd: Path = REPO) -> None:
        """Start ARGS as NAME (its output in NAME.log); the webserver must listen on self.port."""
        self.procs.append(_start(args, self.env, self.logs / f"{name}.log", cwd))

    def start_webserver(self) -> None:
        self.start("webserver", [str(BIN / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1",
                                 "-p", str(self.port)])

    def assert_alive(self) -> None:
        for proc in self.procs:
            assert proc.poll() is None, f"{proc.args[0]} exited\n{self.log_tail()}"

    def wait_ready(self, seconds: float = 90) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.assert_alive()
            with contextlib.suppress(OSError, KeyError, TypeError, AssertionError):
                entries = graphql(self.port, READY)["workspaceOrError"]["locationEntries"]
                if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                    return
            time.sleep(0.5)
        raise AssertionError(f"the code location did not load in {seconds:.0f}s\n{self.log_tail()}")

    def start_daemon(self) -> None:
        self.start("daemon", [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"])

    def stop(self) -> None:
        for proc in reversed(self.procs):
            _stop(proc)


@contextlib.contextmanager
def dagster_stack(tmp_path: Path, conf: Path):
    """A DAGSTER_HOME with the repository's dagster.yaml (run queue limits, run retries, run monitoring)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    logs = tmp_path / "dagster_logs"
    logs.mkdir()
    stack = Stack(home, conf, logs)
    try:
        yield stack
    finally:
        stack.stop()


def key(log: str, hour: int) -> str:
    """The lake_files partition key of (log, hour number): dimensions sorted by name, `2026-11-20-08:00|clicks`."""
    return f"{dt.datetime.fromtimestamp(hour * 3600, dt.timezone.utc):%Y-%m-%d-%H:%M}|{log}"


def launch_like_the_ui(port: int, asset: str, partition_names: list[str], run_config: dict | None = None) -> str:
    required = graphql(port, REQUIRED_KEYS, {"assetKeys": [{"path": [asset]}]})["assetNodeAdditionalRequiredKeys"]
    assert required == []  # rebuild_hours is subsettable: no dialog adds hive_table to the selection
    params = {"tags": [], "assetSelection": [{"path": [asset]}], "partitionNames": partition_names,
              "fromFailure": False}
    if run_config is not None:
        params["runConfigData"] = json.dumps(run_config)  # the launchpad's YAML (JSON is YAML)
    out = graphql(port, LAUNCH_BACKFILL, {"backfillParams": params})["launchPartitionBackfill"]
    assert out["__typename"] == "LaunchBackfillSuccess", out
    return out["backfillId"]


def wait_backfills(stack: Stack, ids: list[str], seconds: float = 150) -> dict[str, dict]:
    deadline = time.monotonic() + seconds
    while True:
        got = {i: graphql(stack.port, BACKFILL, {"id": i})["partitionBackfillOrError"] for i in ids}
        if all(b.get("status") in DONE for b in got.values()):
            return got
        assert time.monotonic() < deadline, f"backfills not done in {seconds:.0f}s: {got}\n{stack.log_tail()}"
        stack.assert_alive()
        time.sleep(1)


def check_history(instance: dg.DagsterInstance, name: str) -> dict[str, str]:
    """partition -> status of the latest evaluation of a lake_files check (what the asset's Checks tab shows)."""
    out: dict[str, str] = {}
    check_key = dg.AssetCheckKey(dg.AssetKey("lake_files"), name)
    for rec in instance.event_log_storage.get_asset_check_execution_history(check_key, limit=1000):
        out.setdefault(rec.partition, rec.status.value)
    return out


def test_ui_backfills_run_by_the_daemon_rebuild_exactly_the_selected_hours(tmp_path, settings, log_table, kafka,
                                                                          store, group):
    t0 = time.monotonic()
    a, b, c, d = kafka.topic(2), kafka.topic(1), kafka.topic(1), kafka.topic(1)
    conf = write_conf(tmp_path / "pseidon.edn", settings)
    with dagster_stack(tmp_path, conf) as stack:
        instance = dg.DagsterInstance.from_config(str(tmp_path / "dagster_home"))
        instance.add_dynamic_partitions("logs", [a, b, c, d])  # what the sensor's first tick does
        stack.start_webserver()  # loads while the logs are ingested

        produced = {a: hourly(600, 6, 2), b: hourly(60, 6, 1), c: hourly(60, 6, 1), d: hourly(30, 6, 1)}
        for log, msgs in produced.items():
            add_log(log_table, group, log)
            kafka.produce(log, msgs)
            ingest(settings, log_table.get(log, group), store)
        root = Path(settings.data_dir) / "lake"
        # what a backfill repairs: a's hour H0+1 holds a file twice (under a shifted range, as after an offsets reset;
        # rebuilding it shrinks the hour, so the backfill says allow_shrink), its hour H0+2 was deleted by hand
        dup_dir = Path(partition_dir(str(root), f"raw/{a}", H0 + 1))
        f = sorted(dup_dir.glob("*.gz"))[0]
        name = FileName.parse(f.name)
        (dup_dir / str(dataclasses.replace(name, start=name.start + 1, end=name.end + 1))).write_bytes(f.read_bytes())
        shutil.rmtree(Path(partition_dir(str(root), f"raw/{a}", H0 + 2)))
        before = snapshot(root)
        offsets = {log: store.all_offsets(log) for log in produced}

        # one log x 3 hours; 2 logs x 3 hours, at the same time
        launches = {
            "one log": ([key(a, h) for h in range(H0 + 1, H0 + 4)],
                        {"ops": {"rebuild_hours": {"config": {"allow_shrink": True}}}}),
            "two logs": ([key(log, h) for log in (b, c) for h in range(H0 + 2, H0 + 5)], None),
        }
        # the runs Dagster makes of them with the single-run policy: key ranges along the dimension with fewer
        # distinct keys in the selection, so one run per log here (more hours than logs; see the test below)
        runs_wanted = {
            "one log": [(key(a, H0 + 1), key(a, H0 + 3))],
            "two logs": sorted([(key(b, H0 + 2), key(b, H0 + 4)), (key(c, H0 + 2), key(c, H0 + 4))]),
        }
        rebuilt = {a: [H0 + 1, H0 + 2, H0 + 3], b: [H0 + 2, H0 + 3, H0 + 4], c: [H0 + 2, H0 + 3, H0 + 4]}

        stack.wait_ready()
        ids = {what: launch_like_the_ui(stack.port, "lake_files", keys, run_config)
               for what, (keys, run_config) in launches.items()}
        launched = time.monotonic()
        stack.start_daemon()
        done = wait_backfills(stack, list(ids.values()))
        print(f"backfills completed {time.monotonic() - launched:.0f}s after their launch "
              f"({launched - t0:.0f}s to ingest and start the webserver)")

        for what, bid in ids.items():
            bf = done[bid]
            assert bf["status"] == "COMPLETED_SUCCESS", (what, bf, stack.log_tail())
            # the backfill's page: every targeted partition materialized, none failed; lake_files alone
            statuses = {tuple(s["assetKey"]["path"]): s for s in bf["assetBackfillData"]["assetBackfillStatuses"]}
            assert set(statuses) == {("lake_files",)}
            n = len(launches[what][0])
            lake = statuses[("lake_files",)]
            assert (lake["numPartitionsTargeted"], lake["numPartitionsMaterialized"], lake["numPartitionsFailed"],
                    lake["numPartitionsInProgress"]) == (n, n, 0, 0), what
            # its runs: successful, with the partition range tags, and no log= tag (the lease serializes them)
            assert [r["status"] for r in bf["runs"]] == ["SUCCESS"] * len(runs_wanted[what]), (what, bf["runs"])
            tags = [{t["key"]: t["value"] for t in r["tags"]} for r in bf["runs"]]
            assert sorted((t[RANGE_START], t[RANGE_END]) for t in tags) == runs_wanted[what], what
            assert all(t["dagster/backfill"] == bid and "log" not in t for t in tags)

        keys = {key(log, h) for log, hours in rebuilt.items() for h in hours}
        assert keys <= instance.get_materialized_partitions(dg.AssetKey("lake_files"))
        for check in ("offset_continuity", "record_counts"):
            history = check_history(instance, check)
            assert {history.get(k) for k in keys} == {"SUCCEEDED"}, (check, history)
        instance.dispose()

    # the rebuilt hours hold exactly the window's messages; nothing else changed
    for log, hours in rebuilt.items():
        for h in hours:
            want = collections.Counter(v for _, v in produced[log] if hour_of(v) == h)
            assert collections.Counter(lines_of_hour(root, log, h)) == want, (log, h)
    after = snapshot(root)
    rebuilt_dirs = tuple(os.path.relpath(partition_dir(str(root), f"raw/{log}", h), root) + "/"
                         for log, hours in rebuilt.items() for h in hours)
    untouched = {k: v for k, v in before.items() if not k.startswith(rebuilt_dirs)}
    assert any(f"raw/{d}/" in k for k in untouched) and len(untouched) < len(before)
    assert {k: after.get(k) for k in untouched} == untouched
    assert {log: store.all_offsets(log) for log in produced} == offsets
    for log in produced:
        assert store.r.get(store.lease_key(log)) is None
        for h in range(H0, H0 + 6):
            assert verify_continuity(settings, log_table.get(log, group), h).passed, (log, h)
    assert [p for top in ("lake", "quarantine") for p in (Path(settings.data_dir) / top).rglob(".*")] == []


def test_a_backfill_run_spanning_logs_rebuilds_each_logs_hour(pseidon, instance, settings, log_table, kafka, store,
                                                             group):
    """A selection with at least as many logs as hours (2 logs x 1 hour) is cut by Dagster into one run per hour whose
    range spans the logs (`H|b ... H|c`; checked with the daemon while writing this): that run rebuilds the hour of
    each log. Run in process the way the daemon runs it (test_backfill.backfill_run's tags)."""
    from pseidon_dagster.defs.ingest.assets import rebuild_hours
    from pseidon_dagster.defs.ingest.constants import RESOURCE_KEY

    b, c = kafka.topic(1), kafka.topic(1)
    produced = {b: hourly(60, 6, 1), c: hourly(60, 6, 1)}
    for log, msgs in produced.items():
        add_log(log_table, group, log)
        kafka.produce(log, msgs)
        ingest(settings, log_table.get(log, group), store)
    instance.add_dynamic_partitions("logs", [b, c])
    root = Path(settings.data_dir) / "lake"
    for log in (b, c):
        shutil.rmtree(Path(partition_dir(str(root), f"raw/{log}", H0 + 1)))

    result = dg.materialize([rebuild_hours], instance=instance, resources={RESOURCE_KEY: pseidon},
                            tags={RANGE_START: key(b, H0 + 1), RANGE_END: key(c, H0 + 1)})

    mats = {str(e.event_specific_data.materialization.partition) for e in result.all_events
            if e.event_type_value == "ASSET_MATERIALIZATION"}
    assert mats == {key(b, H0 + 1), key(c, H0 + 1)}
    for log in (b, c):
        want = collections.Counter(v for _, v in produced[log] if hour_of(v) == H0 + 1)
        assert collections.Counter(lines_of_hour(root, log, H0 + 1)) == want
