"""What a run registers (core/hive/registration.py): the distinct partitions of its data files with their
locations, the table's location, and a registration failure's message. Against the real Thrift Server:
tests/integration/core/test_catalog.py."""
from __future__ import annotations

import dataclasses
import datetime as dt
import socket
import traceback
from functools import partial

import pytest

from pseidon_dagster.core import hive
from pseidon_dagster.core.config import HivePartitionSettings, from_mapping
from pseidon_dagster.core.hive import CatalogError, partitions_for, registrar_for
from pseidon_dagster.core.ingest import FileInfo, IngestResult
from tests.helpers import log_row

BASE_HOUR = int(dt.datetime(2026, 11, 20, 7, tzinfo=dt.timezone.utc).timestamp()) // 3600  # hours since the epoch
SETTINGS = from_mapping({"data-dir": "/data"})


# A row of log `clicks` (hourly, pipe-separated text, gzip) with a Hive table; KW overrides columns.
log_spec = partial(log_row, base_partition="/lake", hive_table_name="clicks", hive_url="//127.0.0.1:10000/logs",
                   hive_user="etl")


def file_info(path: str, hour: int, kind: str = "data") -> FileInfo:
    return FileInfo(path, kind, hour, 0, 0, 10, 10, 100, 50)


def result_of(files: list[FileInfo], log: str = "clicks") -> IngestResult:
    r = IngestResult(log)
    r.files = files
    return r


def test_partitions_for_hourly_layout():
    spec = log_spec()
    root = "/lake/raw/clicks"
    files = [
        file_info(f"{root}/date=20261120/hour=2026112008/a.gz", BASE_HOUR + 1),
        file_info(f"{root}/date=20261120/hour=2026112007/a.gz", BASE_HOUR),
        file_info(f"{root}/date=20261120/hour=2026112007/b.gz", BASE_HOUR),
        file_info("/tmp/pseidon-quarantine/raw/clicks/date=20261120/hour=2026112009/q.jsonl.gz", BASE_HOUR + 2,
                  "quarantine"),
    ]
    assert partitions_for(SETTINGS, spec, files) == [
        ({"dt": "20261120", "hr": "2026112007"}, f"file://{root}/date=20261120/hour=2026112007"),
        ({"dt": "20261120", "hr": "2026112008"}, f"file://{root}/date=20261120/hour=2026112008"),
    ]


def test_partitions_for_date_only_layout_registers_each_day_once():
    spec = log_spec(date_format="date")
    root = "/lake/raw/clicks"
    files = [file_info(f"{root}/date=20261120/a.gz", BASE_HOUR + h) for h in range(0, 17)]  # 07:00 .. 23:00
    files.append(file_info(f"{root}/date=20261121/a.gz", BASE_HOUR + 17))
    assert partitions_for(SETTINGS, spec, files) == [
        ({"dt": "20261120"}, f"file://{root}/date=20261120"),
        ({"dt": "20261121"}, f"file://{root}/date=20261121"),
    ]


def test_partitions_for_custom_columns_and_remote_storage():
    s = dataclasses.replace(SETTINGS, hive=HivePartitionSettings(date_column="day", hour_column="hour",
                                                                 date_value="%Y-%m-%d", hour_value="%H"))
    spec = log_spec(base_partition="hdfs://nn1/log/pseidon")
    files = [file_info("/log/pseidon/raw/clicks/date=20261120/hour=2026112007/a.gz", BASE_HOUR)]
    assert partitions_for(s, spec, files) == [
        ({"day": "2026-11-20", "hour": "07"}, "hdfs://nn1/log/pseidon/raw/clicks/date=20261120/hour=2026112007"),
    ]


def test_relative_base_partition_resolves_under_data_dir():
    spec = log_spec(base_partition="lake")
    assert hive.table_location(SETTINGS, spec) == "file:///data/lake/raw/clicks"
    assert hive.table_location(SETTINGS, log_spec(base_partition="s3://b/lake")) == "s3://b/lake/raw/clicks"


def test_registrar_failure_names_log_table_partitions_and_cause_but_no_password():
    with socket.socket() as s:  # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    fast = from_mapping({"data-dir": "/data", "hive": {"retries": 1, "retry-backoff-ms": 10}})
    spec = log_spec(hive_url=f"//127.0.0.1:{port}/logs", hive_password="hunter2-pw")
    register = registrar_for(fast, spec)
    files = [file_info("/lake/raw/clicks/date=20261120/hour=2026112007/a.gz", BASE_HOUR)]
    with pytest.raises(CatalogError) as e:
        register(result_of(files))
    msg = str(e.value)
    for part in ("'clicks'", "logs.clicks", "dt=20261120/hr=2026112007", f"127.0.0.1:{port}",
                 "not reachable after 2 attempt(s)"):
        assert part in msg, part
    assert "hunter2-pw" not in msg + "".join(traceback.format_exception(e.value))
    assert register(result_of([])) == []  # nothing written: nothing to register, no connection
