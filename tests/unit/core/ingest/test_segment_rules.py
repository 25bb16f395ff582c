"""The segment-cutting rules (core/ingest/segment.py) on their own: no server, the real Sink writing txt files into a
temporary directory. A replay's file names depend on these cuts, so they are checked against a model of the rules
and for independence from how the messages were batched."""
from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from pseidon_dagster.core.ingest.segment import CutRules, SegmentWriter, open_per_partition
from pseidon_dagster.core.ingest.sink import Sink
from pseidon_dagster.core.output_formats import open_text
from pseidon_dagster.core.partitioning import FileName

H = 3_600_000  # an hour in ms; hours are given as hour numbers since the epoch


def writer(root: Path, rules: CutRules, starts: dict[int, int]) -> SegmentWriter:
    def sink(kind: str, ext: str) -> Sink:
        return Sink(kind, str(root / kind), "clicks", "raw/clicks", True, ext,
                    lambda stream: open_text(stream, "txt"), 7, lambda **_: None, fsync=False)

    return SegmentWriter(rules, sink("data", "txt"), sink("quarantine", "jsonl.gz"), starts, quarantine_hour=0)


def feed(w: SegmentWriter, p: int, msgs: list[tuple[int, int | None, bytes]], batch: int) -> None:
    """MSGS: (offset, hour or None for a bad message, value), fed in batches of BATCH."""
    for i in range(0, len(msgs), batch):
        chunk = msgs[i:i + batch]
        bad = {j: "bad" for j, (_, h, _) in enumerate(chunk) if h is None}
        w.add(p, [o for o, _, _ in chunk], [h for _, h, _ in chunk], [v + b"\n" for _, _, v in chunk],
              [len(v) + 1 for _, _, v in chunk], bad, lambda j, reason: b'{"reason":"bad"}\n')


def cuts(files) -> list[tuple[int, int, int, int, int]]:
    return sorted((f.kind == "data", f.partition, f.start, f.end, f.hour) for f in files)


def model(msgs, rules: CutRules, start: int, end: int) -> list[tuple[int, int]]:
    """The segment boundaries the rules ask for, computed directly: [(start, end), ...]."""
    segments, seg_start, open_sizes = [], start, {}
    for offset, hour, value in msgs:
        if hour is None:
            continue
        if hour not in open_sizes and len(open_sizes) >= rules.open_per_partition:
            segments.append((seg_start, offset))
            seg_start, open_sizes = offset, {}
        open_sizes[hour] = open_sizes.get(hour, 0) + len(value) + 1
        if open_sizes[hour] >= rules.rollover_size:
            segments.append((seg_start, offset + 1))
            seg_start, open_sizes = offset + 1, {}
    if seg_start < end:
        segments.append((seg_start, end))
    return segments


def test_each_partition_gets_its_share_of_the_open_files_and_at_least_one():
    assert open_per_partition(16, 4) == 4
    assert open_per_partition(3, 4) == 1
    assert open_per_partition(5, 0) == 5


def test_a_file_reaching_the_rollover_size_ends_the_segment_after_that_message(tmp_path):
    rules = CutRules(rollover_size=10, open_per_partition=8)
    w = writer(tmp_path, rules, {0: 100})
    feed(w, 0, [(100, 5, b"aaaa"), (101, 5, b"bbbb"), (102, 5, b"cc"), (103, 5, b"d")], batch=10)
    files = w.finish({0: 104})
    # 5 + 5 = 10 bytes after offset 101 (values plus line breaks): the segment ends after it
    assert [(f.start, f.end, f.records) for f in files] == [(100, 102, 2), (102, 104, 2)]
    names = sorted(p.name for p in (tmp_path / "data").rglob("*.txt"))
    assert names == [str(FileName("clicks", 5, 0, 100, 102, "txt")), str(FileName("clicks", 5, 0, 102, 104, "txt"))]
    assert b"".join((p.read_bytes()) for p in sorted((tmp_path / "data").rglob("*.txt"))) == b"aaaa\nbbbb\ncc\nd\n"


