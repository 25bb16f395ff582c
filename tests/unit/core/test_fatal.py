""":fatal-errors-file (core/fatal.py): which errors are fatal, and the file is appended to safely (no symlink, no
FIFO, mode 0600). The run-failure sensor that writes it: tests/integration/defs/test_ops_alerts.py."""
from __future__ import annotations

import os
import stat

from pseidon_dagster.core import fatal


def test_the_fatal_file_is_written_safely(tmp_path):
    target = tmp_path / "victim"
    target.write_text("keep\n")
    link = tmp_path / "fatalerrors"
    link.symlink_to(target)
    assert fatal.append(str(link), "clicks", "ConfigError: x", run_id="r1", step="s") is False
    assert target.read_text() == "keep\n"
    wide = tmp_path / "wide"
    wide.write_text("")
    os.chmod(wide, 0o644)
    assert fatal.append(str(wide), "clicks", "boom\nsecond line", run_id="r1", step="s") is True
    assert stat.S_IMODE(os.stat(wide).st_mode) == 0o600
    (line,) = wide.read_text().splitlines()
    assert "log=clicks" in line and "boom second line" in line
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert fatal.append(str(fifo), "clicks", "x") is False


def test_which_errors_are_fatal():
    import redis

    from pseidon_dagster.core.config import ConfigError

    assert fatal.classify(ConfigError("bad")) == "unreadable config"
    assert fatal.classify(redis.AuthenticationError("invalid password")) == "authentication refused"
    try:
        try:
            raise redis.AuthenticationError("WRONGPASS invalid username-password pair")
        except redis.ConnectionError as e:
            raise RuntimeError("Redis at h:1 did not answer") from e
    except RuntimeError as wrapped:
        assert fatal.classify(wrapped) == "authentication refused"
    import pymysql

    assert fatal.classify(pymysql.err.OperationalError(1045, "Access denied for user 'x'@'h'")) == \
        "authentication refused"
    assert fatal.classify(pymysql.err.OperationalError(2003, "Can't connect to MySQL server")) is None
    assert fatal.classify(RuntimeError("Kafka at h:9092 did not answer")) is None
    assert fatal.classify(ConnectionRefusedError(111, "refused")) is None
