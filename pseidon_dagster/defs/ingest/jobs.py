"""ingest_job: one micro-batch of one log. A run is a `logs` partition (the log's name) tagged log=<name>.

Three ops run the core's Ingestor steps: ingest_log (plan -> read -> write -> publish), register_hive (Hive
partitions, in the hive_ddl concurrency pool) and commit_offsets (Redis), which then reports (reporting.py):
- a `lake_files` materialization per (log, event hour) it wrote, with the hour's records/files/bytes/offset ranges
  and the run's read/written/filtered/quarantined, throughput and lag after the run;
- `hive_table` materializations for the hours whose Hive partitions it registered;
- the offset_continuity and record_counts check results for those partitions;
- a `kafka_topic` observation (partition = log) with the committed offsets and the lag left.
A failure anywhere before the commit leaves Redis' offsets as they were. dagster.yaml enables run retries, which
re-execute from the failed op on (Dagster's default FROM_FAILURE): the later ops get the Staged value the first
attempt stored, and a failed ingest_log replays the stored plan into the same file names: no duplicates.
The stage op hands the row on (Staged.spec, without the hive_password), so only register_hive, for a row with a
password, reads pseidon_logs again: a MariaDB outage after the files are published does not stop the commit.
"""

import dataclasses
import json
from collections.abc import Callable

import dagster as dg
from pydantic import Field

from ...core.config import Settings
from ...core.hive import create_table_for, registrar_for
from ...core.ingest import IngestError, Ingestor, IngestResult
from ...core.lease import Lease
from ...core.model import LogSpec
from ..ops.fatal import fatal_errors
from .constants import (
    COMMIT_OP,
    CREATE_TABLE_OP,
    HIVE_POOL,
    HIVE_TABLE,
    HIVE_TABLE_JOB,
    INGEST_JOB,
    INGEST_OP,
    LOG_TAG,
    REGISTER_OP,
)
from .partitions import logs
from .reporting import report_committed
from .resources import PseidonResource


class IngestConfig(dg.Config):
    fail_before_commit: bool = Field(
        default=False,
        description="Failure drill: raise after the files are published and before the offsets are committed. "
                    "Redis keeps the old offsets and the stored plan. Only the first attempt fails: the run "
                    "retry (dagster.yaml run_retries) re-executes from the failed op and commits the staged files "
                    "(a whole re-execution replays the stored plan).")
    fail_after_commit: bool = Field(
        default=False,
        description="Failure drill: raise after the offsets are committed and before the run reports its "
                    "materializations. Only the first attempt fails: the retry reports the committed result.")


RETRY_NUMBER_TAG = "dagster/retry_number"  # set by Dagster's run retries on the retried run


class InjectedFailure(RuntimeError):
    pass


def _inject(result: IngestResult) -> None:
    raise InjectedFailure(f"injected failure before commit (plan {result.plan_id}, {len(result.files)} files "
                          "published); offsets are not committed")


def registrar(settings: Settings, spec: LogSpec) -> Callable | None:
    """The core's Hive registration hook, for logs with a hive_url."""
    if not spec.hive_url:
        return None
    return registrar_for(settings, spec)


@dataclasses.dataclass
class Staged:
    """What the stage op hands to the register and commit ops (pickled into Dagster's storage by its IO manager, and
    read back by a retry from failure). The log's row as the plan froze it rides along with its secret cleared, so
    the later ops need no database: only register_hive reads the hive_password column again, for a log whose row
    has one. The staged files live in Redis (the plan's state)."""

    log: str
    plan_id: str | None = None  # None: nothing to commit (nothing to read, or the row was removed or disabled)
    note: str = ""
    drill: str = ""  # a failure drill of the run config, for the first attempt only
    spec: LogSpec | None = None  # hive_password always None; None when the row could not be used
    row_has_password: bool = False  # the row had a hive_password when the stage op read it

    def __post_init__(self) -> None:
        if self.spec is not None and self.spec.hive_password is not None:
            raise ValueError("Staged must not carry the hive_password")  # it is pickled into Dagster's storage


def _staged_spec(spec: LogSpec) -> LogSpec:
    return dataclasses.replace(spec, hive_password=None)


def _owner(context: dg.OpExecutionContext) -> str:
    # The steps of a run, and its retries, continue (or take over) the lease of the root run.
    return f"dagster:{context.run.root_run_id or context.run_id}"


def _ingestor(context: dg.OpExecutionContext, s, spec: LogSpec, before_commit=None) -> Ingestor:
    return Ingestor(s.settings, spec, s.store, s.kafka, register=registrar(s.settings, spec),
                    before_commit=before_commit, owner=_owner(context), notify=context.log.warning)


def _first_attempt(context: dg.OpExecutionContext) -> bool:
    return int(context.run.tags.get(RETRY_NUMBER_TAG, "0")) == 0


@dg.op(name=INGEST_OP, out=dg.Out(Staged),
       description="Plan, read, parse, route, write and publish one micro-batch of the run's log (nothing committed).")
def ingest_log(context: dg.OpExecutionContext, config: IngestConfig, pseidon: PseidonResource) -> Staged:
    log = context.partition_key
    with pseidon.session() as s:
        try:
            spec = s.table.get(log, s.settings.etl_group)
        except LookupError as e:
            context.log.warning(f"{e}: nothing to do (the row was removed)")
            return Staged(log, note=str(e))
        if not spec.enabled:
            context.log.warning(f"{log} is disabled in pseidon_logs: nothing to do")
            return Staged(log, note="disabled", spec=_staged_spec(spec))
        result = _ingestor(context, s, spec).stage()
        context.log.info(f"{log}: staged {result.written} records in {len(result.files)} files "
                         f"(plan {result.plan_id}, replayed {result.replayed})")
        drill = ""
        if _first_attempt(context):
            drill = "before_commit" if config.fail_before_commit else "after_commit" if config.fail_after_commit else ""
        return Staged(log, None if result.committed else result.plan_id, drill=drill,
                      spec=_staged_spec(result.spec or spec), row_has_password=spec.hive_password is not None)


