"""Where a Parquet log's schema comes from when a plan is made (core/ingest/run.py parquet_schema): the schema file
<schema-dir>/<log>.json for a log without a Hive table, the Hive table (never the file) for a log with one, and a
clear error when there is neither."""
from __future__ import annotations

import json
from functools import partial

import pyarrow as pa
import pytest

from pseidon_dagster.core import config as config_mod
from pseidon_dagster.core.hive import CatalogError
from pseidon_dagster.core.ingest import IngestError, parquet_schema
from tests.helpers import log_row

spec = partial(log_row, format="json", output_format="parquet", log_partition="raw/c")


def test_a_log_without_a_hive_table_reads_its_schema_file(tmp_path):
    (tmp_path / "clicks.json").write_text(json.dumps({"columns": [{"name": "ts", "type": "bigint"},
                                                                  {"name": "name", "type": "string"}]}))
    s = config_mod.from_mapping({"data-dir": str(tmp_path), "schema-dir": str(tmp_path)})
    expected = pa.schema([("ts", pa.int64()), ("name", pa.string())])
    assert parquet_schema(s, spec()).equals(expected)
    assert parquet_schema(s, spec(hive_table_name="db.clicks")).equals(expected)  # a table name alone: no Hive
    # a Hive URL without a table name: the file too (the URL is not even parsed)
    assert parquet_schema(s, spec(hive_url="hive://127.0.0.1:1/default")).equals(expected)


def test_a_log_with_neither_says_what_to_create(tmp_path):
    s = config_mod.from_mapping({"data-dir": str(tmp_path), "schema-dir": str(tmp_path / "schemas")})
    with pytest.raises(IngestError, match=f"log 'clicks' writes parquet but has no schema: set "
                                          f"hive_url/hive_table_name to a Hive table, or create "
                                          f"{tmp_path}/schemas/clicks.json"):
        parquet_schema(s, spec())


def test_a_run_finishing_a_backfill_gets_the_logs_hive_catalog_only_when_it_has_one(tmp_path):
    import redis

    from pseidon_dagster.core.hive import HiveCatalog
    from pseidon_dagster.core.ingest import Ingestor
    from pseidon_dagster.core.offsets import OffsetStore

    s = config_mod.from_mapping({"data-dir": str(tmp_path)})
    store = OffsetStore(redis.Redis(host="127.0.0.1", port=1), "g")  # never used: no server is asked
    assert Ingestor(s, spec(), store)._catalog() is None
    hive = spec(hive_url="jdbc:hive2://127.0.0.1:1/default", hive_table_name="db1.t1")
    cat, db, table = Ingestor(s, hive, store)._catalog()  # made, not connected
    assert isinstance(cat, HiveCatalog) and (db, table) == ("db1", "t1") and str(cat.target) == "127.0.0.1:1/default"


def test_a_log_with_a_hive_table_takes_its_schema_from_hive_not_from_a_schema_file(tmp_path):
    # The schema file is there too, but the log names a Hive table: the plan must freeze the table's columns, so a
    # HiveServer2 that does not answer fails the plan (naming the server) instead of writing with the file's schema.
    (tmp_path / "clicks.json").write_text(json.dumps({"columns": [{"name": "ts", "type": "bigint"}]}))
    s = config_mod.from_mapping({"data-dir": str(tmp_path), "schema-dir": str(tmp_path), "hive": {"retries": 0}})
    hive = spec(hive_url="jdbc:hive2://127.0.0.1:1/default", hive_table_name="db1.clicks")
    with pytest.raises(CatalogError, match=r"DESCRIBE clicks: HiveServer2 127\.0\.0\.1:1/default not reachable"):
        parquet_schema(s, hive)
