"""Make a run's plan, or replay the stored one.

A plan is, per Kafka partition, [start, end): from where the log's offsets stand to the high watermark seen now (at
most :max-offsets-per-partition). It is stored in Redis before anything is read, so a failed run's retry replays the
same ranges, and it freezes everything that decides file names and bytes -- the format, the resolved data and
quarantine roots, the cut rules, the timestamp window, the line-break policy and the Parquet schema -- so a replay
writes exactly the same files even if the row or the config changed meanwhile.

Where a partition starts when Redis has no offset for it:
- the log has offsets for other partitions: it is a partition added to the topic -> its low watermark (nothing of
  it was ever read);
- the log has no offsets at all but files in the lake (Redis lost its data): the highest end offset the file names
  record per partition, like Kafka Connect HDFS recovers; partitions without files -> their low watermark;
- a log with neither: :kafka-use-earliest -> low watermark, else the high one (stored at once).
"""
from __future__ import annotations

import base64
import dataclasses
import logging
import os
import uuid

import pyarrow as pa

from ..config import Settings
from ..kafka import KafkaSource
from ..lease import Lease
from ..logtable import LogSpec, confine
from ..model import QUARANTINE_EXT, Plan
from ..offsets import OffsetError, OffsetStore, now_ms, start_offsets
from ..partitioning import FIRST_HOUR, HOUR_MS, LAST_HOUR, FileName
from ..storage import Storage
from .route import QUARANTINE
from .segment import open_per_partition

log = logging.getLogger(__name__)

FROZEN_ROW_FIELDS = ("format", "output_format", "base_partition", "log_partition", "quarantine", "date_format")


class IngestError(RuntimeError):
    pass


def lake_ends(data_root: str, quarantine_root: str, spec: LogSpec) -> dict[int, int]:
    """Per Kafka partition, the highest end offset in the names of the log's published files (data and
    quarantine). Temporary files (hidden names) do not count."""
    ends: dict[int, int] = {}
    for root in (data_root, quarantine_root):
        storage, base = Storage.for_path(root)
        top = f"{base.rstrip('/')}/{spec.log_partition}"
        for path in storage.list_files(top):
            if "/." in path[len(top):]:
                continue  # a backfill's fresh directory
            name = FileName.parse(path.rsplit("/", 1)[-1])
            if name is not None and name.log == spec.log:
                ends[name.partition] = max(ends.get(name.partition, 0), name.end)
    return ends


def resolved_root(settings: Settings, path: str) -> str:
    root = settings.resolve_path(path)
    return root if "://" in root else os.path.abspath(root)


def params_for(settings: Settings, spec: LogSpec, created_ms: int, partitions: int, schema=None) -> dict:
    w = settings.writer
    if w.allow_all_ts:
        lo, hi = FIRST_HOUR * HOUR_MS, (LAST_HOUR + 1) * HOUR_MS - 1
    else:
        lo = max(FIRST_HOUR * HOUR_MS, created_ms - w.ts_window_back_ms)
        hi = min((LAST_HOUR + 1) * HOUR_MS - 1, created_ms + w.ts_window_ahead_ms)
    params = {f: getattr(spec, f) for f in FROZEN_ROW_FIELDS}
    params.update({
        "data_root": resolved_root(settings, spec.base_partition),
        "quarantine_root": resolved_root(settings, spec.quarantine),
        "rollover_size": w.rollover_size, "max_open_files": w.max_open_files,
        "parquet_block_size": w.parquet_block_size,
        "open_per_partition": open_per_partition(w.max_open_files, partitions),
        "ts_lo_ms": lo, "ts_hi_ms": hi,
        "line_breaks": getattr(w, "line_breaks", QUARANTINE),
    })
    if schema is not None:
        params["parquet_schema"] = base64.b64encode(schema.serialize().to_pybytes()).decode("ascii")
    return params


def frozen_schema(params: dict) -> pa.Schema | None:
    raw = params.get("parquet_schema")
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(raw))) if raw else None


def frozen_spec(spec: LogSpec, plan: Plan, settings: Settings) -> LogSpec:
    """SPEC (the row as it is now) with the fields the plan froze, confined to the roots SETTINGS allow now."""
    p = plan.params
    changed = [f for f in FROZEN_ROW_FIELDS if f in p and getattr(spec, f) != p[f]]
    if changed:
        log.warning("log %s: %s changed since plan %s was made; the replay uses the planned values, the next plan "
                    "the new ones", plan.log, ", ".join(changed), plan.plan_id)
    return confine(dataclasses.replace(spec, **{f: p[f] for f in FROZEN_ROW_FIELDS if f in p}), settings)


