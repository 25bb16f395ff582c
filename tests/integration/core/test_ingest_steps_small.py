"""A run's steps (core/ingest/run.py) as the Dagster job calls them -- stage, register the Hive partitions, commit --
on small topics: what each step hands to the next and leaves in Redis (the staged result, the last commit's numbers
the sensor reads, the lease), a run with nothing to read, and a commit that refuses another run's plan. Real tansu,
Redis and MariaDB."""
from __future__ import annotations

import dataclasses
import gzip
import json
import time

import pytest

from pseidon_dagster.core.ingest import IngestError, Ingestor
from pseidon_dagster.core.metrics.store import MetricsStore
from pseidon_dagster.core.offsets import OffsetError
from tests.integration.core.test_ingest import add_log, make_messages


def test_the_steps_hand_over_the_staged_result_and_the_commit_records_its_numbers(settings, log_table, kafka, store,
                                                                                  group):
    topic = kafka.topic(2)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, make_messages(30, hours=2, partitions=2))
    capped = dataclasses.replace(settings, max_offsets_per_partition=10)
    registered, before, specs = [], [], []

    def register(result):
        registered.append(sorted(f.path for f in result.data_files))
        specs.append(result.spec)
        time.sleep(0.05)
        return ["hour=1", "hour=2"]

    t0 = int(time.time() * 1000)
    staged = Ingestor(capped, spec, store, owner="root-1", register=register).stage()
    assert not staged.committed and staged.plan_id and staged.offsets == {0: (0, 10), 1: (0, 10)}
    assert staged.layout == {"format": "txt:sep=pipe;ts=0", "output_format": "gzip", "base_partition": "lake",
                             "log_partition": f"raw/{topic}", "quarantine": "quarantine", "date_format": "datehour"}
    assert store.load_staged(topic, staged.plan_id).written == 20
    assert store.r.get(store.lease_key(topic)).endswith("|root-1")  # held between the steps

    # the next steps, as another process of the same run would take them: from what Redis holds
    changed = dataclasses.replace(spec, output_format="zstd")  # the row as edited since the plan was made
    step = Ingestor(capped, changed, store, owner="root-1", register=register, before_commit=before.append)
    again = store.load_staged(topic, staged.plan_id)
    assert again.spec is None
    seconds = again.seconds
    step.register_files(again)
    assert again.registered == ["hour=1", "hour=2"] and registered == [sorted(f.path for f in staged.data_files)]
    assert specs == [spec]  # the row the plan froze, for the hook that registers the files it wrote
    assert again.seconds >= seconds + 0.05
    assert store.load_staged(topic).registered == ["hour=1", "hour=2"]
    done = step.commit(again)
    assert done.committed and before == [again] and done.removed == []
    assert t0 <= done.committed_ms <= int(time.time() * 1000)
    assert store.get(topic, [0, 1]) == {0: 10, 1: 10} and store.r.get(store.lease_key(topic)) is None
    assert done.lag_after == 10  # 5 more per partition than the cap let this run read
    last = json.loads(store.r.get(store.last_commit_key(topic)))
    raw = sum(f.raw_bytes for f in staged.data_files)
    assert set(last) == {"ms", "plan_ms", "bytes_per_message"} and last["ms"] == done.committed_ms
    assert t0 <= last["plan_ms"] <= last["ms"] and last["bytes_per_message"] == round(raw / 20, 1)
    assert step.commit(done) is done  # committed already: nothing more happens
    assert store.get(topic, [0, 1]) == {0: 10, 1: 10}


def test_a_run_with_nothing_to_read_is_committed_at_once_and_lets_the_lease_go(settings, log_table, kafka, store,
                                                                              group):
    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic)
    calls = []
    run = Ingestor(settings, spec, store, register=lambda r: calls.append(r) or [])
    result = run.stage()
    assert result.committed and result.plan_id is None and result.lag_after == 0 and result.files == []
    assert store.r.get(store.lease_key(topic)) is None
    run.register_files(result)
    assert run.commit(result) is result and calls == []
    assert store.get(topic, [0]) == {0: 0}  # where it starts, remembered


def test_a_run_without_data_files_registers_nothing(settings, log_table, kafka, store, group):
    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, [(0, b"not-a-time|x"), (0, None)])
    calls, progress = [], []
    run = Ingestor(settings, spec, store, register=lambda r: calls.append(r) or ["x"],
                   progress=lambda *a: progress.append(a))
    result = run.run()
    assert result.committed and (result.quarantined, result.filtered, result.written) == (1, 1, 0)
    assert calls == [] and result.registered == []
    assert result.quarantine_reasons == {"bad timestamp": 1}
    assert progress and progress[-1] == ("read", 2, 2)  # what the CLI shows on stderr
    quarantined = [f for f in result.files if f.kind == "quarantine"]
    record = json.loads(gzip.decompress(open(quarantined[0].path, "rb").read()))
    assert isinstance(record["read_at_ms"], int) and record["offset"] == 0
    assert json.loads(store.r.get(store.last_commit_key(topic)))["bytes_per_message"] is None


