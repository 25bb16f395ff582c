"""fatal_errors: a failure hook on the ingest and Hive-table jobs. When an op fails with an error no retry can fix
without an operator -- pseidon.edn unreadable or invalid, credentials refused by the log table's database, Redis,
Kafka, Hive or Vault, a permission refused -- it appends one timestamped line (log, run, step, reason, error) to
:fatal-errors-file (default /tmp/fatalerrors, the original's; $PSEIDON_FATAL_ERRORS_FILE when pseidon.edn itself
cannot be read). The run fails as it would anyway; the classification and the safe append are core/fatal.py.
"""

import dagster as dg

from ...core import fatal
from ..ingest.constants import LOG_TAG, RESOURCE_KEY

PARTITION_TAG = "dagster/partition"


@dg.failure_hook(name="fatal_errors", required_resource_keys={RESOURCE_KEY})
def fatal_errors(context: dg.HookContext):
    exc = context.op_exception
    reason = fatal.classify(exc)
    if reason is None:
        return
    settings = None
    try:
        settings = getattr(context.resources, RESOURCE_KEY).settings()
    except Exception:  # noqa: BLE001 - the config may be the very thing that is broken
        pass
    run = context.instance.get_run_by_id(context.run_id)
    tags = run.tags if run is not None else {}
    error = fatal.scrub(f"{type(exc).__name__}: {exc}", fatal.secrets_of(settings))
    path = fatal.file_for(settings)
    if fatal.append(path, tags.get(LOG_TAG) or tags.get(PARTITION_TAG), error, run_id=context.run_id,
                    step=context.step_key, reason=reason):
        context.log.error(f"fatal error ({reason}) recorded in {path}")
