"""The log's state in Redis (core/offsets.py) on its own, against the loopback Redis: offsets, plans and their
manifest, staged and unreported results, reset floors, rebuilds, the fenced writes and the batched read of many logs.
Each test reads back with the Redis client what a user (or the next run) would find there."""
from __future__ import annotations

import json
import time

import pytest
import redis as redis_lib
from redis.backoff import NoBackoff
from redis.retry import Retry

from pseidon_dagster.core import offsets as offsets_mod
from pseidon_dagster.core.config import RedisSettings
from pseidon_dagster.core.lease import Lease
from pseidon_dagster.core.model import FileInfo, IngestResult, Plan
from pseidon_dagster.core.offsets import (
    UNREPORTED_KEEP,
    LeaseLost,
    OffsetError,
    OffsetStore,
    RedisUnavailable,
    answering,
    connect,
    now_ms,
    redis_where,
    start_offset,
)
from tests.conftest import REDIS_PORT

LOG = "clicks"


def plan(plan_id="p1", ranges=None) -> Plan:
    return Plan(LOG, ranges or {0: (0, 10), 1: (5, 8)}, 1_700_000_000_000, plan_id)


def staged(plan_id="p1", written=7) -> IngestResult:
    f = FileInfo("/lake/a.p0.o0-10.gz", "data", 1, 0, 0, 10, written, 70, 20)
    return IngestResult(LOG, plan_id=plan_id, read=written, written=written, files=[f], offsets={0: (0, 10)})


def test_keys_keep_pseidon_etl_offsets_and_one_hash_tag_per_log(ostore, group):
    assert ostore.offset_key(LOG, 3) == f"/{group}/offsets/{LOG}/3"
    assert [ostore.plan_key(LOG), ostore.lease_key(LOG), ostore.manifest_key(LOG), ostore.staged_key(LOG),
            ostore.unreported_key(LOG), ostore.rebuild_key(LOG), ostore.last_commit_key(LOG),
            ostore.reset_floor_key(LOG), ostore.lease_seq_key(LOG), ostore.legacy_plan_key(LOG)] == [
        f"/{group}/{{{LOG}}}/{k}" for k in ("plan", "lease", "manifest", "staged", "unreported", "rebuild",
                                            "last-commit", "reset-floor", "lease-seq")] + [f"/{group}/plans/{LOG}"]


def test_offsets_set_and_read_back_and_a_non_integer_is_named(ostore, redis_client, group):
    assert ostore.get(LOG, []) == {}
    ostore.set(LOG, {1: 7, 0: "12"})
    assert redis_client.mget(f"/{group}/offsets/{LOG}/0", f"/{group}/offsets/{LOG}/1") == ["12", "7"]
    assert ostore.get(LOG, [0, 1, 2]) == {0: 12, 1: 7, 2: None}
    assert ostore.all_offsets(LOG) == {0: 12, 1: 7} and ostore.has_offsets(LOG)
    redis_client.set(f"/{group}/offsets/{LOG}/1", "seven")
    with pytest.raises(OffsetError, match=f"Redis key /{group}/offsets/{LOG}/1 holds 'seven', not an integer offset"):
        ostore.get(LOG, [0, 1])


def test_offsets_of_other_logs_or_other_keys_are_not_this_logs(ostore, redis_client, group):
    redis_client.set(f"/{group}/offsets/{LOG}2/0", "5")
    redis_client.set(f"/{group}/offsets/{LOG}/notes", "x")
    assert ostore.all_offsets(LOG) == {} and not ostore.has_offsets(LOG)
    redis_client.set(f"/{group}/offsets/{LOG}/10", "3")
    assert ostore.all_offsets(LOG) == {10: 3} and ostore.has_offsets(LOG)


def test_offsets_of_a_log_with_a_name_as_long_are_not_this_logs(ostore, redis_client, group):
    # "clickz" has as many letters as "clicks": past the same number of characters its keys end in a partition too.
    # (A log without offsets of its own resumes after the lake's files: another log's offsets must not hide that.)
    redis_client.set(f"/{group}/offsets/clickz/4", "9")
    assert ostore.all_offsets(LOG) == {} and not ostore.has_offsets(LOG)
    redis_client.set(f"/{group}/offsets/{LOG}/0", "2")
    assert ostore.all_offsets(LOG) == {0: 2} and ostore.has_offsets(LOG) and ostore.all_offsets("clickz") == {4: 9}


