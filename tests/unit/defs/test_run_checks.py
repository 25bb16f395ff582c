"""The in-run checks of ingest_job (offset_continuity, record_counts) on results built by hand, without a server:
each fails, with the reason a user reads, when its invariant is broken, and passes only when it holds."""
from __future__ import annotations

import dagster as dg

from pseidon_dagster.core.model import FileInfo, IngestResult
from pseidon_dagster.defs.ingest.checks import run_continuity, run_record_counts


def f(p: int, start: int, end: int, records: int, kind: str = "data", hour: int = 10) -> FileInfo:
    return FileInfo(f"/lake/x.p{p}.o{start}-{end}", kind, hour, p, start, end, records, records * 10, records * 3)


def result(files, offsets, read=None, written=None, filtered=0, quarantined=0, lost=None) -> IngestResult:
    data = sum(x.records for x in files if x.kind == "data")
    q = sum(x.records for x in files if x.kind == "quarantine")
    written = data if written is None else written
    quarantined = q if quarantined == 0 else quarantined
    read = written + filtered + quarantined if read is None else read
    return IngestResult("clicks", plan_id="p1", read=read, written=written, filtered=filtered,
                        quarantined=quarantined, files=files, offsets=offsets, lost=lost or {})


def test_continuity_passes_when_files_tile_the_plan_and_follow_the_previous_run():
    r = result([f(0, 100, 150, 50), f(0, 150, 200, 40, hour=11), f(0, 150, 200, 10, "quarantine"), f(1, 0, 5, 5)],
               {0: (100, 200), 1: (0, 5)})
    out = run_continuity(r, {0: 100, 1: 0})
    assert out.passed, out.description


def test_a_gap_in_the_files_fails_continuity_unless_filtered_messages_explain_it():
    files = [f(0, 100, 150, 50), f(0, 160, 200, 40)]
    out = run_continuity(result(files, {0: (100, 200)}))
    assert not out.passed and "10 offsets inside the planned ranges are in no file" in out.description
    assert run_continuity(result(files, {0: (100, 200)}, filtered=10)).passed


def test_overlapping_ranges_fail_continuity():
    out = run_continuity(result([f(0, 100, 150, 50), f(0, 140, 200, 60)], {0: (100, 200)}))
    assert not out.passed and "partition 0: overlapping ranges" in out.description
    assert out.severity == dg.AssetCheckSeverity.ERROR


def test_a_run_not_starting_where_the_previous_one_ended_fails_continuity():
    out = run_continuity(result([f(0, 120, 200, 80)], {0: (120, 200)}), {0: 100})
    assert not out.passed and "this run starts at 120 but the previous run ended at 100" in out.description


def test_offsets_expired_from_kafka_are_a_warning_naming_them():
    out = run_continuity(result([f(0, 120, 200, 80)], {0: (120, 200)}, lost={0: (100, 120)}), {0: 100})
    assert not out.passed and out.severity == dg.AssetCheckSeverity.WARN
    assert "expired from Kafka" in out.description


def test_record_counts_pass_only_when_the_files_hold_what_the_counters_say():
    files = [f(0, 0, 10, 7), f(0, 0, 10, 2, "quarantine")]
    assert run_record_counts(result(files, {0: (0, 10)}, filtered=1)).passed
    out = run_record_counts(result(files, {0: (0, 10)}, written=8, filtered=1))
    assert not out.passed and "data files hold 7 records, 8 were written" in out.description
    out = run_record_counts(result(files, {0: (0, 10)}, quarantined=3, filtered=1))
    assert not out.passed and "quarantine files hold 2 records, 3 were quarantined" in out.description
    out = run_record_counts(result(files, {0: (0, 10)}, read=11, filtered=1))
    assert not out.passed and "read 11 != written 7 + filtered 1 + quarantined 2" in out.description
