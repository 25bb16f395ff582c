"""What the in-run checks (offset_continuity, record_counts) show in Dagster beyond pass/fail: the per-partition
metadata, the severity and the wording of each problem. Results built by hand, no server."""
from __future__ import annotations

import dagster as dg

from pseidon_dagster.core.model import FileInfo, IngestResult
from pseidon_dagster.defs.ingest.checks import chain, run_continuity, run_record_counts, segments


def f(p: int, start: int, end: int, records: int, kind: str = "data", hour: int = 10) -> FileInfo:
    return FileInfo(f"/lake/x.p{p}.o{start}-{end}", kind, hour, p, start, end, records, records * 10, records * 3)


def result(files, offsets, read=None, written=None, filtered=0, quarantined=0, lost=None) -> IngestResult:
    """The counters agree with the files unless given."""
    data = sum(x.records for x in files if x.kind == "data")
    q = sum(x.records for x in files if x.kind == "quarantine")
    written = data if written is None else written
    quarantined = q if quarantined == 0 else quarantined
    read = written + filtered + quarantined if read is None else read
    return IngestResult("clicks", plan_id="p1", read=read, written=written, filtered=filtered,
                        quarantined=quarantined, files=files, offsets=offsets, lost=lost or {})


def test_segments_are_distinct_and_sorted_per_partition():
    files = [(1, 5, 9), (0, 10, 20), (0, 0, 10), (0, 10, 20), (1, 0, 5)]
    assert segments(files) == {0: [(0, 10), (10, 20)], 1: [(0, 5), (5, 9)]}
    assert list(segments(files)) == [0, 1]


def test_chain_reports_gaps_and_overlaps_against_the_plan():
    assert chain([(0, 10), (10, 20)], 0, 20) == ([], [])
    assert chain([(5, 10), (12, 20)], 0, 25) == ([(0, 5), (10, 12), (20, 25)], [])
    assert chain([(0, 10), (5, 8), (8, 15)], 0, 15) == ([], [(5, 8), (8, 10)])
    assert chain([(0, 10), (4, 30)], 0, 20) == ([], [(4, 10)])  # a segment past the plan's end is no gap
    assert chain([(3, 6), (6, 9)]) == ([], [])  # no expected range: from the first segment on
    assert chain([(3, 6), (8, 9)]) == ([(6, 8)], [])
    assert chain([], 0, 4) == ([(0, 4)], [])
    assert chain([]) == ([], [])


def test_continuity_metadata_shows_each_partition_its_segments_gaps_and_overlaps():
    r = result([f(0, 100, 150, 50), f(0, 150, 200, 40, hour=11), f(0, 150, 200, 10, "quarantine"), f(1, 0, 5, 5)],
               {0: (100, 200), 1: (0, 5)})
    out = run_continuity(r, {0: 100, 1: 0})
    assert out.passed and out.severity == dg.AssetCheckSeverity.ERROR
    assert out.description == ("2 Kafka partitions: the files' offset ranges chain from the previous run's end to the "
                               "end of the plan, with no gap or overlap")
    assert out.metadata["partitions"].value == {
        "0": {"planned": [100, 200], "segments": [[100, 150], [150, 200]], "gaps": [], "overlaps": []},
        "1": {"planned": [0, 5], "segments": [[0, 5]], "gaps": [], "overlaps": []},
    }
    assert out.metadata["previous_run_end"].value == {"0": 100, "1": 0}
    assert out.metadata["gap_offsets_explained_by_filtered"] == 0


def test_a_partition_without_files_is_all_gap_and_filtered_messages_explain_at_most_the_gap():
    r = result([f(0, 0, 10, 10)], {0: (0, 10), 1: (0, 4)}, filtered=6)
    out = run_continuity(r)
    assert out.passed  # the 4 offsets of partition 1 are filtered messages
    assert out.metadata["partitions"].value["1"] == {"planned": [0, 4], "segments": [], "gaps": [[0, 4]],
                                                     "overlaps": []}
    assert out.metadata["gap_offsets_explained_by_filtered"] == 4
    assert out.metadata["previous_run_end"].value == {}
    out = run_continuity(result([f(0, 0, 10, 10)], {0: (0, 10), 1: (0, 4)}, filtered=3))
    assert not out.passed and out.description == ("1 offsets inside the planned ranges are in no file (3 filtered "
                                                  "messages explain the rest)")
    assert out.metadata["gap_offsets_explained_by_filtered"] == 3


