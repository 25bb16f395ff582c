"""Hostile pseidon_logs rows: the paths a row names stay inside the configured roots (:data-dir and :allowed-roots),
and the quarantine default is under :data-dir.

Rows go through the real pseidon_logs table on MariaDB; a bad row comes back as a LogConfigError naming the log and
the column, and the other logs go on. Without a server (frozen specs, :allowed-roots, private directories):
tests/unit/core/test_confinement.py."""
from __future__ import annotations

import os

import pytest
import sqlalchemy as sa

from pseidon_dagster.core import config as config_mod
from pseidon_dagster.core.logtable import LogConfigError, LogTable, validate_row
from tests.unit.core.test_confinement import data_settings, log_row


@pytest.fixture
def table(log_table, tmp_path):
    """The conftest's MariaDB pseidon_logs, read with settings whose :data-dir is tmp_path/data."""
    roots = [str(tmp_path / "extra"), "hdfs://nn1:8020/lake", "s3://bucket/lake"]
    return LogTable(log_table.engine, data_settings(tmp_path, **{"allowed-roots": roots}))


HOSTILE = [
    ("base_partition", dict(base_partition="../../etc")),
    ("base_partition", dict(base_partition="lake/../../../etc")),
    ("base_partition", dict(base_partition="/etc")),
    ("base_partition", dict(base_partition="/tmp")),
    ("base_partition", dict(base_partition="file:///etc")),
    ("base_partition", dict(base_partition="file://etc/x")),
    ("base_partition", dict(base_partition="hdfs://evil:8020/lake")),
    ("base_partition", dict(base_partition="hdfs://nn1:8020/lake2")),
    ("base_partition", dict(base_partition="hdfs://nn1:8020/lake/../x")),
    ("base_partition", dict(base_partition="hdfs://nn1:8020/lake/%2e%2e/x")),
    ("base_partition", dict(base_partition="s3://other-bucket/lake")),
    ("base_partition", dict(base_partition="s3://bucket/lake?endpoint_override=127.0.0.1:9000")),
    ("base_partition", dict(base_partition="s3://bucket/lake#frag")),
    ("base_partition", dict(base_partition="s3://AKIA:hunter2@bucket/lake")),
    ("base_partition", dict(base_partition="gs://bucket/lake")),
    ("base_partition", dict(base_partition="lake/x://y")),
    ("base_partition", dict(base_partition="lake/${env:HOME}")),
    ("base_partition", dict(base_partition="lake/it's")),
    ("base_partition", dict(base_partition="lake/a\nb")),
    ("log_partition", dict(log_partition="../../../etc")),
    ("log_partition", dict(log_partition="raw/../../..")),
    ("log_partition", dict(log_partition="raw/$x")),
    ("quarantine", dict(quarantine="/tmp/q")),
    ("quarantine", dict(quarantine="../q")),
    ("quarantine", dict(quarantine="s3://bucket/lake/q?endpoint_override=evil")),
]


@pytest.mark.parametrize("column,change", HOSTILE, ids=[repr(c) for _, c in HOSTILE])
def test_a_path_outside_the_roots_fails_only_its_row(table, column, change):
    table.upsert([log_row("bad", **change), log_row("good")])

    good, bad = table.logs("g")

    assert [s.log for s in good] == ["good"]
    (err,) = bad
    assert isinstance(err, LogConfigError) and (err.log, err.column) == ("bad", column)
    assert str(err).startswith(f"pseidon_logs row 'bad', column {column}: ")
    assert "hunter2" not in str(err)
    with pytest.raises(LogConfigError) as e:
        table.get("bad", "g")
    assert e.value.column == column


@pytest.mark.parametrize("change", [
    dict(base_partition="lake"),
    dict(base_partition="lake/./x", log_partition="raw//clicks"),
    dict(base_partition="DATA"),            # <data-dir> itself (placeholder replaced below)
    dict(base_partition="EXTRA/lake"),      # under an :allowed-roots entry
    dict(base_partition="file://EXTRA"),
    dict(base_partition="hdfs://nn1:8020/lake"),
    dict(base_partition="hdfs://NN1:8020/lake/raw", quarantine="hdfs://nn1:8020/lake/q"),
    dict(base_partition="s3://bucket/lake/x"),
])
def test_paths_inside_the_roots_are_accepted(table, tmp_path, change):
    paths = {"DATA": str(tmp_path / "data"), "EXTRA": str(tmp_path / "extra")}
    row = log_row(**{k: v.replace("DATA", paths["DATA"]).replace("EXTRA", paths["EXTRA"]) for k, v in change.items()})
    table.upsert([row])
    good, bad = table.logs("g")
    assert bad == [] and [s.log for s in good] == ["clicks"]


def test_a_symlink_out_of_the_roots_is_refused(table, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "lake").symlink_to("/etc")
    table.upsert([log_row(base_partition="lake")])
    _, (err,) = table.logs("g")
    assert err.column == "base_partition" and "/etc" in str(err)


def test_the_roots_default_to_the_data_dir_only(log_table, tmp_path):
    outside = tmp_path / "elsewhere"
    row = log_row(base_partition=str(outside))
    log_table.upsert([row])
    strict = LogTable(log_table.engine, data_settings(tmp_path))
    with pytest.raises(LogConfigError, match="allowed-roots"):
        strict.get("clicks")
    allowed = LogTable(log_table.engine, data_settings(tmp_path, **{"allowed-roots": [str(outside)]}))
    assert allowed.get("clicks").base_partition == str(outside)


def test_a_table_without_settings_still_confines(log_table):
    """The safe default: LogTable(engine) confines to the default settings (:data-dir var/data)."""
    log_table.upsert([log_row(base_partition="/etc"), log_row("ok")])
    good, bad = log_table.logs("g")
    assert [s.log for s in good] == ["ok"] and bad[0].column == "base_partition"
    with pytest.raises(LogConfigError):
        validate_row(log_row(base_partition="/etc"))


def test_for_settings_confines_with_those_settings(tmp_path, mysql_url, log_table):
    s = config_mod.from_mapping({"etl-db-host": mysql_url, "data-dir": str(tmp_path)})
    log_table.upsert([log_row(base_partition=str(tmp_path / "lake"))])
    t = LogTable.for_settings(s)
    try:
        assert t.settings is s and t.get("clicks").base_partition == str(tmp_path / "lake")
    finally:
        t.engine.dispose()


# -- the quarantine default ------------------------------------------------------------------------------------


def test_quarantine_defaults_to_the_data_dir(log_table, tmp_path):
    s = data_settings(tmp_path)
    with log_table.engine.begin() as c:  # an INSERT that names no quarantine gets the seed DDL's server default
        c.execute(sa.text("INSERT INTO pseidon_logs (log, format, output_format, base_partition, log_partition, "
                          "log_group) VALUES ('seeded', 'txt:ts=0', 'gzip', 'lake', 'raw/seeded', 'g')"))
    log_table.upsert([log_row("unset", quarantine=None), log_row("empty", quarantine="")])
    table = LogTable(log_table.engine, s)
    with log_table.engine.connect() as c:
        raw = c.execute(sa.text("SELECT quarantine FROM pseidon_logs WHERE log = 'seeded'")).scalar()
    assert raw == "/tmp/pseidon-quarantine"  # the DDL keeps the seed's default ...
    good, bad = table.logs("g")
    assert bad == []
    for spec in good:  # ... and it means "unset": under :data-dir, never /tmp
        assert s.resolve_path(spec.quarantine) == os.path.join(s.data_dir, "quarantine")
