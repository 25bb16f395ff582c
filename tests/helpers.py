"""Small builders shared by test modules under tests/unit/ and tests/integration/: no fixtures, no servers."""
from __future__ import annotations

from pseidon_dagster.core.logtable import LogSpec


def log_row(**kw) -> LogSpec:
    """A row of log `clicks` as read from pseidon_logs: pipe-separated text with the timestamp in field 0, written gzip
    to lake/raw/clicks, hourly, no Hive table, LogSpec's defaults for the rest. KW overrides columns; a test module
    names the ones its tests rely on (functools.partial(log_row, ...))."""
    row = dict(log="clicks", format="txt:sep=pipe;ts=0", output_format="gzip", base_partition="lake",
               log_partition="raw/clicks", hive_table_name=None, hive_url=None, hive_user=None)
    row.update(kw)
    return LogSpec(**row)