def test_a_message_that_would_open_one_hour_too_many_starts_a_new_segment_before_it(tmp_path):
    rules = CutRules(rollover_size=1 << 20, open_per_partition=2)
    w = writer(tmp_path, rules, {3: 0})
    feed(w, 3, [(0, 1, b"a"), (1, 2, b"b"), (2, 1, b"c"), (3, 3, b"d"), (4, 2, b"e")], batch=2)
    files = w.finish({3: 5})
    assert [(f.start, f.end, f.hour, f.records) for f in sorted(files, key=lambda f: (f.start, f.hour))] == [
        (0, 3, 1, 2), (0, 3, 2, 1), (3, 5, 2, 1), (3, 5, 3, 1)]


def test_bad_messages_go_to_the_segments_quarantine_file_and_never_cut(tmp_path):
    rules = CutRules(rollover_size=3, open_per_partition=1)
    w = writer(tmp_path, rules, {0: 0})
    feed(w, 0, [(0, None, b"x" * 50), (1, 9, b"ab"), (2, None, b"y"), (3, 9, b"c")], batch=4)
    files = w.finish({0: 4})
    # a 50-byte bad message does not cut; "ab" fills the hour's file (3 bytes): the segment ends after offset 1
    assert [(f.kind, f.start, f.end, f.records) for f in sorted(files, key=lambda f: (f.start, f.kind))] == [
        ("data", 0, 2, 1), ("quarantine", 0, 2, 1), ("data", 2, 4, 1), ("quarantine", 2, 4, 1)]
    assert sorted(q.read_bytes() for q in (tmp_path / "quarantine").rglob("*.jsonl.gz")) == [
        b'{"reason":"bad"}\n'] * 2


def test_an_empty_partition_publishes_nothing(tmp_path):
    w = writer(tmp_path, CutRules(10, 2), {0: 40})
    assert w.finish({0: 40}) == []
    assert not list(tmp_path.rglob("*.txt"))


messages = st.lists(st.tuples(st.one_of(st.none(), st.integers(0, 4)), st.binary(min_size=0, max_size=12)),
                    max_size=60)


@settings(max_examples=150, deadline=None)
@given(msgs=messages, rollover=st.integers(1, 40), open_files=st.integers(1, 4), batches=st.tuples(
    st.integers(1, 7), st.integers(1, 61)), start=st.integers(0, 1000))
def test_cuts_follow_the_rules_whatever_the_batching(tmp_path_factory, msgs, rollover, open_files, batches, start):
    msgs = [(start + i, h, v.replace(b"\n", b" ")) for i, (h, v) in enumerate(msgs)]
    end = start + len(msgs)
    rules = CutRules(rollover, open_files)
    results = []
    for batch in batches:
        root = tmp_path_factory.mktemp("seg")
        w = writer(root, rules, {0: start})
        feed(w, 0, msgs, batch)
        files = w.finish({0: end})
        results.append(cuts(files))
        data = [f for f in files if f.kind == "data"]
        # segments are exactly the model's, and tile the plan's range with no gap and no overlap
        segs = sorted({(f.start, f.end) for f in files})
        assert segs == model(msgs, rules, start, end)
        assert all(a[1] == b[0] for a, b in zip(segs, segs[1:], strict=False))
        # every good message is in exactly one data file, of its hour, within its segment's range
        assert sum(f.records for f in data) == sum(1 for _, h, _ in msgs if h is not None)
        for f in data:
            assert sum(1 for o, h, _ in msgs if h == f.hour and f.start <= o < f.end) == f.records
        # no segment opens more hour files than its share
        per_segment: dict[tuple[int, int], int] = {}
        for f in data:
            per_segment[(f.start, f.end)] = per_segment.get((f.start, f.end), 0) + 1
        assert max(per_segment.values(), default=0) <= open_files
    assert results[0] == results[1]  # the same cuts however consume() split the messages
