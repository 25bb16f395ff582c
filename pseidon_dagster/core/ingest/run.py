"""One micro-batch run of one log: plan -> read -> decode -> route -> segment -> write -> publish -> register ->
commit.

Exactly-once files:
- The run holds the log's lease (lease.py) from planning to commit; every write that matters is fenced by it.
- The plan (per Kafka partition [start, end), with everything that decides files frozen) is stored before reading;
  a failed run's retry replays it (plan.py).
- Segments are cut deterministically (segment.py) and every file is named after its hour, partition and segment
  range, so a replay produces the same names and overwrites. Every path is recorded in the plan's manifest before
  it is created; before committing, files an earlier attempt published that this one did not rewrite are deleted,
  and so are temporary files of dead attempts.
- Files are fsynced before their rename and their directories after (storage.py); offsets are committed only after
  every file is durable and its Hive partitions are registered, in one fenced step that also clears the plan.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

from .. import failpoints
from ..config import Settings
from ..hive import catalog_for, hive_schema_for, load_schema_file
from ..kafka import KafkaSource, KafkaUnavailable
from ..lease import Lease, new_owner
from ..metrics import record_commit_safely
from ..model import IngestResult, LogSpec, Plan
from ..offsets import LeaseLost, OffsetStore
from ..storage import Storage
from .plan import FROZEN_ROW_FIELDS, IngestError, Planner, frozen_schema, frozen_spec
from .write import write_plan

log = logging.getLogger(__name__)


class Ingestor:
    """Runs one log once: stage() -> register_files() -> commit(). Construct per run; not thread-safe.

    OWNER names who holds the lease: steps and retries of one Dagster run pass the same owner (the root run id) so
    they continue, or take over, its lease; by default every Ingestor is its own owner."""

    def __init__(self, settings: Settings, spec: LogSpec, store: OffsetStore, kafka: KafkaSource | None = None,
                 *, register: Callable[[IngestResult], list[str]] | None = None,
                 before_commit: Callable[[IngestResult], None] | None = None, owner: str | None = None,
                 lock_token: str | None = None, notify: Callable[[str], None] | None = None,
                 progress: Callable[[str, int, int], None] | None = None):
        self.settings = settings
        self.spec = spec
        self.store = store
        self.kafka = kafka or KafkaSource(settings)
        self.register = register
        self.before_commit = before_commit
        self.owner = owner or lock_token or new_owner()
        self.notify = notify
        self.progress = progress  # (what, done, total): messages read so far (one process; not with workers)
        self.lease: Lease | None = None

    # the lease ---------------------------------------------------------------------------------------------------
    def _lease(self) -> Lease:
        if self.lease is None or self.lease.lost.is_set():
            self.lease = Lease.held(self.store, self.spec.topic, self.owner) or Lease.acquire(
                self.store, self.spec.topic, self.owner, ttl_s=self.settings.lease_ttl_s,
                wait_s=self.settings.lease_wait_s, notify=self.notify)
        return self.lease

    def release(self) -> None:
        lease = self.lease or Lease.held(self.store, self.spec.topic, self.owner)
        if lease is not None:
            lease.release()
        self.lease = None

    # run ---------------------------------------------------------------------------------------------------------
    def run(self) -> IngestResult:
        """All steps in one call (the CLI): stage -> register -> commit."""
        result = self.stage()
        try:
            self.register_files(result)
            return self.commit(result)
        except BaseException:
            self.release()
            raise

    def stage(self) -> IngestResult:
        """Plan, read, decode, route, write and publish. Nothing is committed; the lease stays held (and renewed)
        for the register and commit steps."""
        t0 = time.monotonic()
        result = IngestResult(self.spec.topic)
        lease = self._lease()
        try:
            if self.store.load_rebuild(self.spec.topic):  # a killed backfill left an hour half swapped: finish it
                from ..hourswap import finish_pending  # lazy: a run worker loads no backfill machinery

                finish_pending(self.settings, self.spec, self.store, lease, self._catalog)
            planner = Planner(self.settings, self.spec, self.store, self.kafka, lease, self._schema)
            plan, replayed = planner.plan()
            if plan is None:
                result.lag_after = 0
                result.committed = True
                self.release()
                return result
            result.plan_id, result.replayed = plan.plan_id, replayed
            result.offsets, result.lost, result.notes = dict(plan.ranges), dict(plan.lost), dict(plan.notes)
            result.spec = frozen_spec(self.spec, plan, self.settings)
            result.layout = {f: plan.params[f] for f in FROZEN_ROW_FIELDS if f in plan.params}
            failpoints.pause("after-plan")
            if plan.messages:
                self._write(plan, result, lease)
            self.store.save_staged(result, lease)
            failpoints.pause("after-publish")
            return result
        except BaseException:
            self.release()
            raise
        finally:
            result.seconds = time.monotonic() - t0

    def register_files(self, result: IngestResult) -> IngestResult:
        """Register the Hive partitions of the published files (when the log has a registration hook)."""
        t0 = time.monotonic()
        if self.register is not None and result.data_files and not result.committed:
            self._lease().check()
            if result.spec is None:
                result.spec = frozen_spec(self.spec, self._plan_of(result), self.settings)
            result.registered = list(self.register(result))
            lease = self._lease()
            lease.check()
            self.store.save_staged(result, lease)
            failpoints.pause("after-register")
        result.seconds += time.monotonic() - t0
        return result

    def commit(self, result: IngestResult) -> IngestResult:
        """Remove what earlier attempts left that this one did not rewrite, then store the planned end offsets and
        clear the plan in one fenced step, and release the lease."""
        if result.committed:
            return result
        t0 = time.monotonic()
        lease = self._lease()
        lease.check()
        plan = self._plan_of(result)
        result.removed = self._remove_leftovers(result)
        if self.before_commit is not None:
            self.before_commit(result)
        failpoints.pause("before-commit")
        result.committed = True
        result.committed_ms = int(time.time() * 1000)
        try:
            self.store.commit(plan, result, lease)
        except BaseException:
            result.committed = False
            raise
        self.release()
        try:
            per_message = result.files and result.written and sum(
                f.raw_bytes for f in result.data_files) / result.written
            self.store.save_last_commit(plan.log, {"ms": result.committed_ms, "plan_ms": plan.created_ms,
                                                   "bytes_per_message": round(per_message or 0, 1) or None})
        except Exception as e:  # noqa: BLE001 - only the sensor's weighing of the next backlog is delayed
            log.warning("%s: the last commit's numbers were not stored for the sensor: %s", plan.log, e)
        floor = self.store.load_reset_floor(plan.log)
        if floor and all(plan.ranges.get(p, (0, o))[1] >= o for p, o in floor.items()):
            self.store.save_reset_floor(plan.log, {})  # the log is past where a reset moved it back from
        try:
            marks = self.kafka.watermarks(plan.log, list(plan.ranges))
            result.lag_after = sum(max(0, marks[p][1] - e) for p, (_, e) in plan.ranges.items())
        except KafkaUnavailable:
            result.lag_after = None
        result.seconds += time.monotonic() - t0
        # Operations counters (/metrics, status): after the commit; never raises, a failure is only logged.
        record_commit_safely(self.settings, result, self.owner, self.store.r)
        return result

    def _plan_of(self, result: IngestResult) -> Plan:
        plan = self.store.load_plan(self.spec.topic)
        if plan is None or plan.plan_id != result.plan_id:
            found = plan.plan_id if plan else "none"
            raise IngestError(f"{self.spec.topic}: the stored plan is {found}, not {result.plan_id}; nothing "
                              f"committed (another run took over?)")
        return plan

    def _remove_leftovers(self, result: IngestResult) -> list[str]:
        """Delete final files that an earlier attempt of the plan published and this attempt did not, and every
        temporary file of the plan's attempts; then fsync their directories."""
        temps, finals = self.store.manifest(self.spec.topic)
        ours = {self._uri(f.path) for f in result.files}
        removed, dirs = [], set()
        for path in sorted(finals - ours) + sorted(temps):
            deleted, parent = _delete_path(path)
            if deleted:
                dirs.add(parent)
                if path in finals:
                    removed.append(path)
                    log.warning("%s: removed %s, published by an earlier attempt of plan %s and not rewritten by "
                                "this one", self.spec.topic, path, result.plan_id)
        _LOCAL.sync_dirs(d for d in dirs if "://" not in d)
        return removed

    def _uri(self, path: str) -> str:
        for root in (self.settings.resolve_path(self.spec.base_partition),
                     self.settings.resolve_path(self.spec.quarantine)):
            if "://" in root and not root.startswith("file://"):
                storage, base = Storage.for_path(root)
                if path.startswith(base.rstrip("/")):
                    return storage.uri(path)
        return path

    def _catalog(self):
        if not self.spec.hive_url:
            return None
        return catalog_for(self.settings, self.spec)

    # the stages ----------------------------------------------------------------------------------------------------
    def _schema(self):
        return parquet_schema(self.settings, self.spec) if self.spec.output_format == "parquet" else None

    def _write(self, plan: Plan, result: IngestResult, lease: Lease) -> None:
        assert result.spec is not None  # the plan step sets the row the plan froze
        schema = (frozen_schema(plan.params) or self._schema()) if result.spec.output_format == "parquet" else None
        out = write_plan(self.settings, result.spec, plan, schema, self.store, self.kafka, lease,
                         self.settings.ingest_workers, self.progress)
        result.set_counts(out.counts)
        result.quarantine_reasons = out.reasons
        result.files = out.files


