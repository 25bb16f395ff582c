"""A log's state in Redis: Kafka offsets, the plan in flight with its manifest of published files, the staged result
between a run's steps, and committed results not yet reported to Dagster. The run lease lives in lease.py.

Keys (G = :etl-group). The offsets keep the original pseidon-etl's names, so a site can migrate:
    /G/offsets/<log>/<partition>   the next offset to read, a plain integer
Per-log state shares the hash tag {<log>}, so on a Redis Cluster every key a Lua script touches is in one slot:
    /G/{<log>}/lease               the run lease "<token>|<owner>", with a short TTL (lease.py)
    /G/{<log>}/lease-seq           the fencing token counter (only increases)
    /G/{<log>}/plan                the plan in flight (JSON), stored before reading, cleared by the commit
    /G/{<log>}/manifest            every temporary and final path any attempt of the plan created (a set)
    /G/{<log>}/staged              what the current attempt staged (files, counts), read by the register/commit steps
    /G/{<log>}/unreported          committed results Dagster has not reported yet (a list, newest last, capped)
    /G/{<log>}/rebuild             a backfill's hour swaps in progress (rebuild.py), finished by the next run
    /G/{<log>}/reset-floor         offsets as they stood before a reset moved them back (cleared when passed)

Every write that matters is fenced: a Lua script checks that the caller still holds the lease (its exact value) in
the same atomic step. Offsets only move forward on commit.

Long because each Redis key's reads sit beside the fenced Lua script that writes it: split, a key would be
separated from the script that guards it.

connect() makes clients with decode_responses=True: every reply is a str, where redis-py's types say `bytes | str`
(they cannot see the flag); the reads below cast to str where they take a reply.
"""
from __future__ import annotations

import builtins
import contextlib
import dataclasses
import json
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias, cast

import redis

from .config import RedisSettings
from .model import IngestResult, Plan

if TYPE_CHECKING:
    from redis.cluster import RedisCluster

    from .lease import Lease

RedisClient: TypeAlias = "redis.Redis | RedisCluster"  # what connect() makes

__all__ = ["OffsetStore", "LogState", "OffsetError", "LockedError", "LeaseLost", "Plan", "RedisUnavailable", "connect",
           "now_ms", "start_offset"]

UNREPORTED_KEEP = 50
MGET_CHUNK = 10_000  # keys per MGET of a batched read (the MGETs of one read share one round trip)


class OffsetError(RuntimeError):
    pass


class LockedError(RuntimeError):
    """The log's lease is held by another run (after waiting for it)."""


class LeaseLost(RuntimeError):
    """This run no longer holds the log's lease (it expired or another run took it): it must stop, and nothing it
    does from here on is committed."""


class RedisUnavailable(redis.ConnectionError):
    """Redis did not answer (refused, reset, timed out) while a run needed it. The message names the server and the
    step; a redis.ConnectionError, so callers that handle Redis errors handle it as before."""


@contextlib.contextmanager
def answering(client: RedisClient, what: str) -> Iterator[None]:
    """Turn a connection error or timeout of CLIENT into RedisUnavailable naming the server and WHAT was being done."""
    try:
        yield
    except RedisUnavailable:
        raise
    except (redis.ConnectionError, redis.TimeoutError) as e:
        raise RedisUnavailable(f"{redis_where(client)} did not answer while trying to {what}: {e}") from e


def start_offset(stored: int | None, low: int, high: int, use_earliest: bool) -> int:
    """Where a partition of a log that has never stored an offset starts: the low watermark with
    :kafka-use-earliest, else the high one. (Partitions added to a log that already has offsets start at their low
    watermark: see start_offsets.) Not clamped: below `low` means expired data, above `high` an error."""
    if stored is not None:
        return stored
    return low if use_earliest else high


def start_offsets(stored: dict[int, int | None], marks: dict[int, tuple[int, int]], use_earliest: bool,
                  lake: dict[int, int] | None = None) -> tuple[dict[int, int], dict[int, str]]:
    """Where each partition's next read starts, and a note for those not simply at their stored offset. LAKE: the
    file names' end offsets, when the log has no offsets at all (None when not looked at)."""
    starts: dict[int, int] = {}
    notes: dict[int, str] = {}
    any_stored = any(v is not None for v in stored.values())
    for p, (lo, hi) in sorted(marks.items()):
        offset = stored.get(p)
        if offset is not None:
            starts[p] = offset
        elif any_stored:
            starts[p] = lo
            notes[p] = f"new partition: no offset stored while others are, starting at its low watermark {lo}"
        elif lake:
            starts[p] = lake.get(p, lo)
            notes[p] = (f"no offsets in Redis: resuming after the lake's files at {starts[p]}" if p in lake else
                        f"no offsets in Redis and no files of this partition in the lake: low watermark {lo}")
        else:
            starts[p] = start_offset(None, lo, hi, use_earliest)
    return starts, notes


