"""Plans the plan stage refuses to make or replay (core/ingest/plan.py), each with what a user must know: a stored plan
whose offsets Kafka expired since it was made (the ranges that are gone, per partition), an offset beyond Kafka's
high watermark, and offsets reset back over files already in the lake. Real tansu, Redis and MariaDB; expiry is
simulated by reporting the low watermark as 5, as after retention deleted offsets 0-4 (tansu cannot delete)."""
from __future__ import annotations

from pathlib import Path

import pytest

from pseidon_dagster.core.ingest import ingest
from pseidon_dagster.core.offsets import OffsetError
from tests.integration.core.test_ingest import InjectedFailure, add_log, fail_before_commit
from tests.integration.core.test_offsets import RetentionSource


def test_a_plan_whose_offsets_expired_names_each_expired_range(settings, log_table, kafka, store, group):
    topic = kafka.topic(3)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, [(p, f"17950000000{i:02d}|m{i}".encode()) for p in (0, 1) for i in range(8)])  # none in 2
    with pytest.raises(InjectedFailure):
        ingest(settings, spec, store, before_commit=fail_before_commit)
    plan = store.load_plan(topic)
    assert plan.ranges == {0: (0, 8), 1: (0, 8), 2: (0, 0)}
    with pytest.raises(OffsetError) as caught:
        ingest(settings, spec, store, kafka=RetentionSource(settings))
    assert str(caught.value).startswith(f"{topic}: stored plan {plan.plan_id} cannot be replayed: Kafka expired "
                                        "offsets it must read ([0] 0..4, [1] 0..4) since it was made. ")
    assert store.load_plan(topic) == plan and store.get(topic, [0, 1, 2]) == {0: None, 1: None, 2: None}


def test_an_offset_beyond_the_high_watermark_is_refused_with_the_way_out(settings, log_table, kafka, store, group):
    topic = kafka.topic(2)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, [(0, f"17950000000{i:02d}|m{i}".encode()) for i in range(10)])
    store.set(topic, {0: 3, 1: 7})
    with pytest.raises(OffsetError) as caught:
        ingest(settings, spec, store)
    assert str(caught.value) == (f"{topic}[1]: stored offset 7 is beyond Kafka's high watermark 0 (was the topic "
                                 f"re-created?). Reset it with `pseidon-dagster offsets reset {topic} --partition 1 "
                                 "--to latest|earliest|OFFSET` after checking what was lost")
    assert store.get(topic, [0, 1]) == {0: 3, 1: 7} and store.load_plan(topic) is None
    store.set(topic, {1: 0})  # at the high watermark is fine
    assert ingest(settings, spec, store).offsets == {0: (3, 10), 1: (0, 0)}


def test_offsets_reset_back_over_the_lakes_files_are_refused_until_put_back(settings, log_table, kafka, store, group):
    topic = kafka.topic(2)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, [(p, f"17950000000{i:02d}|m{i}".encode()) for p in (0, 1) for i in range(10)])
    first = ingest(settings, spec, store)
    names = sorted(f.path for f in first.files if f.partition == 1)
    store.set(topic, {0: 10, 1: 4})  # as `offsets reset --to 4` on partition 1 leaves it
    store.save_reset_floor(topic, {1: 10})
    with pytest.raises(OffsetError) as caught:
        ingest(settings, spec, store)
    assert str(caught.value).startswith(
        f"{topic}: offsets were reset back ([1] 4..9) over 1 file(s) already in the lake (e.g. {names[0]}); "
        "ingesting them again would write their records twice, so nothing is published. Put the offsets back where "
        f"they were (`pseidon-dagster offsets reset {topic} --to latest`, or the offsets they held), then rebuild the "
        f"hours you meant to re-ingest with `pseidon-dagster backfill {topic} --from ... --to ...`")
    assert store.load_plan(topic) is None and store.get(topic, [0, 1]) == {0: 10, 1: 4}

    store.set(topic, {1: 10})  # put back: the next run goes on, and once past the floor forgets it
    kafka.produce(topic, [(1, b"1795000000099|late")])
    assert ingest(settings, spec, store).offsets == {0: (10, 10), 1: (10, 11)}
    assert store.load_reset_floor(topic) == {}


