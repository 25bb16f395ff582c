"""The publish stage on its own (core/ingest/sink.py), writing real files in a temporary directory: temporary names
recorded before they exist, buffered records flushed at the flush size or when all files together buffer too much,
the final names and the numbers each published file reports, daily layouts and a rebuild's own directories."""
from __future__ import annotations

import gzip

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pseidon_dagster.core.ingest.sink import MAX_BUFFERED_ROWS, MAX_BUFFERED_TEXT, Sink
from pseidon_dagster.core.model import FileInfo
from pseidon_dagster.core.output_formats import open_text
from pseidon_dagster.core.partitioning import FileName
from pseidon_dagster.core.writers import ParquetFile

H = 498_655  # 2026-11-20 07:00 UTC


def text_sink(root, recorded, hourly=True, **kw) -> Sink:
    return Sink("data", str(root), "clicks", "raw/clicks", hourly, "gz", lambda s: open_text(s, "gzip"), 7,
                lambda **k: recorded.append(k), fsync=False, **kw)


def files_under(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_records_wait_in_memory_until_the_flush_size_then_go_to_a_recorded_temporary_file(tmp_path):
    recorded = []
    sink = text_sink(tmp_path, recorded, flush_bytes=10)
    f = sink.open(2, H, 40)
    sink.append(f, b"abcd\n", 5)
    assert files_under(tmp_path) == [] and recorded == [] and sink.buffered == 5
    sink.append(f, b"efgh\n", 5)  # 10: the flush size, flushed
    tmp = "raw/clicks/date=20261120/hour=2026112007/.clicks.h498655.p2.o40.gz.7.tmp"
    assert files_under(tmp_path) == [tmp]
    assert recorded == [{"temps": [str(tmp_path / tmp)]}]
    assert (f.pending, f.pending_bytes, sink.buffered, f.size, f.records) == ([], 0, 0, 10, 2)


def test_publishing_renames_to_the_final_name_and_reports_the_file(tmp_path):
    recorded = []
    sink = text_sink(tmp_path, recorded)
    a, b = sink.open(0, H, 10), sink.open(0, H + 1, 10)
    for line in (b"one\n", b"two\n"):
        sink.append(a, line, len(line))
    sink.append(b, b"three\n", 6)
    out = sink.publish([a, b], 25)
    d0, d1 = "raw/clicks/date=20261120/hour=2026112007", "raw/clicks/date=20261120/hour=2026112008"
    n0, n1 = str(FileName("clicks", H, 0, 10, 25, "gz")), str(FileName("clicks", H + 1, 0, 10, 25, "gz"))
    assert files_under(tmp_path) == [f"{d0}/{n0}", f"{d1}/{n1}"]
    assert recorded[-1] == {"finals": [str(tmp_path / d0 / n0), str(tmp_path / d1 / n1)]}
    assert len(recorded) == 3  # two temporary names, then the finals together
    assert out == [FileInfo(str(tmp_path / d0 / n0), "data", H, 0, 10, 25, 2, 8, (tmp_path / d0 / n0).stat().st_size),
                   FileInfo(str(tmp_path / d1 / n1), "data", H + 1, 0, 10, 25, 1, 6,
                            (tmp_path / d1 / n1).stat().st_size)]
    assert gzip.decompress((tmp_path / d0 / n0).read_bytes()) == b"one\ntwo\n"
    assert sink.dirs == {str(tmp_path / d0), str(tmp_path / d1)}
    sink.sync()  # the directories exist: syncing them is fine


def test_a_daily_layout_and_a_rebuilds_own_directories(tmp_path):
    daily = text_sink(tmp_path / "a", [], hourly=False)
    f = daily.open(1, H, 0)
    daily.append(f, b"x\n", 2)
    daily.publish([f], 1)
    assert files_under(tmp_path / "a") == [f"raw/clicks/date=20261120/{FileName('clicks', H, 1, 0, 1, 'gz')}"]
    fresh = text_sink(tmp_path / "b", [], directory_of=lambda hour: str(tmp_path / "b" / f".fresh-{hour}"))
    f = fresh.open(1, H, 0)
    fresh.append(f, b"x\n", 2)
    fresh.publish([f], 1)
    assert files_under(tmp_path / "b") == [f".fresh-{H}/{FileName('clicks', H, 1, 0, 1, 'gz')}"]


def test_when_all_files_buffer_too_much_every_pending_file_is_flushed(tmp_path):
    sink = text_sink(tmp_path, [], max_buffered=10)
    a, b, c = sink.open(0, H, 0), sink.open(1, H, 0), sink.open(2, H, 0)
    sink.append(a, b"aaaa\n", 5)
    sink.append(b, b"bbbb\n", 5)
    sink.flush_all_if_over()
    assert files_under(tmp_path) == []  # 10 is not over 10
    sink.append(b, b"b\n", 2)
    sink.flush_all_if_over()
    assert len(files_under(tmp_path)) == 2 and sink.buffered == 0 and c.writer is None
    assert (a.pending, b.pending) == ([], [])
    assert text_sink(tmp_path, []).max_buffered == MAX_BUFFERED_TEXT


def test_consecutive_lines_at_once_count_as_their_records(tmp_path):
    sink = text_sink(tmp_path, [], flush_bytes=100)
    f = sink.open(0, H, 0)
    sink.append_many(f, b"a\nbb\n", np.array([2, 3]))
    assert (f.records, f.size, f.pending_bytes, sink.buffered, f.writer) == (2, 5, 5, 5, None)
    sink.append_many(f, b"c" * 94 + b"\n", np.array([95]))  # 100 bytes: the flush size, flushed
    assert f.writer is not None and f.pending == [] and sink.buffered == 0
    assert len(files_under(tmp_path)) == 1  # the temporary file
    out = sink.publish([f], 3)
    assert out[0].records == 3 and out[0].raw_bytes == 100
    assert gzip.decompress(open(out[0].path, "rb").read()) == b"a\nbb\n" + b"c" * 94 + b"\n"


def test_parquet_rows_and_table_slices_land_in_one_file_in_order(tmp_path):
    schema = pa.schema([("n", pa.int64()), ("s", pa.string())])
    sink = Sink("data", str(tmp_path), "clicks", "raw/clicks", True, "parquet",
                lambda s: ParquetFile(s, schema, "snappy", 1 << 20), 7, lambda **k: None, rows=True, fsync=False)
    assert sink.max_buffered == MAX_BUFFERED_ROWS
    f = sink.open(0, H, 0)
    sink.append(f, (1, "a"), 10)
    sink.append(f, (2, "b"), 10)
    assert f.sizes == [10, 10]
    sink.append_many(f, pa.table({"n": [3, 4], "s": ["c", "d"]}, schema=schema), np.array([7, 8]))
    assert f.sizes == [] and f.records == 4 and f.size == 35
    sink.append(f, (5, "e"), 10)
    out = sink.publish([f], 5)
    assert pq.read_table(out[0].path).to_pylist() == [{"n": i, "s": s} for i, s in enumerate("abcde", 1)]
    assert (out[0].records, out[0].raw_bytes) == (5, 45)
