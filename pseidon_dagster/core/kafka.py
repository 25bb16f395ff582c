"""Kafka access with confluent-kafka: metadata, watermarks and a consumer assigned to explicit offsets.

No consumer-group membership and no offset commits to Kafka: offsets live in Redis (offsets.py).
"""
from __future__ import annotations

import dataclasses
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from .config import Settings


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
            # Prefetch: big fetches, up to 200,000 messages or 32 MiB queued ahead of the run (bounded memory).
            "fetch.max.bytes": 32 << 20,
            "max.partition.fetch.bytes": 4 << 20,
            "queued.min.messages": 200_000,
            "queued.max.messages.kbytes": 16 << 10,
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

    def consumer(self) -> Consumer:
        return Consumer(self.consumer_config())

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