def test_a_commit_refuses_a_result_of_another_plan(settings, log_table, kafka, store, group):
    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, make_messages(5, hours=1, partitions=1))
    run = Ingestor(settings, spec, store, owner="root-2")
    staged = run.stage()
    other = dataclasses.replace(staged, plan_id="not-the-plan")
    with pytest.raises(IngestError, match=f"^{topic}: the stored plan is {staged.plan_id}, not not-the-plan; nothing "
                                          "committed \\(another run took over\\?\\)"):
        run.commit(other)
    assert not other.committed and store.get(topic, [0]) == {0: None}
    assert run.commit(staged).committed and store.get(topic, [0]) == {0: 5}
    with pytest.raises(IngestError, match="the stored plan is none, not"):
        Ingestor(settings, spec, store, owner="root-2").commit(dataclasses.replace(staged, committed=False))


def test_a_runs_seconds_add_up_its_steps(settings, log_table, kafka, store, group):
    # One result through the steps in one process, as Ingestor.run (the CLI's `ingest`) takes them: its "seconds"
    # (printed, and the duration /metrics shows) is the stage's time plus each later step's own.
    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, make_messages(5, hours=1, partitions=1))
    run = Ingestor(settings, spec, store)
    t0 = time.monotonic()
    result = run.stage()
    staged = result.seconds
    assert 0 < staged <= time.monotonic() - t0
    for step in (run.register_files, run.commit):
        before, t0 = result.seconds, time.monotonic()
        step(result)
        assert before <= result.seconds <= before + (time.monotonic() - t0)
    assert result.committed and result.seconds >= staged and result.to_dict()["seconds"] == round(result.seconds, 3)


def test_the_last_commit_records_the_bytes_per_message_to_a_tenth(settings, log_table, kafka, store, group):
    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, [(0, b"1795000000000|a"), (0, b"1795000000001|bb"), (0, b"1795000000002|dddd")])
    done = Ingestor(settings, spec, store).run()
    raw = sum(f.raw_bytes for f in done.data_files)
    assert done.written == 3 and raw % 3  # a mean with more than one decimal
    last = json.loads(store.r.get(store.last_commit_key(topic)))
    assert last["bytes_per_message"] == round(raw / 3, 1)


def test_a_commit_records_the_run_in_the_metrics_with_its_dagster_run(settings, log_table, kafka, store, group):
    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, make_messages(5, hours=1, partitions=1))
    done = Ingestor(settings, spec, store, owner="dagster:run-7").run()
    last = MetricsStore(store.r, settings.etl_group).log_state(topic, done.committed_ms)["last-run"]
    assert (last["run"], last["via"], last["plan"], last["messages"]) == ("run-7", "dagster", done.plan_id, 5)
    assert last["seconds"] == round(done.seconds, 3)
    kafka.produce(topic, make_messages(2, hours=1, partitions=1, start=5))
    again = Ingestor(settings, spec, store, lock_token="dagster:run-8").run()  # the owner's earlier name
    last = MetricsStore(store.r, settings.etl_group).log_state(topic, again.committed_ms)["last-run"]
    assert (last["run"], last["via"], last["messages"]) == ("run-8", "dagster", 2)


def test_a_commit_redis_refuses_leaves_the_result_uncommitted_and_can_be_taken_again(settings, log_table, kafka,
                                                                                     store, group):
    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, make_messages(5, hours=1, partitions=1))
    run = Ingestor(settings, spec, store, owner="root-5")
    staged = run.stage()
    store.set(topic, {0: 9})  # moved past the plan's end while the run held the lease
    with pytest.raises(OffsetError, match=f"^{topic}: the stored offset /{group}/offsets/{topic}/0=9 is past plan "
                                          f"{staged.plan_id}'s end; nothing committed"):
        run.commit(staged)
    assert staged.to_dict()["committed"] is False and store.get(topic, [0]) == {0: 9}
    store.set(topic, {0: 0})  # put back: the same step commits it now
    done = run.commit(staged)
    assert done.committed and store.get(topic, [0]) == {0: 5} and done.lag_after == 0  # all there was


def test_a_commit_after_which_kafka_does_not_answer_commits_and_leaves_the_lag_unknown(settings, log_table, kafka,
                                                                                       store, group):
    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, make_messages(5, hours=1, partitions=1))
    staged = Ingestor(settings, spec, store, owner="root-6").stage()
    # the commit step, in a process that cannot reach Kafka (a closed port): the lag after it cannot be read
    down = dataclasses.replace(settings, kafka_brokers=("127.0.0.1:1",), kafka_timeout_s=1.0)
    done = Ingestor(down, spec, store, owner="root-6").commit(store.load_staged(topic, staged.plan_id))
    assert done.committed and store.get(topic, [0]) == {0: 5}
    assert done.to_dict()["lag_after"] is None  # Dagster shows "unknown (Kafka did not answer)"