def test_a_reset_floor_over_no_file_of_the_log_lets_the_run_go_on(settings, log_table, kafka, store, group):
    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, [(0, f"17950000000{i:02d}|m{i}".encode()) for i in range(10)])
    other = Path(settings.data_dir) / "lake" / "raw" / topic / "date=20261118" / "hour=2026111808"
    other.mkdir(parents=True)
    (other / f"{topic}x-2026-11-18-08.p0.o0000000000000000000-0000000000000000010.gz").write_bytes(b"")  # not this log
    (other / ".fresh").mkdir()  # a backfill's fresh directory
    (other / ".fresh" / f"{topic}-2026-11-18-08.p0.o0000000000000000000-0000000000000000010.gz").write_bytes(b"")
    store.set(topic, {0: 0})
    store.save_reset_floor(topic, {0: 10})
    result = ingest(settings, spec, store)
    assert result.offsets == {0: (0, 10)} and result.written == 10
    assert store.load_reset_floor(topic) == {}


def test_a_run_that_stops_short_of_the_reset_floor_keeps_it(settings, log_table, kafka, store, group):
    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, [(0, f"17950000000{i:02d}|m{i}".encode()) for i in range(5)])
    store.set(topic, {0: 0})
    store.save_reset_floor(topic, {0: 9})  # the lake may hold files up to offset 9 (none are there now)
    assert ingest(settings, spec, store).offsets == {0: (0, 5)}
    assert store.load_reset_floor(topic) == {0: 9}  # offsets 5..8 are still behind it: the next plan checks them
    kafka.produce(topic, [(0, f"17950000000{i:02d}|m{i}".encode()) for i in range(5, 10)])
    assert ingest(settings, spec, store).offsets == {0: (5, 10)}
    assert store.load_reset_floor(topic) == {}


@pytest.mark.parametrize("root", ["lake_X", "lake "])
def test_offsets_reset_back_over_files_under_a_root_ending_in_x_or_a_space_are_refused(settings, log_table, kafka,
                                                                                     store, group, root):
    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic, base_partition=root)
    kafka.produce(topic, [(0, f"17950000000{i:02d}|m{i}".encode()) for i in range(10)])
    assert ingest(settings, spec, store).written == 10  # published under <data-dir>/<root>/
    store.set(topic, {0: 4})
    store.save_reset_floor(topic, {0: 10})
    with pytest.raises(OffsetError, match=rf"^{topic}: offsets were reset back \(\[0\] 4\.\.9\) over 1 file"):
        ingest(settings, spec, store)


def test_a_file_starting_at_the_reset_floor_is_not_behind_it(settings, log_table, kafka, store, group):
    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, [(0, f"17950000000{i:02d}|m{i}".encode()) for i in range(12)])
    hour = Path(settings.data_dir) / "lake" / "raw" / topic / "date=20261118" / "hour=2026111808"
    hour.mkdir(parents=True)
    (hour / f"{topic}-2026-11-18-08.p0.o0000000000000000010-0000000000000000012.gz").write_bytes(b"")
    store.set(topic, {0: 5})
    store.save_reset_floor(topic, {0: 10})  # offsets 5..9 are behind it, and no file holds them
    assert ingest(settings, spec, store).offsets == {0: (5, 12)}


def test_a_reset_over_only_quarantined_offsets_may_go_on(settings, log_table, kafka, store, group):
    """The floor guards the data files: offsets whose messages all went to quarantine hold no data file."""
    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, [(0, f"17950000000{i:02d}|m{i}".encode()) for i in range(5)])
    assert ingest(settings, spec, store).written == 5  # the data file [0, 5)
    kafka.produce(topic, [(0, b"not-a-time|x")] * 5)
    assert ingest(settings, spec, store).quarantined == 5  # offsets 5..9: a quarantine file only
    store.set(topic, {0: 5})
    store.save_reset_floor(topic, {0: 10})
    again = ingest(settings, spec, store)
    assert again.offsets == {0: (5, 10)} and again.quarantined == 5
    assert store.load_reset_floor(topic) == {}


def test_a_run_starting_at_the_floor_goes_on_even_past_a_file_spanning_it(settings, log_table, kafka, store, group):
    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, [(0, f"17950000000{i:02d}|m{i}".encode()) for i in range(12)])
    hour = Path(settings.data_dir) / "lake" / "raw" / topic / "date=20261118" / "hour=2026111808"
    hour.mkdir(parents=True)
    (hour / f"{topic}-2026-11-18-08.p0.o0000000000000000005-0000000000000000015.gz").write_bytes(b"")  # compacted
    store.set(topic, {0: 10})
    store.save_reset_floor(topic, {0: 10})
    assert ingest(settings, spec, store).offsets == {0: (10, 12)}
