"""A pseidon_logs row that cannot be run: LogConfigError names the log, the column and what to write instead."""
from __future__ import annotations

import pytest

from pseidon_dagster.core import config as config_mod
from pseidon_dagster.core.logtable import LogConfigError, validate_row

ROW = dict(log="clicks", format="txt:ts=0", output_format="gzip", base_partition="lake", log_partition="raw/clicks")


@pytest.fixture
def settings(tmp_path):
    return config_mod.from_mapping({"data-dir": str(tmp_path)})


@pytest.mark.parametrize("bad,column,problem", [
    ({"log": "clicks today"}, "log", "not a valid Kafka topic name"),
    ({"log": None}, "log", "not a valid Kafka topic name"),
    ({"format": "  "}, "format", "is empty; give a descriptor such as txt:sep=tab;ts=0"),
    ({"base_partition": " "}, "base_partition", "is empty; give the root directory of the log's files"),
    ({"log_partition": "/"}, "log_partition", "is empty; give the log's sub-directory under base_partition"),
    ({"date_format": "weekly"}, "date_format", "'weekly' is not 'datehour' or 'date'"),
    ({"retention_hours": "two days"}, "retention_hours", "'two days' is not a whole number of hours >= 1"),
    ({"quarantine_retention_hours": 0}, "quarantine_retention_hours", "'0' is not a whole number of hours >= 1"),
    ({"hive_url": "//127.0.0.1:10000/logs", "hive_table_name": "a.b.c"}, "hive_table_name", "a.b.c"),
])
def test_a_bad_column_is_named_with_the_problem(settings, bad, column, problem):
    with pytest.raises(LogConfigError) as e:
        validate_row({**ROW, **bad}, settings)
    assert e.value.column == column
    assert str(e.value).startswith(f"pseidon_logs row {str(bad.get('log', 'clicks'))!r}, column {column}: ")
    assert problem in str(e.value)


def test_date_format_and_retention_columns_are_read_when_valid(settings):
    spec = validate_row({**ROW, "date_format": " Date ", "retention_hours": " 48 ", "quarantine_retention_hours": ""},
                        settings)
    assert (spec.hourly, spec.retention_hours, spec.quarantine_retention_hours) == (False, 48, None)
