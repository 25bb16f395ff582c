"""Partitions: logs (dynamic, kept in sync with pseidon_logs by the sensor) and log x event hour."""
from __future__ import annotations

import datetime as dt
import os

import dagster as dg

from ...core import config as config_mod
from .constants import HOUR_DIM, LOG_DIM

# The first event hour shown as a partition: midnight UTC PSEIDON_HOURS_WINDOW_DAYS (default 7, set it to your
# Kafka retention: older hours cannot be rebuilt anyway) before the code location was loaded, so the window moves
# forward with every deploy or reload; without PSEIDON_HOURS_WINDOW_DAYS, a shorter :retention-hours of pseidon.edn
# (the lake keeps no older hours) is the window; or a fixed PSEIDON_HOURS_START (YYYY-MM-DD-HH:00). A
# multi-partitioned asset has (logs x hours) partitions and Dagster recommends at most ~100,000 per asset: with N
# logs keep the window under 100,000 / N hours. Hours before the start still land; they are just not shown as
# partitions (runs list them).
WINDOW_DAYS = int(os.environ.get("PSEIDON_HOURS_WINDOW_DAYS", "7"))


def _retention_hours() -> int | None:
    """:retention-hours of pseidon.edn ($PSEIDON_CONF), read without resolving secrets; None when unset or unreadable
    (the sensor and the runs report a bad file; loading the definitions does not fail for it)."""
    try:
        return config_mod.load(None, resolve_secret=lambda ref: "").retention_hours
    except Exception:  # noqa: BLE001 - any problem: the default window
        return None


def window_start(now: dt.datetime) -> dt.datetime:
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    window = dt.timedelta(days=WINDOW_DAYS)
    retention = None if "PSEIDON_HOURS_WINDOW_DAYS" in os.environ else _retention_hours()
    if retention is not None and dt.timedelta(hours=retention) < window:
        return now.replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=retention)
    return midnight - window


HOURS_START = os.environ.get("PSEIDON_HOURS_START") or window_start(dt.datetime.now(dt.timezone.utc)).strftime(
    "%Y-%m-%d-%H:%M")

# One key per enabled pseidon_logs row of this :etl-group (log names are Kafka topic names: no ',' or '|').
logs = dg.DynamicPartitionsDefinition(name="logs")

# Event hours in UTC, as the files are laid out (date=YYYYMMDD/hour=YYYYMMDDHH). end_offset=2: the timestamp window
# accepts events up to an hour ahead (:writer :ts-window-ahead-ms), so the next hour can already hold data.
hours = dg.HourlyPartitionsDefinition(start_date=HOURS_START, end_offset=2, timezone="UTC")

log_hours = dg.MultiPartitionsDefinition({LOG_DIM: logs, HOUR_DIM: hours})