def test_a_plan_is_stored_fenced_read_back_and_cleared_with_its_state(ostore, redis_client, lease, group):
    p = plan()
    redis_client.set(ostore.legacy_plan_key(LOG), plan("old").to_json())
    ostore.save_plan(p, lease)
    assert json.loads(redis_client.get(ostore.plan_key(LOG)))["plan_id"] == "p1"
    assert redis_client.get(ostore.legacy_plan_key(LOG)) is None  # the old key goes
    assert ostore.load_plan(LOG) == p
    ostore.record_paths(LOG, lease, temps=["/lake/.a.tmp"], finals=["/lake/a"])
    ostore.save_staged(staged(), lease)
    redis_client.set(ostore.legacy_plan_key(LOG), p.to_json())
    ostore.clear_plan(LOG)
    for key in (ostore.plan_key(LOG), ostore.manifest_key(LOG), ostore.staged_key(LOG), ostore.legacy_plan_key(LOG)):
        assert redis_client.exists(key) == 0, key
    assert ostore.load_plan(LOG) is None


def test_a_plan_stored_by_an_earlier_version_is_read(ostore, redis_client):
    redis_client.set(ostore.legacy_plan_key(LOG), plan("legacy").to_json())
    assert ostore.load_plan(LOG).plan_id == "legacy"


def test_the_manifest_keeps_temporary_and_final_paths_apart(ostore, redis_client, lease):
    ostore.record_paths(LOG, lease)  # nothing to record: no key
    assert redis_client.exists(ostore.manifest_key(LOG)) == 0
    ostore.record_paths(LOG, lease, temps=["/l/.x.tmp", "/l/.y.tmp"], finals=["/l/x"])
    ostore.record_paths(LOG, lease, finals=["/l/y"])
    assert redis_client.smembers(ostore.manifest_key(LOG)) == {"t:/l/.x.tmp", "t:/l/.y.tmp", "f:/l/x", "f:/l/y"}
    assert ostore.manifest(LOG) == ({"/l/.x.tmp", "/l/.y.tmp"}, {"/l/x", "/l/y"})


def test_writes_fenced_by_a_lease_another_run_holds_now_fail_and_mark_it_lost(ostore, redis_client, lease):
    redis_client.set(ostore.lease_key(LOG), "99|someone-else")
    with pytest.raises(LeaseLost, match=f"{LOG}: cannot publish files: this run's lease \\(token {lease.token}\\) is "
                                        "held by another run now; nothing committed"):
        ostore.record_paths(LOG, lease, finals=["/l/x"])
    assert lease.lost.is_set() and "publish files" in lease.lost_reason
    assert redis_client.exists(ostore.manifest_key(LOG)) == 0
    with pytest.raises(LeaseLost, match="cannot store the plan"):
        ostore.save_plan(plan(), lease)
    with pytest.raises(LeaseLost, match="cannot record the staged files"):
        ostore.save_staged(staged(), lease)
    with pytest.raises(LeaseLost, match="cannot record the rebuild's progress"):
        ostore.save_rebuild(LOG, {"hours": [1]}, lease)
    assert redis_client.exists(ostore.plan_key(LOG), ostore.staged_key(LOG), ostore.rebuild_key(LOG)) == 0


def test_publishing_needs_a_third_of_the_lease_left(ostore, redis_client, lease):
    redis_client.pexpire(ostore.lease_key(LOG), lease.min_remaining_ms - 2000)
    with pytest.raises(LeaseLost, match="is about to expire \\(renewals are failing\\)"):
        ostore.record_paths(LOG, lease, temps=["/l/.x.tmp"])
    assert redis_client.exists(ostore.manifest_key(LOG)) == 0


def test_staged_results_are_read_back_for_their_plan_only(ostore, lease):
    assert ostore.load_staged(LOG) is None
    ostore.save_staged(staged("p1", 7), lease)
    assert ostore.load_staged(LOG).written == 7
    assert ostore.load_staged(LOG, "p1").files == staged().files
    assert ostore.load_staged(LOG, "p2") is None