_LOCAL = Storage.for_path("/")[0]


def _delete_path(path: str) -> tuple[bool, str]:
    storage, p = Storage.for_path(path) if "://" in path else (_LOCAL, path)
    return storage.delete(p), storage.parent(p)


def discard_plan(store: OffsetStore, log_name: str) -> dict:
    """Drop the log's plan in flight (offsets reset), deleting the temporary files its attempts left. Published files
    of an uncommitted plan stay (they hold data); they are listed. The caller holds the lease."""
    plan = store.load_plan(log_name)
    temps, finals = store.manifest(log_name)
    for path in temps:
        _delete_path(path)
    store.clear_plan(log_name)
    if plan is None:
        return {}
    kept = sorted(f for f in finals if os.path.exists(f) or "://" in f)
    if kept:
        log.warning("%s: dropped plan %s; files its attempts published stay in the lake: %s", log_name, plan.plan_id,
                    ", ".join(kept[:20]))
    return {"dropped_plan": plan.plan_id, "files_of_dropped_plan": kept}


def parquet_schema(settings: Settings, spec: LogSpec):
    """The Parquet schema of a log: its Hive table's columns when hive_url is set, else <schema-dir>/<log>.json.
    Read when a plan is made and frozen in it."""
    if spec.hive_url and spec.hive_table_name:
        schema = hive_schema_for(settings, spec)
        if schema is not None:
            return schema
    schema = load_schema_file(settings.schema_dir, spec.log)
    if schema is None:
        raise IngestError(f"log {spec.log!r} writes parquet but has no schema: set hive_url/hive_table_name to a "
                          f"Hive table, or create {settings.schema_dir}/{spec.log}.json")
    return schema


def ingest(settings: Settings, spec: LogSpec, store: OffsetStore, **kwargs) -> IngestResult:
    return Ingestor(settings, spec, store, **kwargs).run()


__all__ = ["Ingestor", "IngestError", "LeaseLost", "discard_plan", "ingest", "parquet_schema"]
