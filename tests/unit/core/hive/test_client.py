"""The HiveServer2 client (core/hive/client.py) without a server: retries with backoff against a closed loopback
port, and the parsing of the server's DESCRIBE answers and partition locations."""
from __future__ import annotations

import socket

import pytest

from pseidon_dagster.core.hive import CatalogError, HiveCatalog, HiveTarget, describe_columns, same_location


def test_retries_with_exponential_backoff_then_fails():
    slept = []
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cat = HiveCatalog(HiveTarget("127.0.0.1", port), "etl", "pw-secret", retries=3, backoff_s=0.5,
                      sleep=slept.append, timeout_s=2)
    with pytest.raises(CatalogError, match=r"not reachable after 4 attempt\(s\)") as e:
        cat.add_partitions("logs", "clicks", [({"dt": "20261120"}, "file:///x/date=20261120")])
    assert slept == [0.5, 1.0, 2.0]
    assert "pw-secret" not in str(e.value) and "pw-secret" not in repr(cat)


def test_describe_columns_spark_and_hive_styles():
    spark = [("ts", "bigint", None), ("msg", "string", None), ("dt", "string", None), ("hr", "string", None),
             ("# Partition Information", "", ""), ("# col_name", "data_type", "comment"),
             ("dt", "string", None), ("hr", "string", None)]
    hive = [("ts                  ", "bigint              ", ""), ("Msg                 ", "varchar(10)", ""),
            ("dt                  ", "string              ", ""), ("", None, None),
            ("# Partition Information", None, None), ("# col_name            ", "data_type           ", "comment"),
            ("", None, None), ("dt                  ", "string              ", "")]
    assert describe_columns(spark) == [("ts", "bigint"), ("msg", "string")]
    assert describe_columns(hive) == [("ts", "bigint"), ("msg", "varchar(10)")]


@pytest.mark.parametrize("a,b,same", [
    ("file:/x/date=1", "file:///x/date=1", True),
    ("file:/x/date=1/", "/x/date=1", True),
    ("hdfs://nn:8020/x", "hdfs://nn/x", True),
    ("hdfs://nn/x", "file:///x", False),
    ("file:/x/dt=1/hr=2", "file:///x/date=1/hour=2", False),
])
def test_same_location(a, b, same):
    assert same_location(a, b) is same
