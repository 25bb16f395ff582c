"""What the repository's dagster.yaml promises, enforced by a real `dagster-daemon run` (run queue, run retries) and
the run workers it launches, on the repository's workspace.yaml:

- one run per log at a time (tag_concurrency_limits on the `log` tag): two runs of one log queued together run one
  after the other, while a run of another log runs beside them;
- the hive_ddl pool: with its limit at 1 (`dagster instance concurrency set hive_ddl 1`), the register_hive steps of
  two logs never run at the same time, while their ingest_log steps do;
- run retries: a run failing before its commit is launched again by the daemon (dagster/retry_number=1, same root
  run), which re-executes from the failed step and commits; every message lands once.

Runs are launched as the UI launches them (GraphQL launchRun on a dagster-webserver) before the daemon starts, so
they all wait in the queue together. Failpoints (PSEIDON_FAILPOINTS) hold each run for some seconds after planning
(and after registering), so runs that the limits did not separate would overlap whatever the machine's speed."""
from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import dagster as dg
import pytest

from pseidon_dagster.core.hive import create_table_for
from pseidon_dagster.defs.ingest.constants import (
    COMMIT_OP,
    INGEST_JOB,
    INGEST_OP,
    LAKE_FILES,
    LOG_TAG,
    REGISTER_OP,
)
from pseidon_dagster.defs.ingest.partitions import logs as logs_partitions
from tests import REPO_ROOT as REPO
from tests.conftest import write_conf
from tests.integration.core.test_ingest import add_log, make_messages
from tests.integration.defs.test_backfill_daemon import BIN, Stack, graphql
from tests.integration.defs.test_dagster_run import expected_hours
from tests.integration.defs.test_scale_out import expected, failure_of, lake_messages

LAUNCH_RUN = """
mutation LaunchRun($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on PythonError { message stack }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on InvalidSubsetError { message }
    ... on PipelineNotFoundError { message }
    ... on RunConflict { message }
    ... on UnauthorizedError { message }
    ... on PresetNotFoundError { message }
    ... on ConflictingExecutionParamsError { message }
    ... on NoModeProvidedError { message }
    ... on InvalidStepError { invalidStepKey }
    ... on InvalidOutputError { stepKey invalidOutputName }
  }
}"""
DONE = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
DRILL = {"ops": {INGEST_OP: {"config": {"fail_before_commit": True}}}}


def stack_for(tmp_path: Path, settings, failpoints: str, **conf) -> Stack:
    """A DAGSTER_HOME with the repository's dagster.yaml, a pseidon.edn for SETTINGS (plus CONF keys) and the
    failpoints for every process of the deployment (the run workers inherit them)."""
    root = tmp_path / "deploy"
    (root / "home").mkdir(parents=True)
    (root / "logs").mkdir()
    shutil.copy(REPO / "dagster.yaml", root / "home" / "dagster.yaml")
    stack = Stack(root / "home", write_conf(root / "pseidon.edn", settings, **conf), root / "logs")
    stack.env["PSEIDON_FAILPOINTS"] = failpoints
    return stack


def home(stack: Stack) -> str:
    return stack.env["DAGSTER_HOME"]


def launch(stack: Stack, log: str, run_config: dict | None = None) -> str:
    """Launch an ingest_job run of LOG's partition as the UI's launchpad does; returns its run id."""
    params = {
        "selector": {"repositoryLocationName": "pseidon", "repositoryName": "__repository__", "jobName": INGEST_JOB},
        "runConfigData": run_config or {},
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": log}, {"key": LOG_TAG, "value": log}]},
    }
    out = graphql(stack.port, LAUNCH_RUN, {"executionParams": params})["launchRun"]
    assert out["__typename"] == "LaunchRunSuccess", out
    return out["run"]["runId"]


def queue(stack: Stack, runs: list[tuple[str, dict | None]]) -> list[str]:
    """Start the webserver, launch RUNS [(log, run config)] (the daemon is not running yet: they wait in the
    queue), stop the webserver."""
    with dg.DagsterInstance.from_config(home(stack)) as instance:
        instance.add_dynamic_partitions(logs_partitions.name, sorted({log for log, _ in runs}))
    stack.start_webserver()
    stack.wait_ready()
    ids = [launch(stack, log, config) for log, config in runs]
    with dg.DagsterInstance.from_config(home(stack)) as instance:
        assert {instance.get_run_by_id(i).status for i in ids} == {dg.DagsterRunStatus.QUEUED}
    stack.stop()
    stack.procs.clear()
    return ids