def test_a_commit_moves_offsets_clears_the_plan_and_queues_the_result(ostore, redis_client, lease, group):
    p = plan()
    ostore.save_plan(p, lease)
    ostore.record_paths(LOG, lease, finals=["/l/x"])
    ostore.save_staged(staged(), lease)
    ostore.commit(p, staged(), lease)
    assert ostore.get(LOG, [0, 1]) == {0: 10, 1: 8}
    for key in (ostore.plan_key(LOG), ostore.manifest_key(LOG), ostore.staged_key(LOG)):
        assert redis_client.exists(key) == 0, key
    assert [r.plan_id for r in ostore.unreported(LOG)] == ["p1"]
    assert ostore.unreported(LOG)[0].written == 7


def test_unreported_results_are_capped_newest_last_and_removed_once_reported(ostore, lease):
    for i in range(UNREPORTED_KEEP + 2):
        p = plan(f"p{i}", {0: (i, i + 1)})
        ostore.save_plan(p, lease)
        ostore.commit(p, staged(f"p{i}"), lease)
    ids = [r.plan_id for r in ostore.unreported(LOG)]
    assert len(ids) == UNREPORTED_KEEP and ids[0] == "p2" and ids[-1] == f"p{UNREPORTED_KEEP + 1}"
    ostore.mark_reported(LOG, "p5")
    ostore.mark_reported(LOG, "p-unknown")
    assert [r.plan_id for r in ostore.unreported(LOG)] == [i for i in ids if i != "p5"]


def test_mark_reported_removes_every_entry_of_the_plan_and_only_those(ostore, redis_client):
    record = staged("p1").to_record()
    redis_client.rpush(ostore.unreported_key(LOG), record, staged("p2").to_record(), record)
    ostore.mark_reported(LOG, "p1")
    assert [r.plan_id for r in ostore.unreported(LOG)] == ["p2"]


def test_a_commit_refuses_a_plan_that_is_not_the_stored_one(ostore, lease):
    ostore.save_plan(plan("p2"), lease)
    with pytest.raises(OffsetError, match=f"{LOG}: the stored plan is p2, not p1; nothing committed"):
        ostore.commit(plan("p1"), staged(), lease)
    ostore.clear_plan(LOG)
    with pytest.raises(OffsetError, match="the stored plan is none, not p1"):
        ostore.commit(plan("p1"), staged(), lease)
    assert ostore.get(LOG, [0, 1]) == {0: None, 1: None}


def test_a_commit_never_moves_an_offset_back(ostore, redis_client, lease, group):
    p = plan()
    ostore.save_plan(p, lease)
    ostore.set(LOG, {1: 9})
    with pytest.raises(OffsetError, match=f"the stored offset /{group}/offsets/{LOG}/1=9 is past plan p1's end; "
                                          "nothing committed"):
        ostore.commit(p, staged(), lease)
    assert ostore.get(LOG, [0, 1]) == {0: None, 1: 9} and ostore.load_plan(LOG) == p
    ostore.set(LOG, {1: 8})  # at the end is not past it
    ostore.commit(p, staged(), lease)
    assert ostore.get(LOG, [0, 1]) == {0: 10, 1: 8}


def test_a_commit_without_the_lease_commits_nothing(ostore, redis_client, lease):
    p = plan()
    ostore.save_plan(p, lease)
    redis_client.set(ostore.lease_key(LOG), "99|someone-else")
    with pytest.raises(LeaseLost, match=f"{LOG}: this run lost its lease \\(token {lease.token}\\) before committing "
                                        "plan p1; nothing committed"):
        ostore.commit(p, staged(), lease)
    assert lease.lost.is_set() and ostore.get(LOG, [0, 1]) == {0: None, 1: None}
    assert ostore.unreported(LOG) == []
    with pytest.raises(LeaseLost, match="lost its lease \\(found while trying to commit\\)"):
        lease.check()  # what the run says at its next step


