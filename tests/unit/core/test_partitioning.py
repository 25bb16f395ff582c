"""Data file names (core/partitioning.py FileName): offsets zero-padded so a listing sorts in offset order, and the
names of earlier versions still parse."""
from __future__ import annotations

from pseidon_dagster.core.partitioning import FileName, partition_dir


def test_file_names_zero_pad_offsets_and_both_widths_parse():
    names = [FileName("clicks", 498655, 0, s, e, "gz") for s, e in ((9, 10), (10, 200), (200, 1000), (1000, 12000))]
    text = [str(n) for n in names]
    assert text[0] == "clicks-2026-11-20-07.p0.o0000000000000000009-0000000000000000010.gz"
    assert sorted(text) == text  # a listing sorts in offset order
    assert [FileName.parse(t) for t in text] == names
    assert FileName.parse("clicks-2026-11-20-07.p0.o9-10.gz") == names[0]  # names of earlier versions


def test_a_root_or_log_partition_ending_in_x_keeps_its_name():
    # only slashes are trimmed: a directory named ...X stays itself (a mutation run's survivor)
    hour = 495_007  # 2026-06-21 07:00 UTC, hours since the epoch
    d = partition_dir("/data/lakeX", "/raw/clicksX/", hour)
    assert d.startswith("/data/lakeX/raw/clicksX/date=") and partition_dir("/data/lake/", "raw/c", hour).startswith(
        "/data/lake/raw/c/date=")
