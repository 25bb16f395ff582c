"""Hive SQL built from rows (core/hive/sql.py): names, partition values and locations are validated and quoted before
anything is sent, and the storage clause matches the log's output format."""
from __future__ import annotations

import dataclasses

import pytest

from pseidon_dagster.core import hive
from pseidon_dagster.core.config import HivePartitionSettings
from pseidon_dagster.core.hive import (
    CatalogError,
    HiveCatalog,
    HiveTarget,
    partitions_for,
    registrar_for,
    storage_clause,
)
from tests.unit.core.hive.test_registration import BASE_HOUR, SETTINGS, file_info, log_spec


class NoServer(HiveCatalog):
    """A catalog that fails the test if it ever tries to connect."""

    def _connect(self):
        raise AssertionError("SQL would have been sent")


@pytest.mark.parametrize("table", [
    "t; DROP TABLE x", "t`; DROP TABLE x; --", "db.t.x", "db.", ".t", "t x", "t'", "1t", "db.t--", "`t`", "t\n",
    "dé.t",
])
def test_malicious_table_names_are_rejected(table):
    with pytest.raises(CatalogError):
        registrar_for(SETTINGS, log_spec(hive_table_name=table))
    with pytest.raises(CatalogError):
        NoServer(HiveTarget("h")).add_partitions(None, table, [({"dt": "20261120"}, "/x")])
    with pytest.raises(CatalogError):
        NoServer(HiveTarget("h")).describe(table)


@pytest.mark.parametrize("values,location", [
    ({"dt": "2026' OR '1'='1"}, "/x"),
    ({"dt": "20261120') LOCATION '/etc'"}, "/x"),
    ({"dt": "2026 11 20"}, "/x"),
    ({"dt": ""}, "/x"),
    ({"dt; DROP": "20261120"}, "/x"),
    ({}, "/x"),
    ({"dt": "20261120"}, "/x' ; DROP TABLE t; --"),
    ({"dt": "20261120"}, "/x\nDROP TABLE t"),
    ({"dt": "20261120"}, "/x\\"),
    ({"dt": "20261120"}, ""),
])
def test_malicious_partitions_are_rejected(values, location):
    with pytest.raises(CatalogError):
        NoServer(HiveTarget("h")).add_partitions("logs", "clicks", [({"dt": "20261119"}, "/ok"), (values, location)])


def test_bad_partition_formats_and_columns_are_rejected():
    bad_fmt = dataclasses.replace(SETTINGS, hive=HivePartitionSettings(date_value="%Y-%m-%d %H"))
    spec = log_spec()
    parts = partitions_for(bad_fmt, spec, [file_info("/data/x/date=20261120/hour=2026112007/f.gz", BASE_HOUR)])
    with pytest.raises(CatalogError):
        NoServer(HiveTarget("h")).add_partitions("logs", "clicks", parts)
    bad_col = dataclasses.replace(SETTINGS, hive=HivePartitionSettings(date_column="dt`"))
    with pytest.raises(CatalogError):
        hive.catalog_for(bad_col, spec)
    with pytest.raises(CatalogError):
        NoServer(HiveTarget("h")).create_table("logs", "t", [("a", "string); DROP TABLE x; --")], ["dt"],
                                               "STORED AS PARQUET")
    with pytest.raises(CatalogError):
        NoServer(HiveTarget("h")).create_table("logs", "t", [("a b", "string")], ["dt"], "STORED AS PARQUET")


@pytest.mark.parametrize("fmt,columns,clause", [
    ("txt:sep=pipe;ts=0", [("a", "string")], "ROW FORMAT DELIMITED FIELDS TERMINATED BY '|' STORED AS TEXTFILE"),
    ("txt:ts=0", [("a", "string")], "ROW FORMAT DELIMITED FIELDS TERMINATED BY '\\001' STORED AS TEXTFILE"),
    ("txt:sep=tab;ts=0", [("a", "string")], "ROW FORMAT DELIMITED FIELDS TERMINATED BY '\\011' STORED AS TEXTFILE"),
    ("txt:sep=semicolon;ts=0", [("a", "string")],
     "ROW FORMAT DELIMITED FIELDS TERMINATED BY '\\073' STORED AS TEXTFILE"),
    ("txt:sep=comma;ts=0", None, "ROW FORMAT DELIMITED FIELDS TERMINATED BY '\\n' STORED AS TEXTFILE"),
])
def test_text_storage_clauses(fmt, columns, clause):
    got, cols = storage_clause(log_spec(format=fmt), columns)
    assert got == clause
    assert cols == (columns or [("line", "string")])


def test_parquet_storage_needs_columns():
    with pytest.raises(CatalogError, match="give the table's columns"):
        storage_clause(log_spec(output_format="parquet"), None)
    assert storage_clause(log_spec(output_format="parquet"), [("a", "int")]) == ("STORED AS PARQUET", [("a", "int")])
