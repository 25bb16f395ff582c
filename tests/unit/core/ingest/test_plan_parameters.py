"""The plan stage's decisions that need no server (core/ingest/plan.py): where each partition starts, what the lake's
file names say when Redis lost its offsets, and the parameters a plan freezes (timestamp window, cut rules, roots,
Parquet schema) so that a replay writes the same files."""
from __future__ import annotations

import dataclasses
import logging
import os
from functools import partial
from pathlib import Path

import pyarrow as pa
import pytest

from pseidon_dagster.core import config as config_mod
from pseidon_dagster.core.ingest.plan import (
    FROZEN_ROW_FIELDS,
    frozen_schema,
    frozen_spec,
    lake_ends,
    params_for,
    resolved_root,
)
from pseidon_dagster.core.logtable import LogConfigError
from pseidon_dagster.core.model import Plan
from pseidon_dagster.core.offsets import start_offsets
from pseidon_dagster.core.partitioning import FIRST_HOUR, HOUR_MS, LAST_HOUR, FileName
from tests.helpers import log_row

H = 493_000  # an hour in 2026
CREATED = H * HOUR_MS + 123


def settings(tmp_path: Path, **writer):
    return config_mod.from_mapping({"data-dir": str(tmp_path), "writer": writer})


spec = partial(log_row, quarantine="quar")


def test_stored_offsets_are_where_partitions_start():
    starts, notes = start_offsets({0: 7, 1: 0}, {0: (0, 10), 1: (0, 3)}, use_earliest=False)
    assert starts == {0: 7, 1: 0} and notes == {}


def test_a_partition_new_to_a_log_with_offsets_starts_at_its_low_watermark_and_says_so():
    starts, notes = start_offsets({0: 7, 1: None}, {0: (0, 10), 1: (4, 9)}, use_earliest=False, lake={1: 8})
    assert starts == {0: 7, 1: 4}
    assert notes == {1: "new partition: no offset stored while others are, starting at its low watermark 4"}


def test_without_offsets_the_lake_file_names_say_where_to_resume():
    starts, notes = start_offsets({0: None, 1: None}, {0: (0, 10), 1: (2, 9)}, use_earliest=False, lake={0: 6})
    assert starts == {0: 6, 1: 2}
    assert notes == {0: "no offsets in Redis: resuming after the lake's files at 6",
                     1: "no offsets in Redis and no files of this partition in the lake: low watermark 2"}


def test_a_log_never_seen_starts_at_the_earliest_or_the_latest_offset():
    marks = {0: (3, 10), 1: (0, 4)}
    assert start_offsets({0: None, 1: None}, marks, use_earliest=True) == ({0: 3, 1: 0}, {})
    assert start_offsets({0: None, 1: None}, marks, use_earliest=False, lake={}) == ({0: 10, 1: 4}, {})


def write_names(root: Path, names: list[str]) -> None:
    for n in names:
        p = root / n
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")


def test_the_lake_ends_are_the_highest_end_per_partition_of_data_and_quarantine_files(tmp_path):
    data, quar = tmp_path / "lake", tmp_path / "quar"
    name = lambda p, s, e, log="clicks", ext="gz": str(FileName(log, H, p, s, e, ext))  # noqa: E731
    write_names(data, [f"raw/clicks/date=20260329/hour=2026032916/{name(0, 0, 10)}",
                       f"raw/clicks/date=20260329/hour=2026032917/{name(0, 10, 25)}",
                       f"raw/clicks/date=20260329/hour=2026032917/{name(1, 0, 4)}",
                       f"raw/clicks/date=20260329/hour=2026032917/{name(2, 0, 99, log='clicks2')}",
                       f"raw/clicks/date=20260329/.backfill/{name(1, 0, 50)}",  # a backfill's fresh directory
                       f"raw/clicks/date=20260329/hour=2026032917/.{name(1, 0, 60)}.7.tmp",
                       "raw/clicks/date=20260329/hour=2026032917/notes.txt",
                       f"raw/other/{name(3, 0, 70)}"])
    write_names(quar, [f"raw/clicks/date=20260329/{name(1, 4, 9, ext='jsonl.gz')}"])
    assert lake_ends(str(data), str(quar), spec()) == {0: 25, 1: 9}
    assert lake_ends(str(tmp_path / "none"), str(tmp_path / "none2"), spec()) == {}


def test_the_lake_ends_are_read_under_the_roots_as_named_whatever_their_last_character(tmp_path):
    # Only a trailing "/" is dropped from a root: a root ending in "X" or in a space is another directory than the
    # one without it, and files there must count (else a log that lost its Redis offsets would read them again).
    data, quar = tmp_path / "lake_X", tmp_path / "quar "
    write_names(data, [f"raw/clicks/date=20260329/hour=2026032916/{FileName('clicks', H, 0, 0, 12, 'gz')}"])
    write_names(quar, [f"raw/clicks/date=20260329/{FileName('clicks', H, 1, 0, 7, 'jsonl.gz')}"])
    assert lake_ends(str(data), str(quar), spec()) == {0: 12, 1: 7}
    assert lake_ends(f"{data}/", f"{quar}/", spec()) == {0: 12, 1: 7}


