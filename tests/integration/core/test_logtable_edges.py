"""The pseidon_logs table (MariaDB), edge cases a user meets through `logs get/add/describe/enable`: another group's
log, a log with no row, a row runs cannot use, a topic that does not exist, and the optional date_format column."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from pseidon_dagster.core.kafka import KafkaSource
from pseidon_dagster.core.logtable import LogConfigError, create_table
from tests.integration.core.test_ingest import add_log

ROW = dict(format="txt:sep=pipe;ts=0", output_format="gzip", base_partition="lake", quarantine="quarantine",
           enabled=1)


def test_another_groups_log_and_a_missing_log_are_lookup_errors(log_table, group):
    add_log(log_table, group, "clicks")
    with pytest.raises(LookupError) as e:
        log_table.get("clicks", "other")
    assert e.value.args[0] == f"log 'clicks' belongs to log_group '{group}', not 'other'"
    with pytest.raises(LookupError, match="no pseidon_logs row for log 'nope'"):
        log_table.set_enabled("nope", False)


def test_describe_shows_why_a_row_cannot_run_and_that_its_topic_is_missing(settings, log_table, group):
    log_table.upsert([{**ROW, "log": "broken", "log_partition": "raw/broken", "log_group": group, "format": "xml"}])

    out = log_table.describe("broken", partitions=KafkaSource(settings).partitions)

    assert out["valid"] is False and out["error"].startswith("pseidon_logs row 'broken', column format: ")
    assert out["partitions"] is None
    assert out["topic_error"] == f"topic 'broken' does not exist on {settings.bootstrap_servers}"


def test_date_format_needs_its_column(log_table, group):
    row = {**ROW, "log": "daily", "log_partition": "raw/daily", "log_group": group, "date_format": "date"}
    with pytest.raises(LogConfigError) as e:
        log_table.add(row)
    assert "column date_format: the table has no date_format column" in str(e.value)

    with log_table.engine.begin() as c:
        c.execute(sa.text("DROP TABLE pseidon_logs"))
    create_table(log_table.engine, with_date_format=True)  # logs init --with-date-format
    assert log_table.add(row).hourly is False
    assert log_table.get("daily", group).hourly is False
