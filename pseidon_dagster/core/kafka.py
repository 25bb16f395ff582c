"""Kafka access with confluent-kafka: metadata, watermarks and a consumer assigned to explicit offsets.

No consumer-group membership and no offset commits to Kafka: offsets live in Redis (offsets.py).
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicCollection, TopicPartition

from .config import Settings

if TYPE_CHECKING:
    from confluent_kafka.admin import AdminClient

# Batched reads (the sensor's): partitions per ListOffsets call; the calls of one batch are all sent before any answer
# is awaited. librdkafka's matching of a call's answers grows faster than linearly with its size (6,000 partitions
# in one call took 4x as long as six calls of 1,000 on tansu), so big batches are split.
LIST_OFFSETS_CHUNK = 1000
# Errors of a batched watermark answer that mean "Kafka did not answer" (the tick fails, naming the server); any
# other error of one partition (a broker without ListOffsets v1, a leader moving) is asked again the old way, alone.
_UNAVAILABLE = {KafkaError._TIMED_OUT, KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._RESOLVE,
                KafkaError.REQUEST_TIMED_OUT, KafkaError.NETWORK_EXCEPTION, KafkaError._DESTROY}


class KafkaUnavailable(RuntimeError):
    pass


class TopicNotFound(KafkaUnavailable):
    pass


@dataclasses.dataclass
class KafkaSource:
    settings: Settings

    def consumer_config(self, **extra: Any) -> dict[str, Any]:
        conf: dict[str, Any] = {
            "bootstrap.servers": self.settings.bootstrap_servers,
            # Prefetch. librdkafka stops fetching once queued.min.messages are queued: at 200,000 a run that spends a
            # few milliseconds per batch drained the queue faster than fetches refilled it and waited in consume()
            # for half its time (measured: 2.2 s of waiting where a bare read waits 1.1 s). A million keeps fetches
            # ahead; memory stays bounded by queued.max.messages.kbytes per partition (RangeReader: 256 MiB shared
            # by a run's partitions, 16 to 64 MiB each -- tansu needs the depth: 24 MiB took twice as long as 64).
            "fetch.max.bytes": 64 << 20,
            "max.partition.fetch.bytes": 16 << 20,
            "queued.min.messages": 1_000_000,
            "fetch.wait.max.ms": 100,
            "socket.timeout.ms": int(self.settings.kafka_timeout_s * 1000),
            "api.version.request.timeout.ms": int(self.settings.kafka_timeout_s * 1000),
            "reconnect.backoff.max.ms": 1000,
            "log_level": 3,
        }
        conf.update(self.settings.kafka_config)
        conf.update(extra)
        conf.update(self.essential())  # what exactly-once relies on; :kafka-config cannot change it
        return conf

    def essential(self) -> dict[str, Any]:
        return {
            "group.id": f"pseidon-dagster-{self.settings.etl_group}",  # required by librdkafka; never joined
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "error",
        }

    def consumer(self, **extra: Any) -> Consumer:
        return Consumer(self.consumer_config(**extra))

    def admin_config(self) -> dict[str, Any]:
        """An admin client's settings: the connection settings of consumer_config (bootstrap, timeouts, :kafka-config
        such as SASL/TLS), without the consumer's own."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.settings.bootstrap_servers,
            "socket.timeout.ms": int(self.settings.kafka_timeout_s * 1000),
            "api.version.request.timeout.ms": int(self.settings.kafka_timeout_s * 1000),
            "reconnect.backoff.max.ms": 1000,
            "log_level": 3,
        }
        conf.update(self.settings.kafka_config)
        return conf

    def admin(self) -> AdminClient:
        from confluent_kafka.admin import AdminClient

        return AdminClient(self.admin_config())

    # batched: a constant number of requests however many topics ------------------------------------------------
    def topic_partitions(self, topics: Iterable[str], admin: AdminClient | None = None
                         ) -> dict[str, list[int] | None]:
        """The partitions of every topic in one metadata request; None for a topic that does not exist. Raises
        KafkaUnavailable when Kafka does not answer (or answers a topic with another error)."""
        names = sorted(set(topics))
        if not names:
            return {}
        a = admin or self.admin()
        timeout = self.settings.kafka_timeout_s
        try:
            futures = a.describe_topics(TopicCollection(names), request_timeout=timeout)
        except KafkaException as e:
            raise self._no_answer(f"the metadata of {len(names)} topics", e) from None
        out: dict[str, list[int] | None] = {}
        for name, fut in futures.items():
            try:
                desc = fut.result(timeout + 1)
            except KafkaException as e:
                err = e.args[0]
                if err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    out[name] = None
                    continue
                if err.code() in _UNAVAILABLE:
                    raise self._no_answer(f"the metadata of {len(names)} topics", e) from None
                raise KafkaUnavailable(f"Kafka at {self.settings.bootstrap_servers}: topic {name!r}: {err}") from None
            except concurrent.futures.TimeoutError as e:
                raise self._no_answer(f"the metadata of {len(names)} topics", e) from None
            out[name] = sorted(p.id for p in desc.partitions)
        return out

    def watermarks_many(self, partitions: dict[str, list[int]], admin: AdminClient | None = None,
                        consumer: Consumer | None = None) -> dict[str, dict[int, tuple[int, int]]]:
        """(low, high) watermarks of many partitions of many topics: ListOffsets requests for the earliest and the
        latest offsets, LIST_OFFSETS_CHUNK partitions per call, one call at a time (librdkafka groups each call's
        partitions by leader, one request per broker). The same numbers as watermarks() (checked
        on tansu, which reports the high watermark as the last batch's base offset + 1 through both). A partition
        whose batched answer is an error other than "no answer" is asked again alone with watermarks()."""
        from confluent_kafka.admin import OffsetSpec

        tps = [TopicPartition(t, p) for t, parts in sorted(partitions.items()) for p in sorted(parts)]
        out: dict[str, dict[int, tuple[int, int]]] = {t: {} for t in partitions}
        if not tps:
            return out
        a = admin or self.admin()
        timeout = self.settings.kafka_timeout_s
        what = f"the watermarks of {len(tps)} partitions of {len(partitions)} topics"
        found: tuple[dict, dict] = ({}, {})
        retry: set[tuple[str, int]] = set()
        # One call at a time, each answered before the next is made: with two calls in flight, librdkafka 2.16's
        # partition-leader lookup for the second (run in this thread) raced the first's (in its own thread) and
        # crashed the process now and then (SIGSEGV in rd_kafka_topic_partition_list_query_leaders_async_worker).
        for which, spec in enumerate((OffsetSpec.earliest(), OffsetSpec.latest())):
            for i in range(0, len(tps), LIST_OFFSETS_CHUNK):
                try:
                    futures = a.list_offsets({tp: spec for tp in tps[i:i + LIST_OFFSETS_CHUNK]},
                                             request_timeout=timeout)
                except KafkaException as e:
                    raise self._no_answer(what, e) from None
                self._collect_offsets(futures, found[which], retry, what, timeout)
        alone: dict[str, list[int]] = {}
        for t, p in sorted(retry):
            alone.setdefault(t, []).append(p)
        c = consumer or (self.consumer() if alone else None)
        try:
            for t, parts in alone.items():
                out[t].update(self.watermarks(t, parts, c))
        finally:
            if consumer is None and c is not None:
                c.close()
        low, high = found
        for key, hi in high.items():
            if key in low and key not in retry:
                out[key[0]][key[1]] = (low[key], hi)
        return out

    def _collect_offsets(self, futures: dict, into: dict, retry: set, what: str, timeout: float) -> None:
        """The offsets of one list_offsets call into INTO; a partition answered with an error other than "no
        answer" goes to RETRY (asked again alone)."""
        for tp, fut in futures.items():
            try:
                into[tp.topic, tp.partition] = fut.result(timeout + 1).offset
            except KafkaException as e:
                if e.args[0].code() in _UNAVAILABLE:
                    raise self._no_answer(what, e) from None
                retry.add((tp.topic, tp.partition))
            except concurrent.futures.TimeoutError as e:
                raise self._no_answer(what, e) from None

    def _no_answer(self, what: str, err: BaseException) -> KafkaUnavailable:
        return KafkaUnavailable(f"Kafka at {self.settings.bootstrap_servers} did not answer while reading {what}: "
                                f"{err or type(err).__name__}")

    def partitions(self, topic: str, consumer: Consumer | None = None) -> list[int]:
        c = consumer or self.consumer()
        try:
            md = c.list_topics(topic, timeout=self.settings.kafka_timeout_s)
        except KafkaException as e:
            raise KafkaUnavailable(f"Kafka at {self.settings.bootstrap_servers} did not answer while reading the "
                                   f"metadata of topic {topic!r}: {e}") from None
        finally:
            if consumer is None:
                c.close()
        t = md.topics.get(topic)
        if t is None or t.error is not None and t.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
            raise TopicNotFound(f"topic {topic!r} does not exist on {self.settings.bootstrap_servers}")
        if t.error is not None:
            raise KafkaUnavailable(f"Kafka at {self.settings.bootstrap_servers}: topic {topic!r}: {t.error}")
        return sorted(t.partitions)

    def watermarks(self, topic: str, partitions: list[int] | None = None,
                   consumer: Consumer | None = None) -> dict[int, tuple[int, int]]:
        c = consumer or self.consumer()
        try:
            parts = partitions if partitions is not None else self.partitions(topic, c)
            out = {}
            for p in parts:
                try:
                    out[p] = c.get_watermark_offsets(TopicPartition(topic, p), timeout=self.settings.kafka_timeout_s,
                                                     cached=False)
                except KafkaException as e:
                    raise KafkaUnavailable(f"Kafka at {self.settings.bootstrap_servers} did not answer while reading "
                                           f"the watermarks of {topic}[{p}]: {e}") from None
                if out[p] is None:
                    raise KafkaUnavailable(f"Kafka at {self.settings.bootstrap_servers} did not answer while reading "
                                           f"the watermarks of {topic}[{p}]")
            return out
        finally:
            if consumer is None:
                c.close()

    def offsets_for_time(self, topic: str, ts_ms: int, partitions: list[int]) -> dict[int, int]:
        """Earliest offset per partition whose timestamp is >= ts_ms (-1 when there is none: use the high mark).
        A lower bound on brokers that answer loosely; callers filter by record timestamp."""
        c = self.consumer()
        try:
            res = c.offsets_for_times([TopicPartition(topic, p, ts_ms) for p in partitions],
                                      timeout=self.settings.kafka_timeout_s)
            return {tp.partition: tp.offset for tp in res}
        except KafkaException as e:
            raise KafkaUnavailable(f"Kafka at {self.settings.bootstrap_servers} did not answer while looking up "
                                   f"offsets by time in {topic}: {e}") from None
        finally:
            c.close()
