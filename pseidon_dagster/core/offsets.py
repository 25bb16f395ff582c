"""Kafka offsets, run plans and run locks in Redis.

Keys (G = :etl-group), compatible with the original pseidon-etl so a site can migrate:
    /G/offsets/<topic>/<partition>   the next offset to read, a plain integer
and new here:
    /G/plans/<topic>                 the plan of the run in flight (JSON), stored before reading, cleared on commit
    /G/locks/<topic>                 a run lock with a TTL, so two runs of one log never overlap
"""
from __future__ import annotations

import dataclasses
import json
import time
import uuid

import redis

from .config import RedisSettings


class OffsetError(RuntimeError):
    pass


class LockedError(RuntimeError):
    pass


@dataclasses.dataclass(frozen=True)
class Plan:
    """What one run reads: per Kafka partition [start, end)."""

    log: str
    ranges: dict[int, tuple[int, int]]
    created_ms: int
    plan_id: str
    lost: dict[int, tuple[int, int]] = dataclasses.field(default_factory=dict)
    # Everything that decides file names and contents (format, paths, cut rules, timestamp window), frozen at
    # planning time so a replay writes exactly the same files even if the row or the config changed meanwhile.
    params: dict = dataclasses.field(default_factory=dict)

    @property
    def messages(self) -> int:
        return sum(e - s for s, e in self.ranges.values())

    def to_json(self) -> str:
        return json.dumps({
            "log": self.log, "created_ms": self.created_ms, "plan_id": self.plan_id,
            "ranges": {str(p): [s, e] for p, (s, e) in sorted(self.ranges.items())},
            "lost": {str(p): [s, e] for p, (s, e) in sorted(self.lost.items())},
            "params": self.params,
        }, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Plan":
        d = json.loads(text)
        return cls(
            log=d["log"], created_ms=int(d["created_ms"]), plan_id=d["plan_id"],
            ranges={int(p): (int(s), int(e)) for p, (s, e) in d["ranges"].items()},
            lost={int(p): (int(s), int(e)) for p, (s, e) in d.get("lost", {}).items()},
            params=d.get("params", {}),
        )


def start_offset(stored: int | None, low: int, high: int, use_earliest: bool) -> int:
    """Where a partition's next read starts: the stored offset, or on first sight the low watermark
    (:kafka-use-earliest) or the high one. Not clamped: below `low` means expired data, above `high` an error."""
    if stored is not None:
        return stored
    return low if use_earliest else high


def connect(settings: RedisSettings) -> redis.Redis:
    common = dict(password=settings.password, socket_timeout=settings.timeout_s,
                  socket_connect_timeout=settings.timeout_s, decode_responses=True)
    if settings.cluster:
        from redis.cluster import ClusterNode, RedisCluster

        return RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in settings.hosts], **common)
    host, port = settings.hosts[0]
    return redis.Redis(host=host, port=port, db=settings.db, **common)


class OffsetStore:
    def __init__(self, client: redis.Redis, group: str):
        self.r = client
        self.group = group

    # keys -----------------------------------------------------------------------------------------------------
    def offset_key(self, topic: str, partition: int) -> str:
        return f"/{self.group}/offsets/{topic}/{partition}"

    def plan_key(self, topic: str) -> str:
        return f"/{self.group}/plans/{topic}"

    def lock_key(self, topic: str) -> str:
        return f"/{self.group}/locks/{topic}"

    # offsets --------------------------------------------------------------------------------------------------
    def get(self, topic: str, partitions: list[int]) -> dict[int, int | None]:
        if not partitions:
            return {}
        values = [self.r.get(self.offset_key(topic, p)) for p in partitions]
        out: dict[int, int | None] = {}
        for p, v in zip(partitions, values):
            if v is None:
                out[p] = None
                continue
            try:
                out[p] = int(v)
            except ValueError:
                raise OffsetError(f"Redis key {self.offset_key(topic, p)} holds {v!r}, not an integer offset") from None
        return out

    def set(self, topic: str, offsets: dict[int, int]) -> None:
        for p, o in sorted(offsets.items()):
            self.r.set(self.offset_key(topic, p), int(o))

    def all_offsets(self, topic: str) -> dict[int, int]:
        prefix = self.offset_key(topic, 0)[:-1]
        out = {}
        for key in self.r.scan_iter(match=f"{prefix}*", count=1000):
            tail = key[len(prefix):]
            if tail.isdigit():
                out[int(tail)] = int(self.r.get(key))
        return out

    # plans ----------------------------------------------------------------------------------------------------
    def load_plan(self, topic: str) -> Plan | None:
        raw = self.r.get(self.plan_key(topic))
        return Plan.from_json(raw) if raw else None

    def save_plan(self, plan: Plan) -> None:
        self.r.set(self.plan_key(plan.log), plan.to_json())

    def clear_plan(self, topic: str) -> None:
        self.r.delete(self.plan_key(topic))

    def commit(self, plan: Plan) -> None:
        """Store each partition's end offset, then clear the plan. Idempotent: re-committing writes the same values."""
        self.set(plan.log, {p: e for p, (_, e) in plan.ranges.items()})
        self.clear_plan(plan.log)

    # locks ----------------------------------------------------------------------------------------------------
    def acquire(self, topic: str, ttl_s: int = 600, token: str | None = None) -> str:
        """Take the log's run lock. With a TOKEN the lock is re-entrant for that token: a retry of a run that died
        holding it (same token, e.g. Dagster's root run id) takes it over instead of waiting for the TTL."""
        token = token or uuid.uuid4().hex
        if not self.r.set(self.lock_key(topic), token, nx=True, ex=ttl_s):
            if self.r.get(self.lock_key(topic)) == token:
                self.r.expire(self.lock_key(topic), ttl_s)
                return token
            holder_ttl = self.r.ttl(self.lock_key(topic))
            raise LockedError(f"log {topic!r} is being ingested by another run (lock {self.lock_key(topic)}, "
                              f"expires in {holder_ttl}s)")
        return token

    def refresh(self, topic: str, token: str, ttl_s: int = 600) -> None:
        if self.r.get(self.lock_key(topic)) == token:
            self.r.expire(self.lock_key(topic), ttl_s)

    def release(self, topic: str, token: str) -> None:
        if self.r.get(self.lock_key(topic)) == token:
            self.r.delete(self.lock_key(topic))


def now_ms() -> int:
    return time.time_ns() // 1_000_000