def _step(context: dg.OpExecutionContext, pseidon: PseidonResource, staged: Staged, fn, before_commit=None,
          with_password: bool = False):
    """Run FN(ingestor, result, spec, session) on the staged result with the staged spec (WITH_PASSWORD: completed
    with the row's hive_password, read now and kept in memory); on failure release the log's lease (nothing is
    committed, the stored plan stays for the retry)."""
    with pseidon.session() as s:
        ing = None
        try:
            spec = staged.spec
            if spec is None:  # a Staged of an older version (names only): read the row
                spec = s.table.get(staged.log, s.settings.etl_group)
            elif with_password and spec.hive_url and staged.row_has_password:
                spec = dataclasses.replace(spec, hive_password=s.table.hive_password(staged.log))
            ing = _ingestor(context, s, spec, before_commit)
            result = None
            if staged.plan_id is not None:
                result = s.store.load_staged(staged.log, staged.plan_id)
                if result is None:
                    raise IngestError(f"{staged.log}: the staged files of plan {staged.plan_id} are not in Redis "
                                      "(another run took over?); nothing committed")
            return fn(ing, result, spec, s)
        except BaseException:
            if ing is not None:
                ing.release()
            else:  # failed before the Ingestor existed: release the lease the stage op left to this run
                lease = Lease.held(s.store, staged.log, _owner(context))
                if lease is not None:
                    lease.release()
            raise


@dg.op(name=REGISTER_OP, out=dg.Out(Staged), pool=HIVE_POOL,
       description="Register the Hive partitions of the published files (ADD IF NOT EXISTS ... LOCATION). Runs in "
                   "the hive_ddl concurrency pool so many logs cannot flood the metastore.")
def register_hive(context: dg.OpExecutionContext, pseidon: PseidonResource, staged: Staged) -> Staged:
    if staged.plan_id is None:
        return staged

    def go(ing, result, spec, s):
        if not result.data_files:
            return staged
        if ing.register is None:
            context.log.info(f"{staged.log}: no hive_url, Hive registration skipped")
        ing.register_files(result)
        return staged

    return _step(context, pseidon, staged, go, with_password=True)


@dg.op(name=COMMIT_OP, out=dg.Out(dg.Nothing),
       description="Commit the planned end offsets to Redis, then report materializations and check results (also "
                   "of earlier commits whose report did not happen).")
def commit_offsets(context: dg.OpExecutionContext, pseidon: PseidonResource, staged: Staged):
    # A retry from failure re-runs this op with the first attempt's Staged: its drill is for the first attempt only.
    drill = staged.drill if _first_attempt(context) else ""
    if staged.plan_id is None and staged.spec is None:  # the row was removed: nothing to commit or report
        return dg.Output(None, metadata={"read": 0, "note": staged.note})

    def go(ing, result, spec, s):
        if result is not None:
            ing.commit(result)
            context.log.info(f"{staged.log}: {json.dumps(result.to_dict(), sort_keys=True)[:4000]}")
            if drill == "after_commit":
                raise InjectedFailure(f"injected failure after the commit of plan {result.plan_id}, before its "
                                      "report; the retry reports it")
        summary = report_committed(context, s, spec, result)
        if result is None and not summary:
            return dg.Output(None, metadata={"read": 0, "note": staged.note or "nothing to read (or start offsets "
                                                                               "pinned)"})
        return dg.Output(None, metadata=summary)

    return _step(context, pseidon, staged, go, _inject if drill == "before_commit" else None)


ingest_config = dg.PartitionedConfig(
    partitions_def=logs,
    run_config_for_partition_key_fn=lambda key: {},
    tags_for_partition_key_fn=lambda key: {LOG_TAG: key},
)


@dg.job(
    name=INGEST_JOB,
    config=ingest_config,
    executor_def=dg.in_process_executor,
    hooks={fatal_errors},  # unrecoverable errors -> :fatal-errors-file (defs/ops/fatal.py)
    description="One micro-batch of one log (the partition): stage (plan, read, write, publish) -> register "
                "Hive partitions (hive_ddl pool) -> commit offsets.",
)
def ingest_job():
    commit_offsets(register_hive(ingest_log()))


@dg.op(name=CREATE_TABLE_OP, pool=HIVE_POOL, out=dg.Out(dg.Nothing),
       description="CREATE EXTERNAL TABLE IF NOT EXISTS for the log (the partition): partitioned like the files, "
                   "stored as the log's output_format, at <base_partition>/<log_partition>.")
def create_hive_table(context: dg.OpExecutionContext, pseidon: PseidonResource):
    log = context.partition_key
    with pseidon.session() as s:
        ddl = create_table_for(s.settings, s.table.get(log, s.settings.etl_group))
    context.log.info(ddl)
    md = {"ddl": dg.MetadataValue.md(f"```sql\n{ddl}\n```")}
    context.log_event(dg.AssetObservation(asset_key=HIVE_TABLE, description=f"table of {log} ensured",
                                          metadata={**md, "log": log}))
    return dg.Output(None, metadata=md)


@dg.job(
    name=HIVE_TABLE_JOB,
    partitions_def=logs,
    executor_def=dg.in_process_executor,
    hooks={fatal_errors},
    description="Create the log's external Hive table if it does not exist (columns from <schema-dir>/<log>.json "
                "when present; else one `line` column for text logs). Also: pseidon-dagster hive create-table LOG.",
)
def hive_table_job():
    create_hive_table()
