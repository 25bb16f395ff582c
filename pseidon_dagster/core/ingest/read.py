"""Read a plan's offset ranges from Kafka: a consumer assigned to each partition's start (no group membership,
nothing committed to Kafka), yielding each consume() batch as per-partition runs in offset order, stopping every
partition at the end of its range."""
from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import cast

from confluent_kafka import KafkaError, TopicPartition

from ..kafka import KafkaSource, KafkaUnavailable

PREFETCH_KB = 256 << 10  # what a run's consumer may queue ahead, shared by its partitions


class ReadStalled(RuntimeError):
    pass


class RangeReader:
    def __init__(self, kafka: KafkaSource, topic: str, ranges: dict[int, tuple[int, int]], *, batch_size: int,
                 idle_timeout_s: float, check=lambda: None):
        self.kafka = kafka
        self.topic = topic
        self.starts = {p: s for p, (s, e) in ranges.items() if e > s}
        self.ends = {p: e for p, (s, e) in ranges.items() if e > s}
        self.batch_size = batch_size
        self.idle_timeout_s = idle_timeout_s
        self.check = check  # called once per batch: raises to stop (the lease was lost)

    def runs(self) -> Iterator[tuple[int, list]]:
        """(partition, messages) with every message's offset inside the partition's planned range."""
        if not self.ends:
            return
        queue = {} if "queued.max.messages.kbytes" in self.kafka.settings.kafka_config else {
            "queued.max.messages.kbytes": max(16 << 10, min(64 << 10, PREFETCH_KB // len(self.ends)))}
        consumer = self.kafka.consumer(**queue)
        try:
            consumer.assign([TopicPartition(self.topic, p, s) for p, s in self.starts.items()])
            self.remaining = set(self.ends)
            idle_since = time.monotonic()
            while self.remaining:
                self.check()
                msgs = consumer.consume(self.batch_size, 0.5)
                if not msgs:
                    if time.monotonic() - idle_since > self.idle_timeout_s:
                        raise ReadStalled(
                            f"no data from Kafka at {self.kafka.settings.bootstrap_servers} for "
                            f"{self.idle_timeout_s:.0f}s while reading {self.topic} partitions "
                            f"{sorted(self.remaining)} (planned up to {self.ends}); nothing was committed")
                    continue
                idle_since = time.monotonic()
                events = [m for m in msgs if m.error() is not None]
                if events:  # ends of partitions (or errors): handled after every message of the batch
                    msgs = [m for m in msgs if m.error() is None]
                if msgs:
                    parts = cast("list[int]", [m.partition() for m in msgs])  # messages, not events: all set
                    if parts.count(parts[0]) == len(parts):  # the common case: one partition's run
                        yield from self._emit(parts[0], msgs, consumer)
                    else:
                        for p, group in itertools.groupby(zip(parts, msgs), key=lambda pm: pm[0]):
                            yield from self._emit(p, [m for _, m in group], consumer)
                for m in events:
                    self._event(m, consumer)
        finally:
            consumer.close()

    def _emit(self, p: int, run: list, consumer) -> Iterator[tuple[int, list]]:
        if p not in self.remaining:
            return
        end = self.ends[p]
        if run[-1].offset() >= end - 1:
            run = [m for m in run if m.offset() < end]
            self._done(p, consumer)
        if run:
            yield p, run

    def _event(self, m, consumer) -> None:
        err = m.error()
        if err.code() == KafkaError._PARTITION_EOF:
            p = m.partition()
            if p in self.remaining and m.offset() >= self.ends[p]:
                self._done(p, consumer)
            return
        raise KafkaUnavailable(f"reading {self.topic}[{m.partition()}] from Kafka at "
                               f"{self.kafka.settings.bootstrap_servers}: {err.str()}")

    def _done(self, p: int, consumer) -> None:
        self.remaining.discard(p)
        consumer.pause([TopicPartition(self.topic, p)])