def test_finish_commit_clears_a_committed_plan_once(ostore, redis_client, lease):
    p = plan()
    ostore.save_plan(p, lease)
    ostore.record_paths(LOG, lease, finals=["/l/x"])
    ostore.save_staged(staged(), lease)
    ostore.finish_commit(plan("p-other"), staged("p-other"))  # not the stored plan: nothing happens
    assert ostore.load_plan(LOG) == p and ostore.unreported(LOG) == []
    ostore.finish_commit(p, staged())
    for key in (ostore.plan_key(LOG), ostore.manifest_key(LOG), ostore.staged_key(LOG)):
        assert redis_client.exists(key) == 0, key
    assert [r.plan_id for r in ostore.unreported(LOG)] == ["p1"]


def test_reset_floor_rebuild_and_last_commit_round_trip(ostore, redis_client, lease):
    assert ostore.load_reset_floor(LOG) == {}
    ostore.save_reset_floor(LOG, {0: 100, 3: 7})
    assert json.loads(redis_client.get(ostore.reset_floor_key(LOG))) == {"0": 100, "3": 7}
    assert ostore.load_reset_floor(LOG) == {0: 100, 3: 7}
    ostore.save_reset_floor(LOG, {})
    assert redis_client.exists(ostore.reset_floor_key(LOG)) == 0
    assert ostore.load_rebuild(LOG) is None
    ostore.save_rebuild(LOG, {"hours": [2, 1], "b": 1}, lease)
    assert redis_client.get(ostore.rebuild_key(LOG)) == '{"b": 1, "hours": [2, 1]}'
    assert ostore.load_rebuild(LOG) == {"hours": [2, 1], "b": 1}
    ostore.clear_rebuild(LOG, lease)
    assert ostore.load_rebuild(LOG) is None
    ostore.save_last_commit(LOG, {"ms": 5, "bytes_per_message": 1.5})
    assert redis_client.get(ostore.last_commit_key(LOG)) == '{"bytes_per_message": 1.5, "ms": 5}'


def test_clearing_a_rebuild_needs_the_lease(ostore, lease):
    ostore.save_rebuild(LOG, {"hours": [1]}, lease)
    lease.mark_lost("test")
    with pytest.raises(LeaseLost):
        ostore.clear_rebuild(LOG, lease)
    assert ostore.load_rebuild(LOG) == {"hours": [1]}


def test_read_many_gives_each_log_its_offsets_plan_lease_and_last_commit(ostore, redis_client, lease):
    ostore.set("b", {0: 4, 2: 9})
    ostore.save_plan(plan(), lease)
    redis_client.set(ostore.legacy_plan_key("b"), plan("legacy").to_json())
    ostore.save_last_commit("b", {"ms": 3})
    redis_client.set(ostore.offset_key("c", 0), "bad")
    ostore.set("c", {1: 2})
    states = ostore.read_many({LOG: [0, 1], "b": [0, 1, 2], "c": [0, 1], "d": []})
    assert list(states) == [LOG, "b", "c", "d"]
    a, b, c, d = states[LOG], states["b"], states["c"], states["d"]
    assert a.stored == {0: None, 1: None} and a.plan == plan() and a.lease == lease.value
    assert a.error is None and a.last_commit is None
    assert b.stored == {0: 4, 1: None, 2: 9} and b.plan.plan_id == "legacy" and b.lease is None
    assert b.last_commit == {"ms": 3} and b.error is None
    assert c.stored == {} and str(c.error) == (f"Redis key {ostore.offset_key('c', 0)} holds 'bad', not an integer "
                                               "offset")
    assert c.plan is None
    assert d.stored == {} and d.plan is None and d.error is None
    assert ostore.read_many({}) == {}


def test_read_many_past_one_mget_reads_the_same(ostore, monkeypatch):
    logs = {f"l{i}": [0, 1, 2] for i in range(5)}
    for i, log in enumerate(logs):
        ostore.set(log, {0: i, 2: 10 * i})
    whole = ostore.read_many(logs)
    monkeypatch.setattr(offsets_mod, "MGET_CHUNK", 4)  # 35 keys: 9 MGETs in one pipeline
    chunked = ostore.read_many(logs)
    assert chunked == whole
    assert [chunked[f"l{i}"].stored for i in range(5)] == [{0: i, 1: None, 2: 10 * i} for i in range(5)]
    monkeypatch.setattr(offsets_mod, "MGET_CHUNK", 35)  # exactly one MGET's worth
    assert ostore.read_many(logs) == whole


