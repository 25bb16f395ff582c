"""Offsets in Redis, edge cases: a key that holds no integer, reads of many logs past one MGET, keys beside the
offsets, and commits refused because the stored plan or an offset changed under the run (nothing committed)."""
from __future__ import annotations

import json

import pytest

from pseidon_dagster.core import offsets
from pseidon_dagster.core.ingest import Ingestor
from pseidon_dagster.core.offsets import OffsetError
from tests.integration.core.test_ingest import add_log, make_messages


def test_a_stored_offset_that_is_not_an_integer_names_the_key_and_its_value(store, group, redis_client):
    redis_client.set(f"/{group}/offsets/clicks/1", "12abc")
    with pytest.raises(OffsetError) as e:
        store.get("clicks", [0, 1])
    assert str(e.value) == f"Redis key /{group}/offsets/clicks/1 holds '12abc', not an integer offset"
    assert store.get("clicks", []) == {}


def test_read_many_past_one_mget_and_all_offsets_skip_other_keys(store, group, redis_client, monkeypatch):
    monkeypatch.setattr(offsets, "MGET_CHUNK", 5)  # 3 logs x (4 state keys + 2 offsets): three MGETs
    for i in range(3):
        store.set(f"log{i}", {0: 10 * i, 1: 10 * i + 1})
    redis_client.set(f"/{group}/offsets/log0/backup", "99")  # not a partition: ignored

    states = store.read_many({f"log{i}": [0, 1] for i in range(3)})

    assert {log: s.stored for log, s in states.items()} == {f"log{i}": {0: 10 * i, 1: 10 * i + 1} for i in range(3)}
    assert store.read_many({}) == {}
    assert store.all_offsets("log0") == {0: 0, 1: 1}


def _other_plan(store, topic):
    """before_commit hook: the stored plan becomes another plan's (as if another run had taken over)."""
    def hook(result):
        raw = json.loads(store.r.get(store.plan_key(topic)))
        store.r.set(store.plan_key(topic), json.dumps({**raw, "plan_id": "someone-else"}))
    return hook


def _offset_moved(store, topic):
    """before_commit hook: partition 0's offset jumps past the plan's end (a reset without the lease)."""
    def hook(result):
        store.r.set(store.offset_key(topic, 0), 10_000)
    return hook


@pytest.mark.parametrize("hook,message", [
    (_other_plan, "the stored plan is someone-else, not {plan}; nothing committed (another run took over?)"),
    (_offset_moved, "the stored offset /{group}/offsets/{topic}/0=10000 is past plan {plan}'s end; nothing committed"),
])
def test_a_commit_refused_under_the_run_commits_nothing(settings, log_table, kafka, store, group, hook, message):
    topic = kafka.topic(2)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, make_messages(20, partitions=2))
    plans = []

    with pytest.raises(OffsetError) as e:
        Ingestor(settings, spec, store, before_commit=lambda r: (plans.append(r.plan_id), hook(store, topic)(r))).run()

    assert message.format(plan=plans[0], group=group, topic=topic) in str(e.value)
    assert store.get(topic, [1]) == {1: None}  # nothing committed
