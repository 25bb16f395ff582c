"""What the Dagster sensor measures and decides (plain Python, no Dagster): per log, Kafka's high watermarks against
the offsets stored in Redis. Cheap and bounded: metadata and watermark requests with short timeouts, batched over
all the logs of a tick (measure_many: a constant number of Kafka requests and one Redis round trip, however many
logs); it never reads a message and never writes to Redis (offsets are committed only by the run's last step)."""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json

from confluent_kafka import Consumer

from .config import Settings
from .kafka import KafkaSource, TopicNotFound
from .offsets import OffsetError, OffsetStore, start_offsets

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
    last_commit: dict | None = None  # when the log last committed and its messages' average size (timed batches)

    @functools.cached_property
    def starts(self) -> dict[int, int]:
        """Where a run would start reading, by the planner's rule (a log without any offset that has files in the
        lake resumes after them; the sensor does not look, so it counts such a log as new)."""
        return start_offsets(self.stored, self.marks, self.use_earliest)[0]

    @functools.cached_property
    def lag(self) -> int:
        starts = self.starts
        return sum(max(0, hi - max(starts[p], lo)) for p, (lo, hi) in self.marks.items())

    @functools.cached_property
    def busiest(self) -> int:
        """The largest backlog of one Kafka partition (a file holds one partition's messages of one hour)."""
        starts = self.starts
        return max((max(0, hi - max(starts[p], lo)) for p, (lo, hi) in self.marks.items()), default=0)

    @property
    def unset(self) -> list[int]:
        """Partitions without a stored offset. A first run must pin where they start, else every later run would
        start again from 'latest' (or the low watermark of a new partition could move) and skip data."""
        return sorted(p for p in self.marks if self.stored.get(p) is None)

    @property
    def beyond(self) -> list[int]:
        """Partitions whose stored offset is past the high watermark (the topic was re-created?)."""
        return sorted(p for p, (_, hi) in self.marks.items() if (self.stored.get(p) or 0) > hi)

    @functools.cached_property
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


@dataclasses.dataclass(frozen=True)
class Probe:
    """One log's part of a batched measurement: its LogLag, or why there is none (its lease is held by a run, which
    the sensor leaves alone; its topic does not exist; a stored offset is not an integer)."""

    log: str
    lag: LogLag | None = None
    lease: str | None = None  # the lease value "<token>|<owner>" when a run holds it
    error: TopicNotFound | OffsetError | None = None


def measure_many(logs: list[str], kafka: KafkaSource, store: OffsetStore, *, admin=None,
                 partitions: dict[str, list[int] | None] | None = None, skip_leased: bool = True,
                 consumer: Consumer | None = None) -> dict[str, Probe]:
    """Measure LOGS with a number of requests that does not grow with their number: one metadata request for all
    their topics (unless PARTITIONS, from KafkaSource.topic_partitions, is given), one Redis round trip for every
    stored offset, plan and lease (OffsetStore.read_many), and batched ListOffsets requests for the watermarks
    (KafkaSource.watermarks_many) of the logs that are not leased (SKIP_LEASED) and have a topic. Redis is read
    before Kafka, so a stored offset is never newer than the watermarks it is compared with.

    Raises KafkaUnavailable or redis.RedisError (the whole batch is unknown); per-log problems are in the Probes.
    """
    if not logs:
        return {}
    if admin is None:
        admin = kafka.admin()  # no close(): an AdminClient is freed with its last reference
    if partitions is None:
        partitions = kafka.topic_partitions(logs, admin)
    states = store.read_many({log: partitions.get(log) or [] for log in logs})
    out: dict[str, Probe] = {}
    wanted: dict[str, list[int]] = {}
    for log in logs:
        st = states[log]
        parts = partitions.get(log)
        if skip_leased and st.lease is not None:
            out[log] = Probe(log, lease=st.lease)
        elif parts is None:
            out[log] = Probe(log, lease=st.lease, error=TopicNotFound(
                f"topic {log!r} does not exist on {kafka.settings.bootstrap_servers}"))
        elif st.error is not None:
            out[log] = Probe(log, lease=st.lease, error=st.error)
        else:
            wanted[log] = parts
    marks = kafka.watermarks_many(wanted, admin, consumer)
    for log in wanted:
        st = states[log]
        out[log] = Probe(log, LogLag(log, st.stored, marks[log], st.plan.plan_id if st.plan else None,
                                     kafka.settings.kafka_use_earliest, st.last_commit), lease=st.lease)
    return out


