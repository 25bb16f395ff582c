"""Deterministic cuts: which messages of a Kafka partition share a segment, i.e. a set of files named after the same
offset range [start, end) -- one file per event hour, plus one quarantine file.

A cut depends only on the partition's own messages, in offset order, and on rules frozen in the plan; never on
wall clock, on how consume() interleaved partitions, or on what other partitions did. So a replay of a plan cuts at
the same offsets and writes the same file names.

Rules, per partition:
- a file reaching `rollover_size` bytes (before compression) ends the segment after that message;
- a message for an event hour that would open more than `open_per_partition` hour files ends the segment before it.
`open_per_partition` is :writer :max-open-files divided among the partitions the plan reads, so the files a run
has open at once stay within :max-open-files however its partitions interleave.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from ..model import FileInfo
from .sink import HourFile, Sink
from .vector import runs


def open_per_partition(max_open_files: int, partitions: int) -> int:
    """Each partition's share of :max-open-files (at least one file, so a run always progresses)."""
    return max(1, max_open_files // max(1, partitions))


@dataclasses.dataclass(frozen=True)
class CutRules:
    rollover_size: int
    open_per_partition: int

    def cut_before(self, open_hours: int) -> bool:
        """A message for an hour with no open file: end the segment before it?"""
        return open_hours >= self.open_per_partition

    def cut_after(self, file_bytes: int) -> bool:
        """A file holds FILE_BYTES after a message: end the segment after it?"""
        return file_bytes >= self.rollover_size


class _Segment:
    __slots__ = ("start", "files", "quarantine")

    def __init__(self, start: int):
        self.start = start
        self.files: dict[int, HourFile] = {}
        self.quarantine: HourFile | None = None


class SegmentWriter:
    """Feeds routed batches of one run into the data and quarantine sinks, cutting segments by the rules."""

    def __init__(self, rules: CutRules, data: Sink, quarantine: Sink, starts: dict[int, int], quarantine_hour: int):
        self.rules = rules
        self.data = data
        self.quarantine = quarantine
        self.quarantine_hour = quarantine_hour
        self.segments = {p: _Segment(s) for p, s in starts.items()}
        self.published: list[FileInfo] = []

    def add(self, p: int, offsets: list[int], hours: list, out: list, sizes: list[int],
            bad: dict[int, str], quarantine_record: Callable[[int, str], bytes]) -> None:
        """One partition's batch, in offset order: HOURS[i] is the event hour of message i, or None for a message
        that is filtered (not in BAD) or quarantined (BAD[i] is the reason)."""
        seg = self.segments[p]
        rules, data = self.rules, self.data
        files = seg.files
        for i, hour in enumerate(hours):
            if hour is None:
                reason = bad.get(i)
                if reason is not None:
                    q = seg.quarantine
                    if q is None:
                        q = seg.quarantine = self.quarantine.open(p, self.quarantine_hour, seg.start)
                    rec = quarantine_record(i, reason)
                    self.quarantine.append(q, rec, len(rec))
                continue
            f = files.get(hour)
            if f is None:
                if rules.cut_before(len(files)):
                    self.cut(p, offsets[i])
                    seg = self.segments[p]
                    files = seg.files
                f = files[hour] = data.open(p, hour, seg.start)
            data.append(f, out[i], sizes[i])
            if rules.cut_after(f.size):
                self.cut(p, offsets[i] + 1)
                seg = self.segments[p]
                files = seg.files

    def add_runs(self, p: int, msgs: list, batch, quarantine_record: Callable[[int, str], bytes]) -> None:
        """The same as add() for a VectorBatch (ingest/vector.py), a run of consecutive messages of one hour at a
        time: the same cuts at the same offsets, the same records in the same files."""
        rules, data = self.rules, self.data
        sizes, hours, good = batch.sizes, batch.hours, batch.good
        for a, b in runs(hours, good):
            if not good[a]:
                seg = self.segments[p]
                for i in range(a, b):
                    reason = batch.bad.get(i)
                    if reason is not None:
                        q = seg.quarantine
                        if q is None:
                            q = seg.quarantine = self.quarantine.open(p, self.quarantine_hour, seg.start)
                        rec = quarantine_record(i, reason)
                        self.quarantine.append(q, rec, len(rec))
                continue
            hour = int(hours[a])
            while a < b:
                seg = self.segments[p]
                f = seg.files.get(hour)
                if f is None:
                    if rules.cut_before(len(seg.files)):
                        self.cut(p, msgs[a].offset())
                        seg = self.segments[p]
                    f = seg.files[hour] = data.open(p, hour, seg.start)
                # the first message after which the file reaches the rollover size ends the segment
                cum = np.cumsum(sizes[a:b])
                k = int(np.searchsorted(cum, rules.rollover_size - f.size, side="left"))
                end = min(b, a + k + 1)
                data.append_many(f, batch.chunk(a, end) if batch.table is None else batch.table.slice(a, end - a),
                                 sizes[a:end])
                if rules.cut_after(f.size):
                    self.cut(p, msgs[end - 1].offset() + 1)
                a = end

    def cut(self, p: int, boundary: int) -> None:
        """End partition P's segment at BOUNDARY: publish its files as [start, boundary)."""
        seg = self.segments[p]
        if seg.files:
            self.published += self.data.publish(list(seg.files.values()), boundary)
        if seg.quarantine is not None:
            self.published += self.quarantine.publish([seg.quarantine], boundary)
        self.segments[p] = _Segment(boundary)

    def finish(self, ends: dict[int, int]) -> list[FileInfo]:
        for p in sorted(ends):
            self.cut(p, ends[p])
        return self.published
