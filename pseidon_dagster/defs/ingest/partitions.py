"""Partitions: logs (dynamic, kept in sync with pseidon_logs by the sensor) and log x event hour."""
from __future__ import annotations

import os

import dagster as dg

from .constants import HOUR_DIM, LOG_DIM

# The first event hour shown as a partition. A multi-partitioned asset has (logs x hours) partitions and Dagster
# recommends at most ~100,000 per asset: with N logs keep the window under 100,000 / N hours (move the start forward
# with PSEIDON_HOURS_START as hours age out of the lake). Hours before the start still land; they are just not
# shown as partitions (the run's metadata lists them).
HOURS_START = os.environ.get("PSEIDON_HOURS_START", "2026-01-01-00:00")

# One key per enabled pseidon_logs row of this :etl-group (log names are Kafka topic names: no ',' or '|').
logs = dg.DynamicPartitionsDefinition(name="logs")

# Event hours in UTC, as the files are laid out (date=YYYYMMDD/hour=YYYYMMDDHH). end_offset=2: the timestamp window
# accepts events up to an hour ahead (:writer :ts-window-ahead-ms), so the next hour can already hold data.
hours = dg.HourlyPartitionsDefinition(start_date=HOURS_START, end_offset=2, timezone="UTC")

log_hours = dg.MultiPartitionsDefinition({LOG_DIM: logs, HOUR_DIM: hours})
