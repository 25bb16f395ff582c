"""run_failure_alerts: one clear line per failed run -- log, step, error, run id -- in the sensor's log, counted for
/metrics and `status` (topic-errors, last error), and POSTed as JSON to :alerts {:webhook "http://..."} when set.

    run failed: log=clicks step=commit_offsets run=8c1f... job=ingest_job will_retry=true error=IngestError: ...

The webhook body is {"text": <the line>, "log", "step", "error", "run_id", "job", "will_retry"} ("text" is what
Slack/Mattermost incoming webhooks show). A webhook that does not answer is tried three times in the tick, then
logged; it never fails the tick (the line is in the sensor's log either way). Secrets never appear: the error text
is scrubbed of the config's passwords and of user:password@ in URLs, and the webhook's URL (which may carry a
token) is named only by its host.
"""

import json
import logging
import re
import time
import urllib.error
import urllib.parse
import urllib.request

import dagster as dg

from ...core import fatal, metrics
from ..ingest.constants import LOG_TAG
from ..ingest.resources import PseidonResource

log = logging.getLogger(__name__)

SENSOR_NAME = "run_failure_alerts"
PARTITION_TAG = "dagster/partition"
WILL_RETRY_TAG = "dagster/will_retry"
POST_ATTEMPTS = 3


def failure_fields(context: dg.RunFailureSensorContext) -> dict:
    run = context.dagster_run
    steps = context.get_step_failure_events()
    if steps:
        first = steps[0]
        err = first.event_specific_data.error  # the documented way (RunFailureSensorContext.get_step_failure_events)
        while err is not None and err.cause is not None and err.cls_name.startswith("Dagster"):
            err = err.cause  # "Error occurred while executing op ..." wraps the op's own exception
        step = first.step_key
        error = err.message if err is not None else (first.message or "step failed")
        error = re.sub(r"^(?:[A-Za-z_][\w]*\.)+(\w+): ", r"\1: ", error.strip())  # pkg.mod.Error: -> Error:
    else:
        step, error = None, context.failure_event.message or "run failed"
    return {"log": run.tags.get(LOG_TAG) or run.tags.get(PARTITION_TAG), "step": step, "error": error,
            "run_id": run.run_id, "job": run.job_name, "will_retry": run.tags.get(WILL_RETRY_TAG) == "true"}


def failure_line(fields: dict) -> str:
    return (f"run failed: log={fields['log'] or '-'} step={fields['step'] or '-'} run={fields['run_id']} "
            f"job={fields['job']} will_retry={str(fields['will_retry']).lower()} error={fields['error']}")


def post(url: str, body: dict, timeout_s: float) -> None:
    """POST BODY as JSON; raises with a message naming only the webhook's scheme and host."""
    where = "{0.scheme}://{0.netloc}".format(urllib.parse.urlsplit(url))
    where = where.split("@")[-1] if "@" in where else where
    data = json.dumps(body).encode()
    last = None
    for attempt in range(POST_ATTEMPTS):
        req = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as resp:
                if 200 <= resp.status < 300:
                    return
                last = f"HTTP {resp.status}"
        except urllib.error.HTTPError as e:
            last = f"HTTP {e.code}"
        except (OSError, ValueError) as e:
            last = type(e).__name__ + (f": {e.reason}" if isinstance(e, urllib.error.URLError) else "")
        time.sleep(0.2 * (attempt + 1))
    raise RuntimeError(f"alert webhook at {where} did not take the alert after {POST_ATTEMPTS} attempts: {last}")


def alert(context: dg.RunFailureSensorContext, pseidon: PseidonResource) -> dict:
    fields = failure_fields(context)
    settings = None
    try:
        settings = pseidon.settings()
    except Exception as e:  # noqa: BLE001 - a broken config must not hide the alert
        context.log.warning(f"pseidon.edn could not be read ({type(e).__name__}); no webhook, no counters")
    fields["error"] = fatal.one_line(fatal.scrub(fields["error"], fatal.secrets_of(settings)))
    line = failure_line(fields)
    context.log.error(line)
    if settings is None:
        return fields
    if fields["log"] and fields["job"] == "ingest_job":
        r = None
        opened = False
        try:
            r, opened = metrics.metrics_client(settings)
            metrics.MetricsStore(r, settings.etl_group).record_failure(
                fields["log"], step=fields["step"], error=fields["error"], run_id=fields["run_id"], job=fields["job"])
        except Exception as e:  # noqa: BLE001
            context.log.warning(f"failure of run {fields['run_id']} not counted in the metrics Redis: "
                                f"{type(e).__name__}: {e}")
        finally:
            if opened and r is not None:
                r.close()
    if settings.ops.alert_webhook:
        try:
            post(settings.ops.alert_webhook, {"text": line, **fields}, settings.ops.alert_timeout_s)
        except RuntimeError as e:
            context.log.error(str(e))
    return fields


@dg.run_failure_sensor(
    name=SENSOR_NAME,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="One line per failed run of this code location (log, step, error, run id) in this sensor's log, "
                "counted for /metrics and `pseidon-dagster status`, and POSTed to :alerts :webhook when set.",
)
def run_failure_alerts(context: dg.RunFailureSensorContext, pseidon: PseidonResource):
    alert(context, pseidon)
