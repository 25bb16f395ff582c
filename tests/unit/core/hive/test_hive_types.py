"""Column types (schema files, DESCRIBE, create_table_for) are checked against the whole Hive type grammar: the text
goes into CREATE TABLE, so a valid first word followed by anything else must be refused."""
from __future__ import annotations

import json

import pyarrow as pa
import pytest

from pseidon_dagster.core.hive import CatalogError, SchemaError, hive_type, load_schema_file, schema_from_columns
from pseidon_dagster.core.hive import types as hive_types
from tests import REPO_ROOT

GOOD_TYPES = {
    "int": pa.int32(), " INTEGER ": pa.int32(), "bigint": pa.int64(), "tinyint": pa.int8(), "smallint": pa.int16(),
    "string": pa.string(), "varchar(10)": pa.string(), "char( 3 )": pa.string(), "boolean": pa.bool_(),
    "float": pa.float32(), "double": pa.float64(), "double precision": pa.float64(), "binary": pa.binary(),
    "timestamp": pa.timestamp("ms"), "timestamp with local time zone": pa.timestamp("ms"), "date": pa.date32(),
    "decimal": pa.decimal128(10, 0),
    "decimal(12)": pa.decimal128(12, 0), "decimal(12, 2)": pa.decimal128(12, 2),
    "array<int>": pa.list_(pa.int32()), "array< array<string> >": pa.list_(pa.list_(pa.string())),
    "map<string,bigint>": pa.map_(pa.string(), pa.int64()),
    "map<string, decimal(5,2)>": pa.map_(pa.string(), pa.decimal128(5, 2)),
    "struct<a:int,b:map<string,int>>": pa.struct([("a", pa.int32()), ("b", pa.map_(pa.string(), pa.int32()))]),
    "STRUCT<A : INT, b:array<struct<c:string>>>": pa.struct([("a", pa.int32()),
                                                             ("b", pa.list_(pa.struct([("c", pa.string())])))]),
}


@pytest.mark.parametrize("text", list(GOOD_TYPES))
def test_hive_types(text):
    assert hive_type(text) == GOOD_TYPES[text]


BAD_TYPES = ["int garbage", "int, x int", "string) STORED AS TEXTFILE LOCATION ('/etc'", "decimal(10,2) x",
             "decimal(10,2", "decimal(39,2)", "decimal(5,6)", "decimal()", "varchar", "varchar(0)", "char(256)",
             "array<int> x", "array<int>>", "array<>", "array<int", "array", "map<string>", "map<string,int,int>",
             "map<array<int>,int>", "struct<>", "struct<a int>", "struct<a:int,>", "struct<1a:int>",
             "struct<a:int> x", "uniontype<int,string>", "int;", "in t", "", "   ", "bigint comment 'x'",
             "double precisions", "timestamp_ntz", "string$"]


@pytest.mark.parametrize("text", BAD_TYPES)
def test_anything_but_one_whole_hive_type_is_refused(text):
    with pytest.raises(SchemaError):
        hive_type(text)
    with pytest.raises(CatalogError):
        hive_types.column_type(text)


def test_schema_files_are_checked_whole_and_name_the_column(tmp_path):
    (tmp_path / "clicks.json").write_text(json.dumps({"columns": [{"name": "ts", "type": "bigint"},
                                                                  {"name": "msg", "type": "int garbage"}]}))
    with pytest.raises(SchemaError, match=r"clicks\.json.*msg.*int garbage"):
        load_schema_file(str(tmp_path), "clicks")
    with pytest.raises(SchemaError, match="twice"):
        schema_from_columns([("a", "int"), ("A", "string")])


def test_the_example_schema_file_the_readme_points_to_loads():

    from pseidon_dagster.core.hive import load_schema_file

    conf = REPO_ROOT / "conf" / "schemas"
    schema = load_schema_file(str(conf), "example-orders")
    assert schema is not None and schema.names == ["ts", "order_id", "customer", "amount", "items", "paid"]
    assert str(schema.field("amount").type) == "decimal128(10, 2)"


def test_arrow_columns_round_trip():
    cols = [("a", "bigint"), ("b", "string"), ("c", "decimal(12,2)"), ("d", "array<int>"),
            ("e", "map<string,double>"), ("f", "struct<x:int,y:string>"), ("g", "date"), ("h", "boolean")]
    assert hive_types.arrow_columns(schema_from_columns(cols)) == cols