def connect(settings: RedisSettings) -> RedisClient:
    common: dict[str, Any] = dict(password=settings.password, socket_timeout=settings.timeout_s,
                                  socket_connect_timeout=settings.timeout_s, decode_responses=True)
    if settings.cluster:
        from redis.cluster import ClusterNode, RedisCluster

        return RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in settings.hosts], **common)
    host, port = settings.hosts[0]
    return redis.Redis(host=host, port=port, db=settings.db, **common)


def redis_where(client: RedisClient) -> str:
    """'Redis at host:port' for error messages (never the password)."""
    try:
        if hasattr(client, "get_nodes"):
            return "Redis Cluster at " + ",".join(f"{n.host}:{n.port}" for n in client.get_nodes()[:3])
        kw = client.connection_pool.connection_kwargs
        return f"Redis at {kw.get('host')}:{kw.get('port')}"
    except Exception:  # noqa: BLE001 - only for a message
        return "Redis"


# Fenced writes: ARGV[1] is the caller's lease value; nothing happens unless the lease still holds exactly it.
_SET_IF_HOLDER = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
return 1
"""
_SADD_IF_HOLDER = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if tonumber(redis.call('PTTL', KEYS[1])) < tonumber(ARGV[2]) then return -1 end
for i = 3, #ARGV do redis.call('SADD', KEYS[2], ARGV[i]) end
return 1
"""
# Single Redis: check the lease and the plan, move every offset forward, clear the plan's state and queue the result
# for Dagster -- one atomic step.
_COMMIT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 'lease' end
local plan = redis.call('GET', KEYS[2])
if not plan or cjson.decode(plan)['plan_id'] ~= ARGV[2] then return 'plan' end
for i = 6, #KEYS do
  local cur = redis.call('GET', KEYS[i])
  if cur and tonumber(cur) and tonumber(cur) > tonumber(ARGV[i - 1]) then return 'behind:' .. KEYS[i] .. '=' .. cur end
end
for i = 6, #KEYS do redis.call('SET', KEYS[i], ARGV[i - 1]) end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
redis.call('RPUSH', KEYS[5], ARGV[3])
redis.call('LTRIM', KEYS[5], -tonumber(ARGV[4]), -1)
return 'ok'
"""
# Redis Cluster: the offsets live in other slots than the lease, so the commit is three steps -- check the lease and
# the plan; move each offset forward (never backwards, so a late writer cannot undo a newer commit); clear the plan
# and queue the result. A crash between them leaves a plan whose offsets are committed: the next run sees that and
# finishes the third step (OffsetStore.finish_commit).
_CHECK_PLAN = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 'lease' end
local plan = redis.call('GET', KEYS[2])
if not plan or cjson.decode(plan)['plan_id'] ~= ARGV[2] then return 'plan' end
return 'ok'
"""
_FORWARD = """
local cur = redis.call('GET', KEYS[1])
if cur and tonumber(cur) and tonumber(cur) > tonumber(ARGV[1]) then return cur end
redis.call('SET', KEYS[1], ARGV[1])
return 'ok'
"""
_FINISH = """
local plan = redis.call('GET', KEYS[1])
if not plan or cjson.decode(plan)['plan_id'] ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('RPUSH', KEYS[4], ARGV[2])
redis.call('LTRIM', KEYS[4], -tonumber(ARGV[3]), -1)
return 1
"""


