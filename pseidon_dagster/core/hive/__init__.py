"""Hive over HiveServer2: partition registration, table schemas and table creation.

    url.py           hive_url -> HiveTarget (where HiveServer2 is); the :hive :allowed-hosts check
    sql.py           validated, quoted SQL text: names, partitions, LOCATION, the storage clause, CREATE TABLE
    types.py         Hive column types <-> Arrow types; <schema-dir>/<log>.json schema files
    client.py        HiveCatalog: connections, retries, DDL, reading the server's answers
    registration.py  per log: the partitions a run registers, its HiveCatalog, its table's schema, CREATE TABLE
    errors.py        CatalogError
"""
from .client import HiveCatalog, describe_columns, same_location
from .errors import CatalogError
from .registration import (
                           Registrar,
                           catalog_for,
                           create_table_for,
                           hive_schema_for,
                           partition_values,
                           partitions_for,
                           registrar_for,
                           table_location,
                           table_name_of,
)
from .sql import location_literal, partition_spec, split_table, storage_clause
from .types import SchemaError, arrow_columns, arrow_to_hive, hive_type, load_schema_file, schema_from_columns
from .url import HiveTarget, parse_hive_url, target_for

__all__ = [
    "CatalogError", "HiveCatalog", "HiveTarget", "Registrar", "SchemaError", "arrow_columns", "arrow_to_hive",
    "catalog_for", "create_table_for", "describe_columns", "hive_schema_for", "hive_type", "load_schema_file",
    "location_literal", "parse_hive_url", "partition_spec", "partition_values", "partitions_for", "registrar_for",
    "same_location", "schema_from_columns", "split_table", "storage_clause", "table_location", "table_name_of",
    "target_for",
]
