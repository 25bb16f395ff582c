"""File names and directories of the lake (core/partitioning.py) as a user lists them, and as they come back from a
name: the hour is a whole hour number, whatever the width of the offsets."""
from __future__ import annotations

import dataclasses
import json

from pseidon_dagster.core.partitioning import FIRST_HOUR, LAST_HOUR, FileName, hour_key, hour_start, partition_dir

H = 498_655  # 2026-11-20 07:00 UTC


def test_a_parsed_name_reports_whole_hours_and_offsets():
    name = FileName.parse("clicks-2026-11-20-07.p3.o0000000000000000009-0000000000000000012.jsonl.gz")
    assert name == FileName("clicks", H, 3, 9, 12, "jsonl.gz")
    assert json.dumps(dataclasses.asdict(name)) == ('{"log": "clicks", "hour": 498655, "partition": 3, "start": 9, '
                                                    '"end": 12, "ext": "jsonl.gz"}')


def test_names_that_are_not_the_lakes_are_not_parsed():
    for other in ("clicks-2026-11-20-07.p3.o9-12", "clicks-2026-11-20-7.p3.o9-12.gz", "clicks.p3.o9-12.gz",
                  ".clicks.h498655.p0.o10.gz.7.tmp", "clicks-2026-11-20-07.p3.o9-12.GZ", ""):
        assert FileName.parse(other) is None, other
    assert FileName.parse("my-log-2026-11-20-07.p0.o1-2.gz").log == "my-log"


def test_the_first_and_last_hours_of_four_digit_years():
    assert str(hour_start(FIRST_HOUR)) == "1000-01-01 00:00:00+00:00"
    assert str(hour_start(LAST_HOUR)) == "9999-12-31 23:00:00+00:00"
    assert hour_key(H) == "2026-11-20-07:00"
    assert partition_dir("s3://b/lake/", "raw/x", H) == "s3://b/lake/raw/x/date=20261120/hour=2026112007"