def measure(log: str, kafka: KafkaSource, store: OffsetStore, consumer: Consumer | None = None) -> LogLag:
    """One log (measure_many of one). Raises KafkaUnavailable / TopicNotFound (core.kafka), OffsetError or
    redis.RedisError; never blocks beyond the timeouts."""
    probe = measure_many([log], kafka, store, skip_leased=False, consumer=consumer)[log]
    if probe.error is not None:
        raise probe.error
    assert probe.lag is not None  # not skip_leased: a probe without an error has its lag
    return probe.lag


@dataclasses.dataclass(frozen=True)
class Decision:
    run: bool
    reason: str
    waiting_since_ms: int | None = None  # kept in the sensor's cursor while a small lag waits


def decide(m: LogLag, settings: Settings, now_ms: int, waiting_since_ms: int | None) -> Decision:
    """Run when a stored plan waits for its replay, or -- timed batches, so that a run makes files worth having --
    when the waiting messages of one Kafka partition make a file's worth of bytes (:sensor-min-bytes, default :writer
    :rollover-size, at the average size of the log's last run; a file holds one partition's messages of an hour), or
    when the oldest of them has waited :sensor-max-wait-ms (default the :writer rollover timeout), whichever comes
    first; or at :sensor-min-lag waiting messages when that is set (the demo: at once). Also to pin the start
    offsets of a new log. The wait is counted from the first tick that saw the messages, never earlier than the plan
    of the last commit (they arrived after it)."""
    if m.beyond:
        return Decision(False, f"stored offsets of partitions {m.beyond} are beyond Kafka's high watermark (topic "
                               f"re-created?); fix with `pseidon-dagster offsets reset {m.log}`")
    if m.plan_id:
        return Decision(True, f"replay stored plan {m.plan_id} (a run did not commit)")
    lag = m.lag
    if settings.sensor_min_lag is not None and lag >= settings.sensor_min_lag:
        return Decision(True, f"lag {lag} >= :sensor-min-lag {settings.sensor_min_lag}")
    if lag > 0:
        per_message = (m.last_commit or {}).get("bytes_per_message")
        if per_message and m.busiest * per_message >= settings.batch_bytes:
            return Decision(True, f"lag {lag}, {m.busiest} in one partition ~ {m.busiest * per_message / 1e6:.1f} MB"
                                  f" >= a file's worth ({settings.batch_bytes / 1e6:.1f} MB)")
        since = waiting_since_ms if waiting_since_ms is not None else now_ms
        if m.last_commit and m.last_commit.get("plan_ms"):
            since = max(since, int(m.last_commit["plan_ms"]))
        waited = now_ms - since
        if waited >= settings.max_wait_ms:
            return Decision(True, f"lag {lag} waited {waited // 1000}s >= max wait {settings.max_wait_ms // 1000}s")
        size = (f" (busiest partition ~{m.busiest * per_message / 1e6:.1f} of {settings.batch_bytes / 1e6:.0f} MB)"
                if per_message else "")
        return Decision(False, f"lag {lag}{size} waiting {waited // 1000}s of {settings.max_wait_ms // 1000}s", since)
    if m.unset and not m.use_earliest and not any(v is not None for v in m.stored.values()):
        return Decision(True, f"first run: pin the start offsets of partitions {m.unset} to the high watermark")
    return Decision(False, "no lag")