def wait_done(stack: Stack, run_ids: list[str], seconds: float = 120) -> list[dg.RunRecord]:
    """Until every run of RUN_IDS, and every retry of them, has finished."""
    deadline = time.monotonic() + seconds
    with dg.DagsterInstance.from_config(home(stack)) as instance:
        while True:
            records = instance.get_run_records(dg.RunsFilter(job_name=INGEST_JOB))
            ours = [r for r in records if r.dagster_run.run_id in run_ids or r.dagster_run.root_run_id in run_ids]
            waiting = [r for r in ours if r.dagster_run.status not in DONE]
            # a failed run: wait until Dagster has decided whether to retry it (the will_retry tag, set just after
            # the failure) and, if so, until the daemon has launched the retry
            retrying = [r for r in ours if r.dagster_run.status == dg.DagsterRunStatus.FAILURE
                        and r.dagster_run.tags.get("dagster/will_retry") != "false"
                        and not any(o.dagster_run.parent_run_id == r.dagster_run.run_id for o in ours)]
            if not waiting and not retrying and len(ours) >= len(run_ids):
                return sorted(ours, key=lambda r: r.create_timestamp)
            stack.assert_alive()
            assert time.monotonic() < deadline, f"runs not done in {seconds:.0f}s: {ours}\n{stack.log_tail()}"
            time.sleep(0.5)


def step_spans(stack: Stack, run_id: str) -> dict[str, tuple[float, float]]:
    """{step key: (STEP_START, STEP_SUCCESS or STEP_FAILURE timestamp)} from the run's event log."""
    kinds = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE}
    starts, ends = {}, {}
    with dg.DagsterInstance.from_config(home(stack)) as instance:
        for e in instance.all_logs(run_id, of_type=kinds):
            if e.dagster_event.event_type == dg.DagsterEventType.STEP_START:
                starts[e.step_key] = e.timestamp
            else:
                ends[e.step_key] = e.timestamp
    return {k: (starts[k], ends[k]) for k in starts}


def run_offsets(stack: Stack, run_id: str) -> set[str]:
    """The offsets a run committed, as its lake_files materializations report them."""
    with dg.DagsterInstance.from_config(home(stack)) as instance:
        events = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
        return {e.asset_materialization.metadata["run_offsets"].value for e in events
                if e.asset_materialization.asset_key == LAKE_FILES}


def step_errors(stack: Stack, run_id: str) -> dict[str, str]:
    """{step key: its error message with its causes} of the run's failed steps."""
    out = {}
    with dg.DagsterInstance.from_config(home(stack)) as instance:
        for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
            err, texts = e.dagster_event.event_specific_data.error, []
            while err is not None:
                texts.append(err.message)
                err = err.cause
            out[e.step_key] = "\n".join(texts)
    return out


def overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def test_two_runs_of_one_log_queued_together_run_one_after_the_other(tmp_path, settings, log_table, kafka, store):
    log, other = kafka.topic(2), kafka.topic(2)
    produced = {}
    for t in (log, other):
        add_log(log_table, settings.etl_group, t)
        produced[t] = make_messages(1200, partitions=2)
        kafka.produce(t, produced[t])
    # each run reads at most 400 offsets per partition: the two runs of LOG read [0, 400) and [400, 600)
    stack = stack_for(tmp_path, settings, "after-plan=5", **{"max-offsets-per-partition": 400})
    try:
        first, second, beside = queue(stack, [(log, None), (log, None), (other, None)])
        stack.start_daemon()
        records = {r.dagster_run.run_id: r for r in wait_done(stack, [first, second, beside])}
    finally:
        stack.stop()

    for run_id, r in records.items():
        assert r.dagster_run.status == dg.DagsterRunStatus.SUCCESS, failure_of(Path(home(stack)), run_id)
    assert set(records) == {first, second, beside}
    spans = {i: (records[i].start_time, records[i].end_time) for i in records}
    assert not overlap(spans[first], spans[second]), spans  # one run of LOG at a time ...
    assert overlap(spans[beside], spans[first]) or overlap(spans[beside], spans[second]), spans  # ... not of others
    assert store.all_offsets(log) == {0: 600, 1: 600} and store.all_offsets(other) == {0: 400, 1: 400}
    assert sorted(lake_messages(settings, log)) == expected(produced[log])  # every message once ...
    assert run_offsets(stack, first) == {"p0 [0, 400)  p1 [0, 400)"}  # ... the first run the first 400 of each
    assert run_offsets(stack, second) == {"p0 [400, 600)  p1 [400, 600)"}  # partition, the second the rest


