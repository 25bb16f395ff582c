"""Paths stay inside the configured roots without a server: a frozen spec is confined like a row, bad :allowed-roots
fail the config, the seed's /tmp quarantine moves under :data-dir, and created directories are private and follow no
symlink. Rows through the real pseidon_logs table: tests/integration/core/test_confinement.py."""
from __future__ import annotations

import os
import stat

import pytest

from pseidon_dagster.core import config as config_mod
from pseidon_dagster.core.config import ConfigError
from pseidon_dagster.core.logtable import LogConfigError, validate_row
from tests import REPO_ROOT


def log_row(log="clicks", **kw):
    """A pseidon_logs row of group g whose paths are under :data-dir; KW overrides columns."""
    row = dict(log=log, format="txt:sep=pipe;ts=0", output_format="gzip", base_partition="lake",
               log_partition=f"raw/{log}", quarantine="quarantine", log_group="g", enabled=1)
    row.update(kw)
    return row


def data_settings(tmp_path, **extra):
    """Settings whose :data-dir is TMP_PATH/data (EXTRA: more keys)."""
    return config_mod.from_mapping({"data-dir": str(tmp_path / "data"), **extra})


def test_confine_checks_a_frozen_spec_too(tmp_path):
    """A replayed plan's spec (made from stored parameters, not a row) is checked the same way."""
    import dataclasses

    from pseidon_dagster.core.logtable import confine

    s = data_settings(tmp_path)
    spec = validate_row(log_row(), s)
    assert confine(spec, s) == spec
    with pytest.raises(LogConfigError, match="column quarantine"):
        confine(dataclasses.replace(spec, quarantine="/var/tmp/q"), s)


@pytest.mark.parametrize("roots,message", [
    ("lake", "vector"),
    ([""], "empty"),
    (["s3://AKIA:hunter2@bucket/x"], "user-info"),
    (["s3://bucket/x?endpoint_override=h"], "query"),
    (["/data/../etc"], ".."),
])
def test_bad_allowed_roots_fail_the_config(roots, message):
    with pytest.raises(ConfigError, match=message) as e:
        config_mod.from_mapping({"allowed-roots": roots})
    assert ":allowed-roots" in str(e.value) and "hunter2" not in str(e.value)


# -- directories -----------------------------------------------------------------------------------------------

def test_created_directories_are_not_world_readable_whatever_the_umask(tmp_path):
    from pseidon_dagster.core.paths import PRIVATE_DIR_MODE, makedirs_private

    old = os.umask(0)
    try:
        root = tmp_path / "root"
        makedirs_private(str(root / "raw/clicks/date=20261120/hour=2026112007"), root=str(root))
        makedirs_private(str(tmp_path / "plain/a/b"))
    finally:
        os.umask(old)
    for d in (root, root / "raw", root / "raw/clicks/date=20261120/hour=2026112007", tmp_path / "plain/a/b"):
        assert stat.S_IMODE(d.stat().st_mode) == PRIVATE_DIR_MODE == 0o750, d
    # an existing directory is left as it is; repeating is a no-op
    makedirs_private(str(root / "raw/clicks"), root=str(root))


def test_no_symlink_is_followed_below_the_root(tmp_path):
    from pseidon_dagster.core.paths import makedirs_private

    root = tmp_path / "root"
    outside = tmp_path / "outside"
    outside.mkdir()
    root.mkdir()
    (root / "raw").symlink_to(outside)
    with pytest.raises(OSError):
        makedirs_private(str(root / "raw/clicks"), root=str(root))
    assert list(outside.iterdir()) == []
    # the root itself may be (or lie under) a symlink: that is the operator's choice
    link = tmp_path / "link"
    link.symlink_to(outside)
    makedirs_private(str(link / "x/y"), root=str(link))
    assert (outside / "x/y").is_dir()
    with pytest.raises(ValueError):
        makedirs_private(str(tmp_path / "other"), root=str(root))


def test_the_sqlite_directory_is_private(tmp_path):
    from pseidon_dagster.core.logtable import engine_for

    old = os.umask(0)
    try:
        engine_for(f"sqlite:///{tmp_path}/new/dir/pseidon.db").dispose()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new/dir").stat().st_mode) == 0o750


def test_the_sample_config_documents_the_new_keys():

    text = (REPO_ROOT / "conf" / "pseidon.edn").read_text()
    for key in (":allowed-roots ", ":allowed-hosts ", ":row-prefixes "):
        assert key in text, key


def test_a_frozen_spec_with_the_seed_quarantine_moves_under_the_data_dir(tmp_path):
    """A plan stored before the upgrade froze quarantine=/tmp/pseidon-quarantine; its replay goes to the new default."""
    import dataclasses

    from pseidon_dagster.core.logtable import DEFAULT_QUARANTINE, confine

    s = data_settings(tmp_path)
    old = dataclasses.replace(validate_row(log_row(), s), quarantine="/tmp/pseidon-quarantine")
    assert confine(old, s).quarantine == DEFAULT_QUARANTINE == "quarantine"
