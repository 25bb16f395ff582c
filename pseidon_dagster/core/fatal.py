"""Fatal errors: the ones no retry can fix without an operator (an unreadable or invalid pseidon.edn, a server that
refuses our credentials, a permission refused). A run that fails with one appends a line to :fatal-errors-file
(default /tmp/fatalerrors, as pseidon-etl did) and fails as any run does:

    2026-11-20T07:00:01.123Z log=clicks run=8c1f... step=ingest_log fatal=authentication refused
        error=OperationalError: ...     (one line in the file)

The file is opened without following a symlink, created 0600, and must be a regular file owned by this user (a
world-writable /tmp is where someone else could plant a link or a FIFO); otherwise nothing is written and the refusal
is logged. One write() per line, O_APPEND: lines of concurrent runs do not interleave.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import re
import stat

from sqlalchemy.engine import make_url

from .config import ConfigError

log = logging.getLogger(__name__)

ENV_FILE = "PSEIDON_FATAL_ERRORS_FILE"  # where to write when pseidon.edn itself cannot be read
DEFAULT_FILE = "/tmp/fatalerrors"

# MySQL/MariaDB: access denied (1044 db, 1045 user/password, 1142/1143 table/column, 1227 privilege, 1698 plugin)
_MYSQL_AUTH = {1044, 1045, 1142, 1143, 1227, 1698}
_AUTH_TEXT = re.compile(
    r"access denied|authentication (?:failed|error|refused|required)|invalid (?:username-)?password|WRONGPASS|NOAUTH"
    r"|SASL authentication|error validating the login|permission denied|not authori[sz]ed|not authenticated"
    r"|unauthori[sz]ed|forbidden"
    r"|authorization failed|TOPIC_AUTHORIZATION_FAILED|CLUSTER_AUTHORIZATION_FAILED|SASL_AUTHENTICATION_FAILED",
    re.IGNORECASE)


def _chain(exc: BaseException | None):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def classify(exc: BaseException | None) -> str | None:
    """'unreadable config', 'authentication refused' or 'permission denied' when EXC (or what caused it) is fatal;
    None for everything a retry may fix (a server down, a timeout, a lease held, a bug in a row)."""
    for e in _chain(exc):
        if isinstance(e, ConfigError):
            return "unreadable config"
    for e in _chain(exc):
        name = type(e).__name__
        args = getattr(e, "args", ())
        if name in ("AuthenticationError", "AuthenticationWrongNumberOfArgsError", "Unauthorized", "Forbidden",
                    "AuthorizationError"):
            return "authentication refused"
        if name in ("OperationalError", "ProgrammingError", "InternalError") and args and \
                isinstance(args[0], int) and args[0] in _MYSQL_AUTH:
            return "authentication refused"
        if isinstance(e, PermissionError):
            return "permission denied"
        kafka_error = args[0] if args and type(args[0]).__name__ == "KafkaError" else None
        if kafka_error is not None and _AUTH_TEXT.search(f"{kafka_error.name()} {kafka_error.str()}"):
            return "authentication refused"
    text = " ".join(str(e) for e in _chain(exc))
    if _AUTH_TEXT.search(text):
        return "permission denied" if re.search(r"permission denied", text, re.I) else "authentication refused"
    return None


def one_line(text: str, limit: int = 2000) -> str:
    return " ".join(str(text).split())[:limit]


def scrub(text: str, secrets: list[str | None]) -> str:
    for s in secrets:
        if s and len(s) >= 3:
            text = text.replace(s, "***")
    return re.sub(r"(://[^/\s:@]+:)[^@\s/]+@", r"\1***@", text)  # user:password@ in URLs


def append(path: str, log_name: str | None, error: str, *, run_id: str | None = None, step: str | None = None,
           reason: str | None = None, now: dt.datetime | None = None) -> bool:
    """Append one timestamped line; True when written. Never raises (a fatal-errors file that cannot be written is
    logged, and the run fails with its own error anyway)."""
    when = (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)
    fields = [when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z", f"log={log_name or '-'}"]
    if run_id:
        fields.append(f"run={run_id}")
    if step:
        fields.append(f"step={step}")
    if reason:
        fields.append(f"fatal={reason}")
    line = (" ".join(fields) + " error=" + one_line(error)).encode("utf-8", "replace") + b"\n"
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as e:
        log.error("fatal error not recorded: cannot open %s without following a link (%s): %s", path, e.strerror,
                  line.decode().rstrip())
        return False
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
            log.error("fatal error not recorded: %s is not a regular file owned by uid %d: %s", path, os.geteuid(),
                      line.decode().rstrip())
            return False
        if stat.S_IMODE(st.st_mode) != 0o600:
            os.fchmod(fd, 0o600)
        os.write(fd, line)
        return True
    except OSError as e:
        log.error("fatal error not recorded in %s: %s: %s", path, e, line.decode().rstrip())
        return False
    finally:
        os.close(fd)


def file_for(settings) -> str:
    """:fatal-errors-file of SETTINGS; without settings (pseidon.edn unreadable): $PSEIDON_FATAL_ERRORS_FILE, else
    /tmp/fatalerrors."""
    if settings is not None:
        return settings.ops.fatal_errors_file
    return os.environ.get(ENV_FILE) or DEFAULT_FILE


def secrets_of(settings) -> list[str | None]:
    if settings is None:
        return []
    out = [settings.etl_db_pwd, settings.redis.password, settings.metrics_redis.password, settings.ops.alert_webhook]
    try:
        out.append(make_url(settings.etl_db_url).password)
    except Exception:  # noqa: BLE001
        pass
    out += [str(v) for k, v in dict(settings.kafka_config).items() if "password" in k or "secret" in k]
    return out
