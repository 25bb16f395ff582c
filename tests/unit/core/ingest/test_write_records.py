"""Small pieces of the write and publish stages, without a server: the quarantine record a user reads, the Parquet
row-group size a plan implies, the totals of worker processes added up, line escaping, and a failed attempt's
temporary files removed."""
from __future__ import annotations

import base64
import json

from pseidon_dagster.core.ingest.route import escape_line
from pseidon_dagster.core.ingest.sink import Sink
from pseidon_dagster.core.ingest.write import PARQUET_MEMORY, Written, quarantine_line, row_group_bytes
from pseidon_dagster.core.model import Counts, FileInfo
from pseidon_dagster.core.output_formats import open_text


class Msg:
    """What the stages read of a confluent_kafka.Message."""

    def __init__(self, offset: int, value: bytes | None, ts: int = 1_795_000_000_123):
        self._o, self._v, self._ts = offset, value, ts

    def offset(self):
        return self._o

    def value(self):
        return self._v

    def timestamp(self):
        return (1, self._ts)


def test_a_quarantine_record_names_the_message_the_reason_and_keeps_its_bytes():
    line = quarantine_line("clicks", 2, Msg(41, b"\xff|not a ts"), "bad timestamp: 'x'", 1_795_000_999_000)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == {"log": "clicks", "partition": 2, "offset": 41, "kafka_timestamp": 1_795_000_000_123,
                                "error": "bad timestamp: 'x'", "read_at_ms": 1_795_000_999_000,
                                "raw_base64": base64.b64encode(b"\xff|not a ts").decode()}
    assert list(json.loads(line)) == sorted(json.loads(line))  # keys sorted: the same bytes in a replay
    assert json.loads(quarantine_line("clicks", 0, Msg(1, None), "null", 5))["raw_base64"] is None


def test_row_groups_are_the_block_size_or_less_when_many_files_are_open():
    assert row_group_bytes({"parquet_block_size": 8 << 20, "max_open_files": 2}) == 8 << 20
    assert row_group_bytes({"parquet_block_size": 64 << 20, "max_open_files": 4}) == PARQUET_MEMORY // 4
    assert row_group_bytes({"parquet_block_size": 64 << 20, "max_open_files": 1000}) == 1 << 20  # at least 1 MiB
    assert row_group_bytes({"parquet_block_size": 1000, "max_open_files": 1}) == 1 << 20
    assert row_group_bytes({"max_open_files": 1}) == 20_971_520  # plans of earlier versions: the default
    assert row_group_bytes({"max_open_files": 0, "parquet_block_size": 64 << 20}) == PARQUET_MEMORY
    assert row_group_bytes({"parquet_block_size": 64 << 20, "max_open_files": 7}) == 7_190_235  # whole bytes


def test_the_workers_totals_add_up():
    f1 = FileInfo("/a", "data", 1, 0, 0, 5, 5, 50, 20)
    f2 = FileInfo("/b", "quarantine", 1, 1, 0, 3, 1, 10, 9)
    total = Written([f1], Counts(6, 5, 1, 0), {"bad ts": 2})
    total.add(Written([f2], Counts(3, 1, 1, 1), {"bad ts": 1, "line break": 4}))
    assert total.files == [f1, f2]
    assert total.counts == Counts(9, 6, 2, 1)
    assert total.reasons == {"bad ts": 3, "line break": 4}


def test_escaping_makes_one_line_of_a_line_with_breaks_and_backslashes():
    assert escape_line(b"a\\b\nc\rd\n") == b"a\\\\b\\nc\\rd\n"
    assert escape_line(b"no newline\\") == b"no newline\\\\\n"
    assert escape_line(b"\n") == b"\n"
    assert escape_line(b"") == b"\n"


def test_an_aborted_attempt_leaves_no_temporary_file(tmp_path):
    recorded = []
    sink = Sink("data", str(tmp_path), "clicks", "raw/clicks", True, "gz", lambda stream: open_text(stream, "gzip"),
                7, lambda **kw: recorded.append(kw), flush_bytes=1, fsync=False)
    a, b = sink.open(0, 493_000, 10), sink.open(1, 493_001, 0)
    sink.append(a, b"x\n", 2)  # flushed at once: a temporary file on disk
    sink.open(2, 493_000, 0)  # never written: nothing on disk
    tmps = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert [p.name for p in tmps] == [".clicks.h493000.p0.o10.gz.7.tmp"]
    assert recorded == [{"temps": [str(tmps[0])]}]
    sink.append(b, b"y\n", 2)
    sink.abort()
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    sink.abort()  # twice is harmless


def test_an_aborted_attempt_closes_the_output_streams_it_opened(tmp_path):
    streams = []  # the storage's real output streams, as the sink's writers got them

    def open_writer(stream):
        streams.append(stream)
        return open_text(stream, "gzip")

    sink = Sink("data", str(tmp_path), "clicks", "raw/clicks", True, "gz", open_writer, 7, lambda **kw: None,
                flush_bytes=1, fsync=False)
    for p in range(3):
        sink.append(sink.open(p, 493_000, 0), b"x\n", 2)  # each flushed at once: an open stream
    assert len(streams) == 3 and not any(s.closed for s in streams)
    sink.abort()
    assert all(s.closed for s in streams)  # not left open (a remote filesystem's upload) until garbage collection
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
