"""The run lease of a log: at most one run (tail ingest, backfill, offsets reset) works on a log at a time.

- A lease is a Redis key with a short TTL (:lease-ttl-ms, default 30 s), renewed by a background thread for as long
  as the run works -- reading, waiting for the Hive pool, registering, committing. A crashed holder's lease lapses
  within its TTL, so the next run needs no manual step.
- A run that finds the lease held waits for it (up to the TTL + a margin), saying so, instead of failing.
- Every lease carries a fencing token from an only-increasing counter (INCR). Saving a plan, publishing a file and
  committing are Lua scripts that check the exact lease value in the same atomic step (offsets.py), so a run that
  lost its lease can never commit or overwrite. A renewal that finds the lease taken marks it lost; the run stops at
  its next check.
- Re-entrant for one owner: a Dagster run's steps and its retries share the root run's owner name, so a retry takes
  over a lease its dead predecessor held (with a new token) instead of waiting for it to lapse.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable

import redis

from .offsets import LeaseLost, LockedError, OffsetStore, answering

log = logging.getLogger(__name__)

DEFAULT_TTL_S = 30.0
WAIT_MARGIN_S = 10.0

# Take the lease if it is free or held by the same owner; return {1, token} or {0, holder value, pttl}.
_ACQUIRE = """
local cur = redis.call('GET', KEYS[1])
if cur then
  local bar = string.find(cur, '|', 1, true)
  if not bar or string.sub(cur, bar + 1) ~= ARGV[1] then return {0, cur, redis.call('PTTL', KEYS[1])} end
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], token .. '|' .. ARGV[1], 'PX', ARGV[2])
return {1, tostring(token)}
"""
_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
"""

# Leases this process holds, by (group, log, owner): the steps of one Dagster run (separate ops in one process)
# continue the lease the first step took.
_HELD: dict[tuple[str, str, str], Lease] = {}
_HELD_LOCK = threading.Lock()


def new_owner(kind: str = "cli") -> str:
    return f"{kind}:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Lease:
    def __init__(self, store: OffsetStore, log: str, owner: str, token: int, ttl_s: float):
        self.store = store
        self.log = log
        self.owner = owner
        self.token = token
        self.ttl_ms = max(1000, int(ttl_s * 1000))
        self.value = f"{token}|{owner}"
        self.lost = threading.Event()
        self.lost_reason = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"Lease({self.log!r}, token={self.token}, owner={self.owner!r})"

    @property
    def min_remaining_ms(self) -> int:
        """A fenced publish needs at least this much lease left, so the rename that follows the check finishes well
        before the lease could lapse."""
        return self.ttl_ms // 3

    # acquire ---------------------------------------------------------------------------------------------------
    @classmethod
    def acquire(cls, store: OffsetStore, log: str, owner: str | None = None, ttl_s: float = DEFAULT_TTL_S,
                wait_s: float | None = None, notify: Callable[[str], None] | None = None) -> Lease:
        """Take the log's lease, waiting up to WAIT_S (default: the TTL + a margin) while another run holds it.
        Raises LockedError when it is still held after that."""
        owner = owner or new_owner()
        with _HELD_LOCK:
            held = _HELD.get((store.group, log, owner))
        if held is not None and not held.lost.is_set():
            return held
        wait_s = ttl_s + WAIT_MARGIN_S if wait_s is None else wait_s
        notify = notify or log_warning
        script = store.r.register_script(_ACQUIRE)
        keys = [store.lease_key(log), store.lease_seq_key(log)]
        deadline = time.monotonic() + wait_s
        told = 0.0
        while True:
            with answering(store.r, f"take the lease of log {log!r}"):
                answer = script(keys=keys, args=[owner, max(1000, int(ttl_s * 1000))])
            if int(answer[0]) == 1:
                lease = cls(store, log, owner, int(answer[1]), ttl_s)
                lease._start()
                with _HELD_LOCK:
                    _HELD[(store.group, log, owner)] = lease
                return lease
            holder, pttl = answer[1], int(answer[2])
            now = time.monotonic()
            if now >= deadline:
                raise LockedError(
                    f"log {log!r} is being worked on by another run (lease {store.lease_key(log)} held by "
                    f"{_show(holder)}, expires in {max(pttl, 0) / 1000:.0f}s); waited {wait_s:.0f}s")
            if now - told >= 10:
                notify(f"{log}: waiting for the lease held by {_show(holder)} (expires in {max(pttl, 0) / 1000:.0f}s "
                       f"unless renewed; waiting up to {deadline - now:.0f}s more)")
                told = now
            time.sleep(min(0.5, max(0.05, deadline - now)))

    @classmethod
    def held(cls, store: OffsetStore, log: str, owner: str) -> Lease | None:
        with _HELD_LOCK:
            lease = _HELD.get((store.group, log, owner))
        return lease if lease is not None and not lease.lost.is_set() else None

    # use ---------------------------------------------------------------------------------------------------------
    def check(self) -> None:
        """Raise LeaseLost if the renewal found the lease gone or taken."""
        if self.lost.is_set():
            raise LeaseLost(f"{self.log}: this run lost its lease ({self.lost_reason}); stopping, nothing committed")

    def mark_lost(self, what: str) -> None:
        if not self.lost.is_set():
            self.lost_reason = f"found while trying to {what}"
            self.lost.set()
            log.error("%s: lease token %d lost (%s); the run stops and commits nothing", self.log, self.token,
                      self.lost_reason)
        self._forget()

    def release(self) -> None:
        self._stop.set()
        self._forget()
        try:
            self.store.r.register_script(_RELEASE)(keys=[self.store.lease_key(self.log)], args=[self.value])
        except redis.RedisError as e:  # it lapses by itself within its TTL
            log.warning("%s: could not release the lease (%s); it lapses within %ds", self.log, e,
                        self.ttl_ms // 1000)

    # renewal -------------------------------------------------------------------------------------------------------
    def _start(self) -> None:
        self._thread = threading.Thread(target=self._renew_loop, name=f"lease-{self.log}", daemon=True)
        self._thread.start()

    def _renew_loop(self) -> None:
        renew = self.store.r.register_script(_RENEW)
        interval = self.ttl_ms / 3000
        last_ok = time.monotonic()
        wait = interval
        while not self._stop.wait(wait):
            try:
                ok = renew(keys=[self.store.lease_key(self.log)], args=[self.value, self.ttl_ms])
            except redis.RedisError as e:
                if time.monotonic() - last_ok > self.ttl_ms / 1000:
                    self._lose(f"could not renew it for {self.ttl_ms // 1000}s: {e}")
                    return
                wait = min(1.0, interval)
                continue
            if ok != 1:
                self._lose("another run holds it now")
                return
            last_ok = time.monotonic()
            wait = interval

    def _lose(self, why: str) -> None:
        self.lost_reason = why
        self.lost.set()
        log.error("%s: lease token %d lost: %s; the run stops and commits nothing", self.log, self.token, why)
        self._forget()

    def _forget(self) -> None:
        with _HELD_LOCK:
            if _HELD.get((self.store.group, self.log, self.owner)) is self:
                del _HELD[(self.store.group, self.log, self.owner)]


def _show(holder: str) -> str:
    token, _, owner = holder.partition("|")
    return f"{owner or '?'} (token {token})"


def log_warning(message: str) -> None:
    log.warning(message)
