"""Quarantine re-drive (issue 14): after the format is fixed, the quarantined messages that now parse land in their
event hours exactly once -- a second re-drive adds nothing -- and are marked; the ones that still fail stay."""
from __future__ import annotations

import collections
import json
import subprocess
import sys
from pathlib import Path

from pseidon_dagster.core.ingest import ingest
from pseidon_dagster.defs.ingest.checks import verify_continuity
from tests.conftest import read_lines, write_conf
from tests.integration.core.test_ingest import BASE_TS, HOUR, add_log, data_files
from tests.integration.defs.test_backfill import H0, snapshot


def test_a_fixed_format_re_drives_what_now_parses_exactly_once(tmp_path, settings, log_table, kafka, store, group):
    topic = kafka.topic(2)
    add_log(log_table, group, topic, fmt="txt:sep=pipe;ts=0")
    good = [(i % 2, f"{BASE_TS + i}|ok{i}".encode()) for i in range(40)]
    # written with ',' by a misconfigured producer: no timestamp field with sep=pipe ...
    comma = [(i % 2, f"{BASE_TS + HOUR + i},comma{i}".encode()) for i in range(10)]
    junk = [(0, b"junk-without-any-timestamp")]
    kafka.produce(topic, good + comma + junk)
    ingest(settings, log_table.get(topic, group), store)
    conf = write_conf(tmp_path / "p.edn", settings)
    cli = [sys.executable, "-m", "pseidon_dagster.cli", "quarantine"]
    shown = json.loads(subprocess.run([*cli, "show", topic, "--config", str(conf)], capture_output=True, text=True,
                                      check=True).stdout)
    assert shown["records"] == 11 and shown["redriven"] == 0

    # ... the row is fixed to the producer's real separator: the comma messages parse now, the junk still does not
    add_log(log_table, group, topic, fmt="txt:sep=,;ts=0")
    out = subprocess.run([*cli, "redrive", topic, "--config", str(conf)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout.splitlines()[-1])
    assert (summary["landed"], summary["still_quarantined"]) == (10, 1)
    assert summary["hours"] == {"2026-11-20T08:00": 10}
    root = Path(settings.data_dir) / "lake"
    lines = [line for f in data_files(root) for line in read_lines(f)]
    assert collections.Counter(lines) == collections.Counter(v for _, v in good + comma)
    assert verify_continuity(settings, log_table.get(topic, group), H0 + 1).passed
    after = snapshot(root)

    again = json.loads(subprocess.run([*cli, "redrive", topic, "--config", str(conf)], capture_output=True,
                                      text=True, check=True).stdout.splitlines()[-1])
    assert again["landed"] == 10 and snapshot(root) == after  # the same names, the same bytes: nothing added
    shown = json.loads(subprocess.run([*cli, "show", topic, "--config", str(conf)], capture_output=True, text=True,
                                      check=True).stdout)
    assert shown["redriven"] == 10 and shown["reasons"] == {"bad timestamp": 1}
