"""Scale beyond one process: what can be tested on one machine of the multi-machine set-up (README "Scaling out").

- Two deployments -- two DAGSTER_HOMEs, each with its own `dagster-daemon` and its own :etl-group -- share one Redis
  and one `pseidon_logs` table: each sensor runs only the logs of its group, each group's Redis keys name only its
  own logs, and every message of every log lands exactly once.
- One deployment with five logs waiting at once: the sensor asks for five runs in one tick, the run queue launches
  them as separate run processes side by side, never more than `max_concurrent_runs` (4, the repository's
  dagster.yaml) at a time and never two of one log, and every log's messages land exactly once.

Real tansu, Redis, MariaDB and `dagster-daemon run` subprocesses on the repository's workspace.yaml.
"""
from __future__ import annotations

import collections
import dataclasses
import shutil
import time
from pathlib import Path

import dagster as dg

from pseidon_dagster.core.kafka import KafkaSource
from pseidon_dagster.defs.ingest.constants import INGEST_JOB, LOG_TAG
from tests.conftest import read_lines, write_conf
from tests.integration.core.test_ingest import add_log, make_messages
from tests.integration.defs.test_backfill_daemon import REPO, Stack


def deployment(tmp_path: Path, name: str, settings) -> Stack:
    """A DAGSTER_HOME with the repository's dagster.yaml and a pseidon.edn for SETTINGS' :etl-group."""
    root = tmp_path / name
    (root / "home").mkdir(parents=True)
    (root / "logs").mkdir()
    shutil.copy(REPO / "dagster.yaml", root / "home" / "dagster.yaml")
    return Stack(root / "home", write_conf(root / "pseidon.edn", settings), root / "logs")


def wait_landed(settings, stores: dict[str, object], stacks: list[Stack], seconds: float = 240) -> None:
    """Until every log's committed offsets reach its high watermarks."""
    source = KafkaSource(settings)
    marks = {log: {p: hi for p, (_, hi) in source.watermarks(log).items()} for log in stores}
    deadline = time.monotonic() + seconds
    while True:
        behind = {log: s.all_offsets(log) for log, s in stores.items() if s.all_offsets(log) != marks[log]}
        if not behind:
            return
        for stack in stacks:
            stack.assert_alive()
        assert time.monotonic() < deadline, (f"not landed in {seconds:.0f}s: {behind} (watermarks {marks})\n"
                                             + "\n".join(s.log_tail() for s in stacks))
        time.sleep(1)


def wait_runs_finished(stacks: list[Stack], seconds: float = 60) -> None:
    """Until no run is queued or in progress: a run that has committed still registers and reports, and stopping
    its daemon then would interrupt it."""
    busy = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
            dg.DagsterRunStatus.STARTED]
    deadline = time.monotonic() + seconds
    for stack in stacks:
        with dg.DagsterInstance.from_config(stack.env['DAGSTER_HOME']) as instance:
            while instance.get_run_records(dg.RunsFilter(statuses=busy)):
                assert time.monotonic() < deadline, f"runs still busy after {seconds:.0f}s\n{stack.log_tail()}"
                time.sleep(0.5)


def run_records(home: Path) -> list:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return list(instance.get_run_records(dg.RunsFilter(job_name=INGEST_JOB)))


