"""The read stage on its own (core/ingest/read.py): a plan's offset ranges read from a real broker (tansu) as
per-partition runs -- every message of a range once, in offset order, nothing outside it -- the consumer's prefetch
shared by the partitions read, a lease check per batch, and a read that stalls named with what it waited for."""
from __future__ import annotations

import pytest

from pseidon_dagster.core.ingest import ReadStalled
from pseidon_dagster.core.ingest.read import RangeReader
from pseidon_dagster.core.kafka import KafkaSource
from pseidon_dagster.core.offsets import LeaseLost


class RecordingSource(KafkaSource):
    """The real consumer; the settings each run's consumer was made with are kept."""

    made: list

    def consumer(self, **extra):
        self.made.append(extra)
        return super().consumer(**extra)


def source(settings, **kafka_config) -> RecordingSource:
    import dataclasses

    s = dataclasses.replace(settings, kafka_config={**settings.kafka_config, **kafka_config})
    src = RecordingSource(s)
    src.made = []
    return src


def read_all(reader: RangeReader) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for p, msgs in reader.runs():
        assert len({m.partition() for m in msgs}) == 1 and msgs[0].partition() == p
        out.setdefault(p, []).extend(m.offset() for m in msgs)
    return out


@pytest.fixture
def topic(kafka):
    name = kafka.topic(3)
    kafka.produce(name, [(p, f"{p}-{i}".encode()) for i in range(12) for p in range(3)])
    return name


@pytest.mark.parametrize("batch_size", [1, 5, 1000])
def test_each_range_is_read_once_in_order_and_nothing_outside_it(settings, topic, batch_size):
    checks = []
    reader = RangeReader(source(settings), topic, {0: (2, 9), 1: (5, 5), 2: (0, 12)}, batch_size=batch_size,
                         idle_timeout_s=10, check=lambda: checks.append(1))
    assert read_all(reader) == {0: list(range(2, 9)), 2: list(range(12))}
    assert checks  # the lease is checked while reading
    assert reader.starts == {0: 2, 2: 0} and reader.ends == {0: 9, 2: 12}  # an empty range is not read at all


def test_the_last_offset_of_a_range_ends_it(settings, topic):
    reader = RangeReader(source(settings), topic, {1: (11, 12)}, batch_size=100, idle_timeout_s=10)
    assert read_all(reader) == {1: [11]}
    reader = RangeReader(source(settings), topic, {1: (0, 1)}, batch_size=100, idle_timeout_s=10)
    assert read_all(reader) == {1: [0]}


def test_a_plan_with_nothing_to_read_makes_no_consumer(settings, topic):
    src = source(settings)
    assert read_all(RangeReader(src, topic, {0: (4, 4)}, batch_size=10, idle_timeout_s=10)) == {}
    assert src.made == []


def test_the_prefetch_is_shared_by_the_partitions_read_unless_configured(settings, kafka, topic):
    src = source(settings)
    read_all(RangeReader(src, topic, {0: (0, 1)}, batch_size=10, idle_timeout_s=10))
    read_all(RangeReader(src, topic, {0: (0, 1), 1: (0, 1), 2: (0, 1)}, batch_size=10, idle_timeout_s=10))
    wide = kafka.topic(20)
    kafka.produce(wide, [(p, b"x") for p in range(20)])
    read_all(RangeReader(src, wide, {p: (0, 1) for p in range(8)}, batch_size=10, idle_timeout_s=10))
    read_all(RangeReader(src, wide, {p: (0, 1) for p in range(20)}, batch_size=10, idle_timeout_s=10))
    # 64 MiB at most, 256 MiB shared, 16 MiB at least
    assert [m["queued.max.messages.kbytes"] for m in src.made] == [65536, 65536, 32768, 16384]
    configured = source(settings, **{"queued.max.messages.kbytes": 1024})
    read_all(RangeReader(configured, topic, {0: (0, 1)}, batch_size=10, idle_timeout_s=10))
    assert configured.made == [{}]


def test_a_range_past_what_kafka_holds_stalls_and_says_what_it_waited_for(settings, topic):
    reader = RangeReader(source(settings), topic, {0: (0, 12), 2: (10, 15)}, batch_size=100, idle_timeout_s=1)
    got: dict[int, list[int]] = {}
    with pytest.raises(ReadStalled) as caught:
        for p, msgs in reader.runs():
            got.setdefault(p, []).extend(m.offset() for m in msgs)
    assert got == {0: list(range(12)), 2: [10, 11]}
    assert str(caught.value) == (f"no data from Kafka at {settings.bootstrap_servers} for 1s while reading {topic} "
                                 f"partitions [2] (planned up to {{0: 12, 2: 15}}); nothing was committed")


def test_a_lost_lease_stops_the_read(settings, topic):
    def check():
        raise LeaseLost("lost")

    with pytest.raises(LeaseLost):
        read_all(RangeReader(source(settings), topic, {0: (0, 12)}, batch_size=100, idle_timeout_s=10, check=check))