def test_a_later_step_of_the_run_lets_go_of_the_lease_an_earlier_step_took(settings, log_table, kafka, store, group):
    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, make_messages(5, hours=1, partitions=1))
    first = Ingestor(settings, spec, store, owner="root-3")
    staged = first.stage()
    assert store.r.get(store.lease_key(topic)).endswith("|root-3")
    Ingestor(settings, spec, store, owner="root-3").release()  # another op of the run, same process
    assert store.r.get(store.lease_key(topic)) is None
    first.release()  # nothing held any more: harmless
    again = first.stage()  # and the same step can take it again
    assert again.replayed and again.plan_id == staged.plan_id
    assert first.commit(again).committed and store.get(topic, [0]) == {0: 5}


def test_a_run_first_rolls_back_what_a_killed_backfill_left_unswitched(settings, log_table, kafka, store, group,
                                                                        tmp_path):
    from pseidon_dagster.core.lease import Lease

    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, make_messages(3, hours=1, partitions=1))
    fresh, work = tmp_path / "hour.fresh", tmp_path / ".rebuild" / f"{topic}-7"
    for d in (fresh, work):
        d.mkdir(parents=True)
        (d / "part").write_bytes(b"x")
    lease = Lease.acquire(store, topic, owner="backfill", ttl_s=30)
    store.save_rebuild(topic, {"hours": {"498655": {"step": "writing", "fresh": str(fresh)}}, "work": [str(work)]},
                       lease)
    lease.release()
    result = Ingestor(settings, spec, store).run()
    assert result.written == 3
    assert store.load_rebuild(topic) is None and not fresh.exists() and not work.parent.exists()


def test_a_run_waits_for_another_runs_lease_as_configured_and_says_so(settings, log_table, kafka, store, group):
    from pseidon_dagster.core.lease import Lease
    from pseidon_dagster.core.offsets import LockedError

    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic)
    short = dataclasses.replace(settings, lease_ttl_s=1.0)  # waits 1 s + 1 s at most
    other = Lease.acquire(store, topic, owner="other-run", ttl_s=30)
    notes = []
    try:
        t0 = time.monotonic()
        with pytest.raises(LockedError, match="held by other-run"):
            Ingestor(short, spec, store, notify=notes.append).stage()
        assert time.monotonic() - t0 < 5
        assert notes and notes[0].startswith(f"{topic}: waiting for the lease held by other-run")
    finally:
        other.release()
    kafka.produce(topic, make_messages(2, hours=1, partitions=1))
    run = Ingestor(short, spec, store)
    run.stage()
    assert 0 < store.r.pttl(store.lease_key(topic)) <= 1000  # the run's lease lives as long as configured
    run.release()


def test_a_registration_that_fails_leaves_the_offsets_and_the_plan_and_the_next_run_commits_once(
        settings, log_table, kafka, store, group):
    """Register before commit, without a Hive server: the log's real registration hook, its Hive on a closed
    loopback port, fails; the offsets stay where they were and the plan stays stored. The next run (the log's
    hive_url removed meanwhile) replays the plan and commits every message once. Committing before registering
    (the two steps of Ingestor.run swapped) fails this test."""
    from pseidon_dagster.core.hive import CatalogError, registrar_for
    from tests.private_servers import free_port

    fast = dataclasses.replace(settings, hive=dataclasses.replace(settings.hive, retries=0, retry_backoff_s=0.01))
    topic = kafka.topic(2)
    spec = add_log(log_table, group, topic, hive_url=f"//127.0.0.1:{free_port()}/lake", hive_table_name="events")
    kafka.produce(topic, make_messages(40, hours=2, partitions=2))
    start = store.get(topic, [0, 1])

    with pytest.raises(CatalogError, match=r"could not register \d+ partition\(s\).* at 127\.0\.0\.1:"):
        Ingestor(fast, spec, store, register=registrar_for(fast, spec)).run()
    assert store.get(topic, [0, 1]) == start
    stored = store.load_staged(topic)
    assert stored is not None and not stored.committed and stored.written == 40
    assert store.r.get(store.lease_key(topic)) is None  # let go, so the next run need not wait

    done = Ingestor(fast, dataclasses.replace(spec, hive_url=""), store).run()
    assert done.committed and done.replayed and done.written == 40
    assert store.get(topic, [0, 1]) == {p: end for p, (_, end) in done.offsets.items()}
    assert sum(end - begin for begin, end in done.offsets.values()) == 40 and done.lag_after == 0
    lines = [ln for f in done.data_files for ln in gzip.decompress(open(f.path, "rb").read()).splitlines()]
    assert len(lines) == len(set(lines)) == 40