def test_a_redis_that_does_not_answer_is_named_with_the_step(group):
    # a closed loopback port, without redis-py's retries (seconds each)
    down = redis_lib.Redis(host="127.0.0.1", port=1, decode_responses=True, retry=Retry(NoBackoff(), 0))
    store = OffsetStore(down, group)
    assert store.where == "Redis at 127.0.0.1:1"
    with pytest.raises(RedisUnavailable, match=f"^Redis at 127.0.0.1:1 did not answer while trying to read the stored "
                                               f"offsets of {LOG}: "):
        store.get(LOG, [0])
    steps = {"read the stored plan of clicks": lambda: store.load_plan(LOG),
             "store the offsets of clicks": lambda: store.set(LOG, {0: 1}),
             "read the stored offsets of clicks": lambda: store.has_offsets(LOG),
             "read the stored offsets, plans and leases of 1 logs": lambda: store.read_many({LOG: [0]}),
             "read the manifest of clicks's published files": lambda: store.manifest(LOG),
             "read the staged files of clicks": lambda: store.load_staged(LOG),
             "commit the offsets of plan p1": lambda: store.commit(plan(), staged(), Lease(store, LOG, "o", 1, 30)),
             "store the plan": lambda: store.save_plan(plan(), Lease(store, LOG, "o", 1, 30))}
    for what, step in steps.items():
        with pytest.raises(RedisUnavailable) as caught:
            step()
        assert str(caught.value).startswith(f"Redis at 127.0.0.1:1 did not answer while trying to {what}: "), what
    assert isinstance(RedisUnavailable("x"), redis_lib.ConnectionError)


def test_answering_passes_other_errors_and_its_own_through(redis_client):
    with pytest.raises(ValueError):
        with answering(redis_client, "x"):
            raise ValueError("not Redis")
    inner = RedisUnavailable("already named")
    with pytest.raises(RedisUnavailable) as caught:
        with answering(redis_client, "x"):
            raise inner
    assert caught.value is inner
    with pytest.raises(RedisUnavailable, match="did not answer while trying to y: timed out") as caught:
        with answering(redis_client, "y"):
            raise redis_lib.TimeoutError("timed out")
    assert isinstance(caught.value.__cause__, redis_lib.TimeoutError)


def test_connect_makes_a_client_of_the_settings_that_answers_in_str(redis_client, group):
    client = connect(RedisSettings(hosts=(("127.0.0.1", REDIS_PORT),), db=0, timeout_s=2.5))
    kw = client.connection_pool.connection_kwargs
    assert (kw["host"], kw["port"], kw["db"], kw["socket_timeout"], kw["socket_connect_timeout"]) == (
        "127.0.0.1", REDIS_PORT, 0, 2.5, 2.5)
    client.set(f"/{group}/x", "1")
    assert client.get(f"/{group}/x") == "1"  # decoded
    assert redis_where(client) == f"Redis at 127.0.0.1:{REDIS_PORT}"
    assert redis_where(object()) == "Redis"  # only for a message: never raises


def test_start_offset_and_now():
    assert start_offset(7, 0, 10, True) == 7 and start_offset(7, 0, 10, False) == 7
    assert start_offset(None, 3, 10, True) == 3 and start_offset(None, 3, 10, False) == 10
    before = time.time_ns() // 1_000_000
    assert before <= now_ms() <= before + 1000


def test_an_offset_moved_past_the_plan_is_named_in_full_even_with_a_colon_in_the_group(redis_client, group):
    store = OffsetStore(connect(RedisSettings(hosts=(("127.0.0.1", REDIS_PORT),))), f"{group}/site:a")
    held = Lease.acquire(store, LOG, owner="run-1", ttl_s=30)
    try:
        p = plan()
        store.save_plan(p, held)
        store.set(LOG, {0: 11})
        with pytest.raises(OffsetError) as caught:
            store.commit(p, staged(), held)
        assert str(caught.value) == (f"{LOG}: the stored offset /{group}/site:a/offsets/{LOG}/0=11 is past plan p1's "
                                     "end; nothing committed (offsets moved while the run held the lease?)")
    finally:
        held.release()
