"""Freshness: does each log still land data?

Dagster 1.13's freshness policies (`dg.FreshnessPolicy.time_window`) are evaluated per asset, from the latest
materialization of *any* partition: a policy cannot be given per log of the multi-partitioned `lake_files`, and one
log landing data keeps the whole asset fresh. So there are two layers:

- `lake_files` carries a time-window policy with :freshness :default-minutes (read from pseidon.edn when the code
  location loads, else 120): it fails when *no* log has landed anything for that long (the ETL as a whole stopped).
- Per log, the asset check `freshness` on lake_files: a log is stale when its last commit that landed data files is
  older than :freshness :logs {"<log>" minutes} (else :default-minutes). freshness_sensor (every 5 minutes)
  evaluates every enabled log from the commit times runs write to the metrics Redis (core/metrics.py) and reports
  the result on the (current hour, log) partition whenever a log's state changes, and once per hour: the partitions
  view of the check shows, per log and hour, whether the log was landing data. Executing the check from the UI for
  chosen partitions evaluates those logs now. A log that never landed anything since the counters exist is
  "unknown" and not reported.
"""

import datetime as dt
import json
import warnings

import dagster as dg

from ...core import config as config_mod
from ...core import metrics
from ...core.partitioning import hour_key
from ..ingest.constants import HOUR_DIM, LAKE_FILES, LOG_DIM
from ..ingest.partitions import log_hours, logs
from ..ingest.resources import PseidonResource

FRESHNESS_CHECK = "freshness"
SENSOR_NAME = "freshness_sensor"
DEFAULT_MINUTES = 120


def default_minutes() -> int:
    """:freshness :default-minutes of the pseidon.edn the code location would use ($PSEIDON_CONF or the default
    path), read once at load; 120 when it cannot be read."""
    try:
        return config_mod.load().ops.freshness_default_minutes
    except Exception:  # noqa: BLE001 - no config at load time (tests, `dagster definitions validate`)
        return DEFAULT_MINUTES


def lake_files_policy() -> dg.FreshnessPolicy:
    return dg.FreshnessPolicy.time_window(fail_window=dt.timedelta(minutes=default_minutes()))


def _states(settings, names: list[str], at_ms: int) -> dict[str, dict]:
    r, opened = metrics.metrics_client(settings)
    try:
        store = metrics.MetricsStore(r, settings.etl_group)
        return {n: metrics.freshness(settings, n, True, store.log_state(n, at_ms)["last-data-ms"], at_ms)
                for n in names}
    finally:
        if opened:
            r.close()


def _description(name: str, st: dict) -> str:
    if st["state"] == "stale":
        return (f"{name} has landed no data for {st['age-minutes']:.0f} minutes (limit {st['limit-minutes']}; last "
                f"data {st['last-data']})")
    return f"{name} landed data {st['age-minutes']:.0f} minutes ago (limit {st['limit-minutes']})"


def _evaluation(name: str, st: dict, partition: str | None) -> dg.AssetCheckEvaluation:
    return dg.AssetCheckEvaluation(
        asset_key=LAKE_FILES, check_name=FRESHNESS_CHECK, passed=st["state"] == "fresh",
        severity=dg.AssetCheckSeverity.ERROR, description=_description(name, st), partition=partition,
        metadata={"age_minutes": st["age-minutes"], "limit_minutes": st["limit-minutes"],
                  "last_data": st["last-data"] or ""},
    )


def evaluate_freshness(context: dg.SensorEvaluationContext, pseidon: PseidonResource,
                       now_ms: int | None = None) -> dict[str, dict]:
    """Evaluate every enabled log; report changed states (and each log once per hour) as check results."""
    at = now_ms or metrics.now_ms()
    with pseidon.session() as s:
        specs, _ = s.table.logs(s.settings.etl_group)
        states = _states(s.settings, [spec.log for spec in specs], at)
    known = set(context.instance.get_dynamic_partitions(logs.name))
    try:
        cursor = json.loads(context.cursor) if context.cursor else {}
    except ValueError:
        cursor = {}
    hour = hour_key(at // 3_600_000)
    for name, st in sorted(states.items()):
        if st["state"] == "unknown" or name not in known:
            continue
        mark = f"{hour}:{st['state']}"
        if cursor.get(name) == mark:
            continue
        pk = str(dg.MultiPartitionKey({LOG_DIM: name, HOUR_DIM: hour}))
        context.instance.report_runless_asset_event(_evaluation(name, st, pk))
        if st["state"] == "stale":
            context.log.error(_description(name, st))
        cursor[name] = mark
    context.update_cursor(json.dumps({k: v for k, v in cursor.items() if k in states}, sort_keys=True))
    return states


@dg.sensor(
    name=SENSOR_NAME,
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Per log: is its last commit that landed data within :freshness (default 120 minutes)? Reports the "
                "`freshness` check of lake_files on the (current hour, log) partition when the state changes.",
)
def freshness_sensor(context: dg.SensorEvaluationContext, pseidon: PseidonResource):
    states = evaluate_freshness(context, pseidon)
    stale = sorted(n for n, st in states.items() if st["state"] == "stale")
    return dg.SkipReason(f"stale: {', '.join(stale)}" if stale else f"{len(states)} logs fresh or unknown")


warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec",
                        category=dg.PreviewWarning)


@dg.asset_check(
    asset=LAKE_FILES, name=FRESHNESS_CHECK, partitions_def=log_hours,
    description="The log of the partition landed data within its :freshness limit (evaluated now, from the last "
                "commit time in the metrics Redis). freshness_sensor reports it every hour and on every change.",
)
def freshness(context: dg.AssetCheckExecutionContext, pseidon: PseidonResource) -> dg.AssetCheckResult:
    key = context.partition_key
    name = key.keys_by_dimension[LOG_DIM] if isinstance(key, dg.MultiPartitionKey) else str(key).split("|")[-1]
    settings = pseidon.settings()
    st = _states(settings, [name], metrics.now_ms())[name]
    ev = _evaluation(name, st, None)
    return dg.AssetCheckResult(passed=st["state"] != "stale", severity=ev.severity,
                               description=_description(name, st) if st["state"] != "unknown"
                               else f"{name} has landed nothing since the counters exist", metadata=ev.metadata)
