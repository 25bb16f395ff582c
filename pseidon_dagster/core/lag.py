"""What the Dagster sensor measures and decides (plain Python, no Dagster): per log, Kafka's high watermarks against the offsets stored
in Redis. Cheap and bounded: metadata and watermark requests with short timeouts; it never reads a message and
never writes to Redis (offsets are committed only by the run's last step)."""
from __future__ import annotations

import dataclasses
import hashlib
import json

from confluent_kafka import Consumer

from .config import Settings
from .kafka import KafkaSource
from .offsets import OffsetStore

SENSOR_KAFKA_TIMEOUT_S = 3.0
SENSOR_REDIS_TIMEOUT_S = 3.0


def sensor_settings(settings: Settings) -> Settings:
    """The settings with the short timeouts a sensor tick needs (a tick must end well inside Dagster's 60 s)."""
    return dataclasses.replace(
        settings,
        kafka_timeout_s=min(settings.kafka_timeout_s, SENSOR_KAFKA_TIMEOUT_S),
        redis=dataclasses.replace(settings.redis, timeout_s=min(settings.redis.timeout_s, SENSOR_REDIS_TIMEOUT_S)),
    )


@dataclasses.dataclass(frozen=True)
class LogLag:
    """One log's position: per Kafka partition the stored offset (None: never run) and (low, high) watermarks."""

    log: str
    stored: dict[int, int | None]
    marks: dict[int, tuple[int, int]]
    plan_id: str | None  # a stored plan: a run planned, maybe wrote files, and did not commit
    use_earliest: bool

    @property
    def starts(self) -> dict[int, int]:
        """Where a run would start reading, by the planner's rule (a log without any offset that has files in the
        lake resumes after them; the sensor does not look, so it counts such a log as new)."""
        from .ingest.plan import start_offsets

        return start_offsets(self.stored, self.marks, self.use_earliest)[0]

    @property
    def lag(self) -> int:
        starts = self.starts
        return sum(max(0, hi - max(starts[p], lo)) for p, (lo, hi) in self.marks.items())

    @property
    def unset(self) -> list[int]:
        """Partitions without a stored offset. A first run must pin where they start, else every later run would
        start again from 'latest' (or the low watermark of a new partition could move) and skip data."""
        return sorted(p for p in self.marks if self.stored.get(p) is None)

    @property
    def beyond(self) -> list[int]:
        """Partitions whose stored offset is past the high watermark (the topic was re-created?)."""
        return sorted(p for p, (_, hi) in self.marks.items() if (self.stored.get(p) or 0) > hi)

    @property
    def key(self) -> str:
        """Identifies the work: the same stored offsets, high watermarks and stored plan give the same key, so the
        run a key was requested for is never requested twice (and a retry of a failed plan is left to Dagster's
        run retries)."""
        body = json.dumps({
            "stored": {str(p): o for p, o in sorted(self.stored.items())},
            "high": {str(p): hi for p, (_, hi) in sorted(self.marks.items())},
            "plan": self.plan_id,
        }, sort_keys=True)
        return hashlib.sha1(body.encode()).hexdigest()[:16]


def measure(log: str, kafka: KafkaSource, store: OffsetStore, consumer: Consumer | None = None) -> LogLag:
    """Raises KafkaUnavailable / TopicNotFound (core.kafka) or redis.RedisError; never blocks beyond the timeouts."""
    parts = kafka.partitions(log, consumer)
    marks = kafka.watermarks(log, parts, consumer)
    stored = store.get(log, parts)
    plan = store.load_plan(log)
    return LogLag(log, stored, marks, plan.plan_id if plan else None, kafka.settings.kafka_use_earliest)


@dataclasses.dataclass(frozen=True)
class Decision:
    run: bool
    reason: str
    waiting_since_ms: int | None = None  # kept in the sensor's cursor while a small lag waits


def decide(m: LogLag, settings: Settings, now_ms: int, waiting_since_ms: int | None) -> Decision:
    """Run when a stored plan waits for its replay, when the lag reaches :sensor-min-lag, when a smaller lag has
    waited :sensor-max-wait-ms (default: the :writer rollover timeout), or to pin the start offsets of a new log."""
    if m.beyond:
        return Decision(False, f"stored offsets of partitions {m.beyond} are beyond Kafka's high watermark (topic "
                               f"re-created?); fix with `pseidon-dagster offsets reset {m.log}`")
    if m.plan_id:
        return Decision(True, f"replay stored plan {m.plan_id} (a run did not commit)")
    lag = m.lag
    if lag >= settings.sensor_min_lag:
        return Decision(True, f"lag {lag} >= :sensor-min-lag {settings.sensor_min_lag}")
    if lag > 0:
        since = waiting_since_ms if waiting_since_ms is not None else now_ms
        waited = now_ms - since
        if waited >= settings.max_wait_ms:
            return Decision(True, f"lag {lag} waited {waited // 1000}s >= max wait {settings.max_wait_ms // 1000}s")
        return Decision(False, f"lag {lag} < :sensor-min-lag {settings.sensor_min_lag}, waiting "
                               f"{waited // 1000}s of {settings.max_wait_ms // 1000}s", since)
    if m.unset and not m.use_earliest and not any(v is not None for v in m.stored.values()):
        return Decision(True, f"first run: pin the start offsets of partitions {m.unset} to the high watermark")
    return Decision(False, "no lag")