def failure_of(home: Path, run_id: str) -> str:
    """The error messages of a failed run's events, for an assertion message."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return "\n".join(str(e.dagster_event.event_specific_data)[:2000] for e in instance.all_logs(run_id)
                         if e.dagster_event and e.dagster_event.event_type_value in ("STEP_FAILURE", "RUN_FAILURE"))


def lake_messages(settings, log: str) -> list[bytes]:
    out = []
    for f in sorted((Path(settings.data_dir) / "lake" / "raw" / log).rglob("*.gz")):
        out += [line.split(b"|")[1] for line in read_lines(f)]
    return out


def expected(messages) -> list[bytes]:
    return sorted(v.split(b"|")[1] for _, v in messages)


def test_two_deployments_on_one_redis_and_one_log_table_never_touch_each_others_logs(
        tmp_path, settings, log_table, kafka, store, group, redis_client):
    other = f"{group}b"
    settings_b = dataclasses.replace(settings, etl_group=other)
    store_b = type(store)(store.r, other)
    logs_a = [kafka.topic(2, prefix="a"), kafka.topic(2, prefix="a")]
    logs_b = [kafka.topic(2, prefix="b")]
    produced = {}
    for log in logs_a:
        add_log(log_table, group, log)
    for log in logs_b:
        add_log(log_table, other, log)
    for i, log in enumerate(logs_a + logs_b):
        produced[log] = make_messages(300 + 50 * i, partitions=2)
        kafka.produce(log, produced[log])

    stacks = [deployment(tmp_path, "a", settings), deployment(tmp_path, "b", settings_b)]
    try:
        for stack in stacks:
            stack.start_daemon()
        wait_landed(settings, {**{log: store for log in logs_a}, **{log: store_b for log in logs_b}}, stacks)
        wait_runs_finished(stacks)
    finally:
        for stack in stacks:
            stack.stop()
        keys_b = list(redis_client.scan_iter(match=f"/{other}/*"))
        for key in keys_b:
            redis_client.delete(key)

    runs_a = {r.dagster_run.tags[LOG_TAG] for r in run_records(Path(stacks[0].env['DAGSTER_HOME']))}
    runs_b = {r.dagster_run.tags[LOG_TAG] for r in run_records(Path(stacks[1].env['DAGSTER_HOME']))}
    assert runs_a == set(logs_a) and runs_b == set(logs_b)
    # each group's keys in Redis name only its own logs (the keys read before the clean-up above)
    keys_a = list(redis_client.scan_iter(match=f"/{group}/*"))
    assert keys_a and keys_b
    assert not [k for k in keys_a if any(log in k for log in logs_b)]
    assert not [k for k in keys_b if any(log in k for log in logs_a)]
    for log in logs_a + logs_b:
        assert sorted(lake_messages(settings, log)) == expected(produced[log]), log


def test_five_logs_at_once_run_side_by_side_within_the_run_queues_limits(tmp_path, settings, log_table, kafka,
                                                                       store):
    logs = [kafka.topic(2, prefix=f"l{i}") for i in range(5)]
    produced = {}
    for i, log in enumerate(logs):
        add_log(log_table, settings.etl_group, log)
        produced[log] = make_messages(2000 + 100 * i, partitions=2)
        kafka.produce(log, produced[log])

    stack = deployment(tmp_path, "one", settings)
    # Each run holds for 8 s after planning, so runs the queue launched together overlap whatever the machine's
    # load (the daemon launches queued runs one after another; on a busy machine a 1.5 s run could end before the
    # next one started, and "side by side" would be a matter of timing).
    stack.env["PSEIDON_FAILPOINTS"] = "after-plan=8"
    try:
        stack.start_daemon()
        wait_landed(settings, {log: store for log in logs}, [stack])
        wait_runs_finished([stack])
    finally:
        stack.stop()

    records = run_records(Path(stack.env['DAGSTER_HOME']))
    by_log = collections.defaultdict(list)
    spans = []
    for r in records:
        assert r.dagster_run.status == dg.DagsterRunStatus.SUCCESS, failure_of(Path(stack.env['DAGSTER_HOME']),
                                                                               r.dagster_run.run_id)
        by_log[r.dagster_run.tags[LOG_TAG]].append((r.start_time, r.end_time))
        spans.append((r.start_time, r.end_time))
    assert set(by_log) == set(logs)

    def most_at_once(intervals) -> int:
        events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
        level = peak = 0
        for _, step in events:  # an end sorts before a start at the same instant (-1 < 1)
            level += step
            peak = max(peak, level)
        return peak

    peak = most_at_once(spans)
    assert 2 <= peak <= 4, f"{peak} runs at once (max_concurrent_runs 4): {sorted(spans)}"
    assert all(most_at_once(v) == 1 for v in by_log.values()), by_log
    for log in logs:
        assert sorted(lake_messages(settings, log)) == expected(produced[log]), log