def test_overlaps_and_a_reset_are_errors_and_each_problem_is_named():
    r = result([f(0, 100, 150, 50), f(0, 140, 200, 60), f(1, 50, 60, 10)], {0: (100, 200), 1: (50, 60)})
    out = run_continuity(r, {0: 100, 1: 40})
    assert not out.passed and out.severity == dg.AssetCheckSeverity.ERROR
    assert out.description == ("partition 0: overlapping ranges [140, 150); partition 1: this run starts at 50 but "
                               "the previous run ended at 40 (offsets reset?)")
    assert out.metadata["partitions"].value["0"]["overlaps"] == [[140, 150]]


def test_expired_offsets_with_an_overlap_stay_an_error():
    r = result([f(0, 120, 200, 80), f(0, 150, 160, 10)], {0: (120, 200)}, lost={0: (100, 120)})
    out = run_continuity(r, {0: 100})
    assert not out.passed and out.severity == dg.AssetCheckSeverity.ERROR
    assert "partition 0: offsets [100, 120) expired from Kafka before they were read" in out.description


def test_expired_offsets_not_where_the_previous_run_ended_are_a_reset():
    r = result([f(0, 120, 200, 80)], {0: (120, 200)}, lost={0: (110, 120)})
    out = run_continuity(r, {0: 100})
    assert not out.passed and out.severity == dg.AssetCheckSeverity.ERROR
    assert out.description == "partition 0: this run starts at 120 but the previous run ended at 100 (offsets reset?)"


def test_a_previous_end_of_another_partition_or_the_same_start_is_no_problem():
    r = result([f(0, 120, 200, 80)], {0: (120, 200)})
    assert run_continuity(r, {0: 120, 5: 7}).passed


def test_record_counts_metadata_and_wording():
    files = [f(0, 0, 10, 7), f(1, 0, 3, 1), f(0, 0, 10, 2, "quarantine")]
    out = run_record_counts(result(files, {0: (0, 10), 1: (0, 3)}, filtered=1))
    assert out.passed and out.severity == dg.AssetCheckSeverity.ERROR
    assert out.description == ("read 11 = written 8 + filtered 1 + quarantined 2; the files hold exactly those "
                               "records")
    assert out.metadata == {"read": 11, "written": 8, "filtered": 1, "quarantined": 2, "records_in_data_files": 8,
                            "records_in_quarantine_files": 2}
    out = run_record_counts(result(files, {0: (0, 10)}, written=9, quarantined=3, read=20, filtered=1))
    assert out.description == ("read 20 != written 9 + filtered 1 + quarantined 3; data files hold 8 records, 9 were "
                               "written; quarantine files hold 2 records, 3 were quarantined")


def test_gaps_of_all_partitions_add_up_against_the_filtered_messages():
    r = result([f(0, 0, 7, 7), f(1, 0, 8, 8)], {0: (0, 10), 1: (0, 10)}, filtered=3)  # gaps of 3 and 2
    out = run_continuity(r)
    assert out.passed is False and out.description.startswith("2 offsets inside the planned ranges are in no file")
    assert out.metadata["gap_offsets_explained_by_filtered"] == 3
    assert run_continuity(result([f(0, 0, 7, 7), f(1, 0, 8, 8)], {0: (0, 10), 1: (0, 10)}, filtered=5)).passed


def test_several_ranges_of_a_problem_are_listed_comma_separated():
    r = result([f(0, 0, 10, 10), f(0, 5, 8, 3), f(0, 8, 15, 7)], {0: (0, 15)})
    out = run_continuity(r)
    assert out.description == "partition 0: overlapping ranges [5, 8), [8, 10)"


def test_a_failed_record_count_still_shows_its_numbers():
    files = [f(0, 0, 10, 7)]
    out = run_record_counts(result(files, {0: (0, 10)}, written=8))
    assert out.passed is False
    assert out.metadata == {"read": 8, "written": 8, "filtered": 0, "quarantined": 0, "records_in_data_files": 7,
                            "records_in_quarantine_files": 0}