class Planner:
    def __init__(self, settings: Settings, spec: LogSpec, store: OffsetStore, kafka: KafkaSource, lease: Lease,
                 schema_for=None):
        self.settings = settings
        self.spec = spec
        self.store = store
        self.kafka = kafka
        self.lease = lease
        self.schema_for = schema_for  # () -> pa.Schema, for Parquet logs (read from Hive or the schema file)

    def plan(self) -> tuple[Plan | None, bool]:
        """The plan to run: the stored one (replayed) or a new one. None when there is nothing to read."""
        topic = self.spec.topic
        stored = self.store.load_plan(topic)
        if stored is not None:
            committed = self.store.get(topic, list(stored.ranges))
            if all((c := committed.get(p)) is not None and c >= e for p, (_, e) in stored.ranges.items()):
                # Its offsets were committed and the run died before clearing the plan (Redis Cluster's commit is
                # three steps): finish that commit, then plan afresh.
                log.info("plan %s of %s was already committed; finishing its commit", stored.plan_id, topic)
                staged = self.store.load_staged(topic, stored.plan_id)
                if staged is not None:
                    staged.committed = True
                    self.store.finish_commit(stored, staged)
                else:
                    self.store.clear_plan(topic)
            else:
                log.warning("replaying stored plan %s of %s (a previous run did not commit)", stored.plan_id, topic)
                self._check_replayable(stored)
                return stored, True
        return self._new_plan(topic)

    def _check_replayable(self, plan: Plan) -> None:
        marks = self.kafka.watermarks(plan.log, list(plan.ranges))
        expired = {p: (s, marks[p][0]) for p, (s, e) in plan.ranges.items() if e > s and s < marks[p][0]}
        if expired:
            raise OffsetError(
                f"{plan.log}: stored plan {plan.plan_id} cannot be replayed: Kafka expired offsets it must read "
                f"({', '.join(f'[{p}] {a}..{b - 1}' for p, (a, b) in sorted(expired.items()))}) since it was made. "
                f"Files of its failed attempt may be in the lake; check them, then run "
                f"`pseidon-dagster offsets reset {plan.log} --to earliest` (which also drops the plan)")

    def _check_reset_floor(self, starts: dict[int, int]) -> None:
        """After `offsets reset` moved offsets back: refuse to publish ranges that files in the lake already hold
        (re-ingesting them would write every record twice); rebuilding hours is what a backfill is for."""
        floor = self.store.load_reset_floor(self.spec.topic)
        behind = {p: (starts[p], f) for p, f in floor.items() if p in starts and starts[p] < f}
        if not behind:
            return
        names = []
        for root in (resolved_root(self.settings, self.spec.base_partition),):
            storage, base = Storage.for_path(root)
            top = f"{base.rstrip('/')}/{self.spec.log_partition}"
            for path in storage.list_files(top):
                name = FileName.parse(path.rsplit("/", 1)[-1])
                if (name is not None and name.log == self.spec.log and name.partition in behind
                        and name.start < behind[name.partition][1] and name.end > behind[name.partition][0]
                        and "/." not in path[len(top):]):
                    names.append(path)
        if names:
            ranges = ", ".join(f"[{p}] {s}..{f - 1}" for p, (s, f) in sorted(behind.items()))
            raise OffsetError(
                f"{self.spec.topic}: offsets were reset back ({ranges}) over {len(names)} file(s) already in the lake "
                f"(e.g. {', '.join(sorted(names)[:3])}); ingesting them again would write their records twice, so "
                f"nothing is published. Put the offsets back where they were (`pseidon-dagster offsets reset "
                f"{self.spec.topic} --to latest`, or the offsets they held), then rebuild the hours you meant to "
                f"re-ingest with `pseidon-dagster backfill {self.spec.topic} --from ... --to ...`")

    def _new_plan(self, topic: str) -> tuple[Plan | None, bool]:
        settings, spec = self.settings, self.spec
        parts = self.kafka.partitions(topic)
        marks = self.kafka.watermarks(topic, parts)
        current = self.store.get(topic, parts)
        lake = None
        if all(v is None for v in current.values()) and not self.store.has_offsets(topic):
            lake = lake_ends(resolved_root(settings, spec.base_partition), resolved_root(settings, spec.quarantine),
                             spec)
        starts, notes = start_offsets(current, marks, settings.kafka_use_earliest, lake)
        self._check_reset_floor(starts)
        for p, note in notes.items():
            log.warning("%s[%d]: %s", topic, p, note)
        ranges, lost = {}, {}
        cap = settings.max_offsets_per_partition
        for p in parts:
            lo, hi = marks[p]
            cur = starts[p]
            if cur < lo:
                lost[p] = (cur, lo)
                log.error("LOST DATA: %s[%d] offsets %d..%d expired from Kafka before they were read; "
                          "continuing from %d", topic, p, cur, lo - 1, lo)
                cur = lo
            if cur > hi:
                raise OffsetError(
                    f"{topic}[{p}]: stored offset {cur} is beyond Kafka's high watermark {hi} (was the topic "
                    f"re-created?). Reset it with `pseidon-dagster offsets reset {topic} --partition {p} "
                    f"--to latest|earliest|OFFSET` after checking what was lost")
            ranges[p] = (cur, min(hi, cur + cap))
        unset = {p: ranges[p][0] for p in parts if current.get(p) is None}
        if sum(e - s for s, e in ranges.values()) == 0 and not lost:
            if unset:  # first sight of these partitions: remember where they start
                self.lease.check()
                self.store.set(topic, unset)
            return None, False
        created = now_ms()
        schema = self.schema_for() if self.schema_for is not None else None
        active = sum(1 for s, e in ranges.values() if e > s)
        plan = Plan(topic, ranges, created, uuid.uuid4().hex[:16], lost,
                    params_for(settings, spec, created, active, schema), notes)
        self.store.save_plan(plan, self.lease)  # (an empty plan with a lost range still commits the jump past it)
        return plan, False


__all__ = ["IngestError", "Planner", "frozen_schema", "frozen_spec", "lake_ends", "params_for", "start_offsets",
           "QUARANTINE_EXT"]