class OffsetStore:
    def __init__(self, client: RedisClient, group: str):
        self.r = client
        self.group = group
        self.cluster = hasattr(client, "get_nodes")
        self._set_if_holder = client.register_script(_SET_IF_HOLDER)
        self._sadd_if_holder = client.register_script(_SADD_IF_HOLDER)
        self._commit = client.register_script(_COMMIT)
        self._check_plan = client.register_script(_CHECK_PLAN)
        self._forward = client.register_script(_FORWARD)
        self._finish = client.register_script(_FINISH)

    @property
    def where(self) -> str:
        return redis_where(self.r)

    # keys -----------------------------------------------------------------------------------------------------
    def offset_key(self, topic: str, partition: int) -> str:
        return f"/{self.group}/offsets/{topic}/{partition}"

    def _state(self, topic: str, name: str) -> str:
        return f"/{self.group}/{{{topic}}}/{name}"

    def plan_key(self, topic: str) -> str:
        return self._state(topic, "plan")

    def lease_key(self, topic: str) -> str:
        return self._state(topic, "lease")

    def lease_seq_key(self, topic: str) -> str:
        return self._state(topic, "lease-seq")

    def manifest_key(self, topic: str) -> str:
        return self._state(topic, "manifest")

    def staged_key(self, topic: str) -> str:
        return self._state(topic, "staged")

    def unreported_key(self, topic: str) -> str:
        return self._state(topic, "unreported")

    def rebuild_key(self, topic: str) -> str:
        return self._state(topic, "rebuild")

    def last_commit_key(self, topic: str) -> str:
        return self._state(topic, "last-commit")

    def save_last_commit(self, topic: str, info: dict) -> None:
        """When the log last committed, when that plan was made, and its messages' average size: what the sensor
        weighs a backlog by (timed batches). Written after the commit; losing it only delays a run."""
        self.r.set(self.last_commit_key(topic), json.dumps(info, sort_keys=True))

    def reset_floor_key(self, topic: str) -> str:
        return self._state(topic, "reset-floor")

    lock_key = lease_key  # the name earlier versions used

    def legacy_plan_key(self, topic: str) -> str:
        return f"/{self.group}/plans/{topic}"

    # offsets --------------------------------------------------------------------------------------------------
    def get(self, topic: str, partitions: list[int]) -> dict[int, int | None]:
        if not partitions:
            return {}
        keys = [self.offset_key(topic, p) for p in partitions]
        with answering(self.r, f"read the stored offsets of {topic}"):
            values = self.r.mget(keys) if not self.cluster else [self.r.get(k) for k in keys]
        out: dict[int, int | None] = {}
        for p, key, v in zip(partitions, keys, values):
            if v is None:
                out[p] = None
                continue
            try:
                out[p] = int(v)
            except ValueError:
                raise OffsetError(f"Redis key {key} holds {v!r}, not an integer offset") from None
        return out

    def read_many(self, logs: dict[str, list[int]]) -> dict[str, LogState]:
        """Per log the stored offsets of the given partitions, the stored plan and the lease holder, in one round
        trip whatever the number of logs: one MGET (several in one pipeline past MGET_CHUNK keys) on Redis; on Redis
        Cluster one MGET per hash slot, pipelined (one round trip per node). Not one atomic snapshot on a cluster,
        nor across logs; each value is one the key held during the read. A value that is not an integer offset makes
        that log's state an OffsetError, not the whole read."""
        keys: list[str] = []
        for log, parts in logs.items():
            keys += [self.lease_key(log), self.plan_key(log), self.legacy_plan_key(log), self.last_commit_key(log)]
            keys += [self.offset_key(log, p) for p in parts]
        if not keys:
            return {}
        with answering(self.r, f"read the stored offsets, plans and leases of {len(logs)} logs"):
            values = self._mget(keys)
        out: dict[str, LogState] = {}
        i = 0
        for log, parts in logs.items():
            lease, plan, legacy, last = values[i:i + 4]
            raw = values[i + 4:i + 4 + len(parts)]
            i += 4 + len(parts)
            stored: dict[int, int | None] = {}
            error = None
            for p, v in zip(parts, raw):
                try:
                    stored[p] = None if v is None else int(v)
                except ValueError:
                    error = OffsetError(f"Redis key {self.offset_key(log, p)} holds {v!r}, not an integer offset")
                    break
            plan_json = plan if plan is not None else legacy
            out[log] = LogState(stored, Plan.from_json(plan_json) if plan_json else None, lease, error,
                                json.loads(last) if last else None)
        return out

    def _mget(self, keys: list[str]) -> list:
        if self.cluster:
            return cast("RedisCluster", self.r).mget_nonatomic(keys)
        if len(keys) <= MGET_CHUNK:
            return self.r.mget(keys)
        pipe = self.r.pipeline(transaction=False)
        for i in range(0, len(keys), MGET_CHUNK):
            pipe.mget(keys[i:i + MGET_CHUNK])
        return [v for chunk in pipe.execute() for v in chunk]

    def set(self, topic: str, offsets: dict[int, int]) -> None:
        """Set offsets as they are (offsets reset; first sight of a partition). Commits go through commit()."""
        with answering(self.r, f"store the offsets of {topic}"):
            for p, o in sorted(offsets.items()):
                self.r.set(self.offset_key(topic, p), int(o))

    def all_offsets(self, topic: str) -> dict[int, int]:
        prefix = self.offset_key(topic, 0)[:-1]
        out = {}
        for key in self.r.scan_iter(match=f"{prefix}*", count=1000):
            tail = key[len(prefix):]
            if tail.isdigit():
                out[int(tail)] = int(cast(str, self.r.get(key)))
        return out

    def has_offsets(self, topic: str) -> bool:
        prefix = self.offset_key(topic, 0)[:-1]
        with answering(self.r, f"read the stored offsets of {topic}"):
            return any(k[len(prefix):].isdigit() for k in self.r.scan_iter(match=f"{prefix}*", count=1000))

    # plans ----------------------------------------------------------------------------------------------------
    def load_plan(self, topic: str) -> Plan | None:
        with answering(self.r, f"read the stored plan of {topic}"):
            raw = cast("str | None", self.r.get(self.plan_key(topic)))
            if raw is None:  # a plan stored by a version before the lease keys
                raw = cast("str | None", self.r.get(self.legacy_plan_key(topic)))
        return Plan.from_json(raw) if raw else None

    def save_plan(self, plan: Plan, lease: Lease) -> None:
        self._fenced(self._set_if_holder, lease, [self.plan_key(plan.log)], [plan.to_json()], "store the plan")
        self.r.delete(self.legacy_plan_key(plan.log))

    def clear_plan(self, topic: str) -> None:
        """Drop the plan and its state (offsets reset; a plan found committed). The caller holds the lease."""
        self.r.delete(self.plan_key(topic), self.manifest_key(topic), self.staged_key(topic),
                      self.legacy_plan_key(topic))

    # manifest: every path an attempt creates, recorded *before* it is created ------------------------------------
    def record_paths(self, topic: str, lease: Lease, temps: Sequence[str] = (),
                     finals: Sequence[str] = ()) -> None:
        entries = [f"t:{p}" for p in temps] + [f"f:{p}" for p in finals]
        if entries:
            self._fenced(self._sadd_if_holder, lease, [self.manifest_key(topic)],
                         [str(lease.min_remaining_ms), *entries], "publish files")

    def manifest(self, topic: str) -> tuple[builtins.set[str], builtins.set[str]]:  # `set` is a method here
        """(temporary paths, final paths) recorded by every attempt of the plan in flight."""
        temps: set[str] = set()
        finals: set[str] = set()
        with answering(self.r, f"read the manifest of {topic}'s published files"):
            entries = cast("set[str]", self.r.smembers(self.manifest_key(topic)))
        for e in entries:
            (temps if e.startswith("t:") else finals).add(e[2:])
        return temps, finals

    # staged result (between the stage, register and commit steps) --------------------------------------------
    def save_staged(self, result: IngestResult, lease: Lease) -> None:
        self._fenced(self._set_if_holder, lease, [self.staged_key(result.log)], [result.to_record()],
                     "record the staged files")

    def load_staged(self, topic: str, plan_id: str | None = None) -> IngestResult | None:
        with answering(self.r, f"read the staged files of {topic}"):
            raw = cast("str | None", self.r.get(self.staged_key(topic)))
        if raw is None:
            return None
        result = IngestResult.from_record(raw)
        return result if plan_id is None or result.plan_id == plan_id else None

    # commit -----------------------------------------------------------------------------------------------------
    def commit(self, plan: Plan, result: IngestResult, lease: Lease) -> None:
        """Store each partition's end offset, clear the plan and its state and queue the result for reporting, if
        and only if this run still holds the lease and the plan is still the stored one."""
        with answering(self.r, f"commit the offsets of plan {plan.plan_id}"):
            self._commit_plan(plan, result, lease)

    def _commit_plan(self, plan: Plan, result: IngestResult, lease: Lease) -> None:
        topic = plan.log
        parts = sorted(plan.ranges)
        record = result.to_record()
        if not self.cluster:
            keys = [self.lease_key(topic), self.plan_key(topic), self.manifest_key(topic), self.staged_key(topic),
                    self.unreported_key(topic)] + [self.offset_key(topic, p) for p in parts]
            args: list[str | int] = [lease.value, plan.plan_id, record, UNREPORTED_KEEP,
                                     *(plan.ranges[p][1] for p in parts)]
            self._commit_answer(self._commit(keys=keys, args=args), plan, lease)
            return
        ok = self._check_plan(keys=[self.lease_key(topic), self.plan_key(topic)], args=[lease.value, plan.plan_id])
        self._commit_answer(ok, plan, lease)
        for p in parts:
            answer = self._forward(keys=[self.offset_key(topic, p)], args=[plan.ranges[p][1]])
            if answer != "ok":
                raise OffsetError(f"{topic}[{p}]: the stored offset {answer} is past this plan's end "
                                  f"{plan.ranges[p][1]}; it was moved while the run held the lease (offsets reset "
                                  f"without the lease?); nothing more committed")
        self.finish_commit(plan, result)

    def finish_commit(self, plan: Plan, result: IngestResult) -> None:
        topic = plan.log
        self._finish(keys=[self.plan_key(topic), self.manifest_key(topic), self.staged_key(topic),
                           self.unreported_key(topic)], args=[plan.plan_id, result.to_record(), UNREPORTED_KEEP])

    def _commit_answer(self, answer: str, plan: Plan, lease: Lease) -> None:
        if answer == "ok":
            return
        if answer == "lease":
            lease.mark_lost("commit")
            raise LeaseLost(f"{plan.log}: this run lost its lease (token {lease.token}) before committing plan "
                            f"{plan.plan_id}; nothing committed")
        if answer == "plan":
            found = self.load_plan(plan.log)
            raise OffsetError(f"{plan.log}: the stored plan is {found.plan_id if found else 'none'}, not "
                              f"{plan.plan_id}; nothing committed (another run took over?)")
        raise OffsetError(f"{plan.log}: the stored offset {answer.split(':', 1)[1]} is past plan {plan.plan_id}'s "
                          f"end; nothing committed (offsets moved while the run held the lease?)")

    # offsets moved back by a reset: where they stood before (ingest must not publish over the lake's files) ----
    def load_reset_floor(self, topic: str) -> dict[int, int]:
        raw = cast("str | None", self.r.get(self.reset_floor_key(topic)))
        return {int(p): int(o) for p, o in json.loads(raw).items()} if raw else {}

    def save_reset_floor(self, topic: str, floor: dict[int, int]) -> None:
        if floor:
            self.r.set(self.reset_floor_key(topic), json.dumps({str(p): o for p, o in floor.items()}))
        else:
            self.r.delete(self.reset_floor_key(topic))

    # a rebuild's hour swaps in progress (rebuild.py) --------------------------------------------------------------
    def load_rebuild(self, topic: str) -> dict | None:
        raw = cast("str | None", self.r.get(self.rebuild_key(topic)))
        return json.loads(raw) if raw else None

    def save_rebuild(self, topic: str, state: dict, lease: Lease) -> None:
        self._fenced(self._set_if_holder, lease, [self.rebuild_key(topic)], [json.dumps(state, sort_keys=True)],
                     "record the rebuild's progress")

    def clear_rebuild(self, topic: str, lease: Lease) -> None:
        lease.check()
        self.r.delete(self.rebuild_key(topic))

    # results not yet reported to Dagster ------------------------------------------------------------------------
    def unreported(self, topic: str) -> list[IngestResult]:
        return [IngestResult.from_record(r) for r in self._list(self.unreported_key(topic))]

    def mark_reported(self, topic: str, plan_id: str) -> None:
        for raw in self._list(self.unreported_key(topic)):
            if json.loads(raw).get("plan_id") == plan_id:
                self.r.lrem(self.unreported_key(topic), 1, raw)

    # ------------------------------------------------------------------------------------------------------------
    def _list(self, key: str) -> list[str]:
        return cast("list[str]", self.r.lrange(key, 0, -1))

    def _fenced(self, script, lease: Lease, keys: list[str], args: list, what: str) -> None:
        with answering(self.r, what):
            answer = script(keys=[self.lease_key(lease.log), *keys], args=[lease.value, *args])
        if answer == 1:
            return
        lease.mark_lost(what)
        why = "is about to expire (renewals are failing)" if answer == -1 else "is held by another run now"
        raise LeaseLost(f"{lease.log}: cannot {what}: this run's lease (token {lease.token}) {why}; nothing committed")


@dataclasses.dataclass(frozen=True)
class LogState:
    """What read_many found for one log."""

    stored: dict[int, int | None]  # per partition asked for: the stored offset, None when there is none
    plan: Plan | None  # a stored plan (a run planned, maybe published files, and did not commit)
    lease: str | None  # the lease value "<token>|<owner>" while a run holds it
    error: OffsetError | None = None  # a stored offset that is not an integer
    last_commit: dict | None = None  # OffsetStore.save_last_commit


def now_ms() -> int:
    return time.time_ns() // 1_000_000