@pytest.mark.hive
def test_the_hive_ddl_pool_lets_one_register_hive_step_run_at_a_time(
        tmp_path, settings, log_table, kafka, store, hive_port, hive_catalog, hive_db):
    logs = [kafka.topic(2), kafka.topic(2)]
    produced = {}
    for log in logs:
        spec = add_log(log_table, settings.etl_group, log, hive_url=f"//127.0.0.1:{hive_port}/{hive_db}",
                       hive_table_name=log.replace("-", "_"))
        create_table_for(settings, spec)
        produced[log] = make_messages(400, hours=3, partitions=2)
        kafka.produce(log, produced[log])
    # Each run holds 6 s after planning (its ingest_log steps overlap the other run's) and 6 s after registering
    # (inside register_hive, holding the pool's slot): without the pool, the two register steps would overlap.
    stack = stack_for(tmp_path, settings, "after-plan=6,after-register=6")
    out = subprocess.run([str(BIN / "dagster"), "instance", "concurrency", "set", "hive_ddl", "1"], env=stack.env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    try:
        ids = queue(stack, [(log, None) for log in logs])
        stack.start_daemon()
        records = {r.dagster_run.run_id: r for r in wait_done(stack, ids)}
    finally:
        stack.stop()

    for run_id, r in records.items():
        assert r.dagster_run.status == dg.DagsterRunStatus.SUCCESS, failure_of(Path(home(stack)), run_id)
    a, b = (step_spans(stack, i) for i in ids)
    assert overlap(a[INGEST_OP], b[INGEST_OP]), (a, b)  # the runs ran side by side ...
    assert not overlap(a[REGISTER_OP], b[REGISTER_OP]), (a, b)  # ... their Hive DDL one at a time
    assert all(s[REGISTER_OP][1] - s[REGISTER_OP][0] >= 6 for s in (a, b))  # each held its slot for the pause
    for log in logs:
        assert store.all_offsets(log) == {0: 200, 1: 200}
        assert sorted(lake_messages(settings, log)) == expected(produced[log])
        assert len(hive_catalog.show_partitions(hive_db, log.replace("-", "_"))) == len(expected_hours(produced[log]))


def test_a_run_failing_before_its_commit_is_retried_by_the_daemon_and_commits_once(
        tmp_path, settings, log_table, kafka, store):
    log = kafka.topic(2)
    add_log(log_table, settings.etl_group, log)
    produced = make_messages(600, partitions=2)
    kafka.produce(log, produced)
    stack = stack_for(tmp_path, settings, "")
    try:
        (failed,) = queue(stack, [(log, DRILL)])
        stack.start_daemon()
        records = wait_done(stack, [failed])
    finally:
        stack.stop()

    assert [r.dagster_run.run_id for r in records][0] == failed and len(records) == 2, records
    first, retry = (r.dagster_run for r in records)
    assert first.status == dg.DagsterRunStatus.FAILURE
    errors = step_errors(stack, failed)
    assert list(errors) == [COMMIT_OP] and "injected failure before commit" in errors[COMMIT_OP], errors
    assert retry.status == dg.DagsterRunStatus.SUCCESS, failure_of(Path(home(stack)), retry.run_id)
    assert retry.tags["dagster/retry_number"] == "1" and retry.tags[LOG_TAG] == log
    assert retry.root_run_id == failed and retry.parent_run_id == failed
    # Dagster re-executes from the failed step: the retry ran only commit_offsets, on the first attempt's Staged
    assert set(step_spans(stack, retry.run_id)) == {COMMIT_OP}
    assert set(step_spans(stack, failed)) == {INGEST_OP, REGISTER_OP, COMMIT_OP}
    assert store.all_offsets(log) == {0: 300, 1: 300} and store.load_plan(log) is None
    assert sorted(lake_messages(settings, log)) == expected(produced)
    assert not [p for p in (Path(settings.data_dir) / "lake").rglob(".*") if p.is_file()]  # no temporary file