def test_relative_roots_are_under_the_data_dir_and_uris_stay(tmp_path, monkeypatch):
    s = settings(tmp_path)
    assert resolved_root(s, "lake") == str(tmp_path / "lake")
    assert resolved_root(s, "s3://bucket/lake") == "s3://bucket/lake"
    monkeypatch.chdir(tmp_path)
    rel = config_mod.from_mapping({"data-dir": "var/data"})
    assert resolved_root(rel, "lake") == os.path.join(str(tmp_path), "var/data/lake")  # absolute in the plan


def test_a_plan_freezes_the_row_the_roots_the_cut_rules_and_the_window(tmp_path):
    s = settings(tmp_path, **{"rollover-size": 5000, "max-open-files": 10, "parquet-block-size": 1 << 21,
                              "ts-window-back-ms": 7 * HOUR_MS, "ts-window-ahead-ms": 2 * HOUR_MS,
                              "line-breaks": "escape"})
    p = params_for(s, spec(date_format="date"), CREATED, partitions=3)
    assert {f: p[f] for f in FROZEN_ROW_FIELDS} == {
        "format": "txt:sep=pipe;ts=0", "output_format": "gzip", "base_partition": "lake", "log_partition": "raw/clicks",
        "quarantine": "quar", "date_format": "date"}
    assert p["data_root"] == str(tmp_path / "lake") and p["quarantine_root"] == str(tmp_path / "quar")
    assert (p["rollover_size"], p["max_open_files"], p["parquet_block_size"]) == (5000, 10, 1 << 21)
    assert p["open_per_partition"] == 3  # 10 open files shared by 3 partitions
    assert (p["ts_lo_ms"], p["ts_hi_ms"]) == (CREATED - 7 * HOUR_MS, CREATED + 2 * HOUR_MS)
    assert p["line_breaks"] == "escape"
    assert "parquet_schema" not in p and frozen_schema(p) is None


def test_the_window_stays_inside_four_digit_years_and_allow_all_ts_takes_all_of_them(tmp_path):
    first, last = FIRST_HOUR * HOUR_MS, (LAST_HOUR + 1) * HOUR_MS - 1
    wide = settings(tmp_path, **{"ts-window-back-ms": 10**15, "ts-window-ahead-ms": 10**15})
    p = params_for(wide, spec(), CREATED, 1)
    assert (p["ts_lo_ms"], p["ts_hi_ms"]) == (first, last)
    p = params_for(settings(tmp_path, **{"allow-all-ts": True, "ts-window-back-ms": 5}), spec(), CREATED, 1)
    assert (p["ts_lo_ms"], p["ts_hi_ms"]) == (first, last)
    assert p["line_breaks"] == "quarantine"


def test_the_parquet_schema_is_frozen_and_read_back(tmp_path):
    schema = pa.schema([("ts", pa.int64()), ("name", pa.string())])
    p = params_for(settings(tmp_path), spec(output_format="parquet"), CREATED, 1, schema)
    assert isinstance(p["parquet_schema"], str)
    assert frozen_schema(p).equals(schema)
    assert frozen_schema({"parquet_schema": ""}) is None and frozen_schema({}) is None


def test_a_replay_writes_with_the_row_the_plan_froze_and_warns_what_changed(tmp_path, caplog):
    s = settings(tmp_path)
    frozen = params_for(s, spec(), CREATED, 1)
    plan = Plan("clicks", {0: (0, 5)}, CREATED, "p1", params=frozen)
    now = spec(output_format="zstd", log_partition="raw/clicks2", hive_user="u")
    with caplog.at_level(logging.WARNING):
        replay = frozen_spec(now, plan, s)
    assert replay == dataclasses.replace(now, output_format="gzip", log_partition="raw/clicks")
    assert "output_format, log_partition changed since plan p1 was made" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert frozen_spec(spec(), plan, s) == spec()
    assert caplog.text == ""
    older = Plan("clicks", {0: (0, 5)}, CREATED, "p0", params={"format": "txt:sep=pipe;ts=0"})  # froze less
    assert frozen_spec(now, older, s) == now


def test_a_frozen_row_outside_the_allowed_roots_is_refused(tmp_path):
    s = settings(tmp_path)
    plan = Plan("clicks", {0: (0, 5)}, CREATED, "p1", params={"base_partition": "/elsewhere"})
    with pytest.raises(LogConfigError, match="base_partition"):
        frozen_spec(spec(), plan, s)


def test_the_highest_end_wins_whatever_the_order_of_the_listing(tmp_path):
    data = tmp_path / "lake"
    # a later hour's file may hold lower offsets (events arrive out of order): listed after, it must not win
    write_names(data, [f"raw/clicks/date=20260329/hour=2026032916/{FileName('clicks', H, 0, 0, 30, 'gz')}",
                       f"raw/clicks/date=20260329/hour=2026032917/{FileName('clicks', H + 1, 0, 0, 20, 'gz')}"])
    assert lake_ends(str(data), str(tmp_path / "quar"), spec()) == {0: 30}
