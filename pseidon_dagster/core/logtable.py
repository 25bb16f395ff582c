"""The pseidon_logs table: one row per log (Kafka topic). Re-read every time it is asked; nothing is cached.

Rows are untrusted input. Every row read is validated (validate_row) and confined to what this deployment's settings
allow (confine): paths inside :data-dir/:allowed-roots, hive_url hosts in :hive :allowed-hosts, vault: references
under :vault :row-prefixes. A row that fails is reported as a LogConfigError naming the log and the column."""
from __future__ import annotations

import contextlib
import dataclasses
import os
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import sqlalchemy as sa

from . import paths, secrets
from .config import Settings
from .formats import DescriptorError, parse_descriptor
from .hive import CatalogError, split_table, table_name_of, target_for
from .model import DEFAULT_QUARANTINE, LogSpec
from .output_formats import OUTPUT_FORMATS, OutputFormatError, output_format

metadata = sa.MetaData()
SEED_QUARANTINE = "/tmp/pseidon-quarantine"  # the seed DDL's default for the quarantine column

# The seed README's DDL, column for column (MyISAM/latin1 are MySQL table options, applied on MySQL only).
pseidon_logs = sa.Table(
    "pseidon_logs",
    metadata,
    sa.Column("log", sa.String(100), primary_key=True, nullable=False),
    sa.Column("format", sa.String(200), server_default=sa.null()),
    sa.Column("output_format", sa.String(200), server_default=sa.null()),
    sa.Column("base_partition", sa.String(200), server_default=sa.null()),
    sa.Column("log_partition", sa.String(200), server_default=sa.null()),
    sa.Column("hive_table_name", sa.String(200), server_default=sa.null()),
    sa.Column("hive_url", sa.String(255)),
    sa.Column("hive_user", sa.String(200), server_default=sa.null()),
    sa.Column("hive_password", sa.String(200), server_default=sa.null()),
    sa.Column("quarantine", sa.String(200), server_default=SEED_QUARANTINE),
    sa.Column("log_group", sa.String(100), server_default="default"),
    sa.Column("enabled", sa.SmallInteger, server_default="1"),
    mysql_engine="MyISAM",
    mysql_charset="latin1",
)

# The quarantine of a row that names none: <data-dir>/quarantine. The seed DDL's server default (kept for
# compatibility) is what an INSERT without a quarantine stores, so it means "none named" too: /tmp is shared and
# world-writable, no place for the lake's rejected messages.
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


class LogTableUnavailable(RuntimeError):
    """The pseidon_logs database did not answer (refused, lost connection, timed out). The message names the server
    (its URL without the password) and what was being read."""


@contextlib.contextmanager
def _answering(engine: sa.Engine, what: str) -> Iterator[None]:
    try:
        yield
    except (sa.exc.OperationalError, sa.exc.InterfaceError) as e:
        where = engine.url.render_as_string(hide_password=True)
        raise LogTableUnavailable(f"the pseidon_logs table at {where} is unavailable (while trying to {what}): "
                                  f"{e.orig if e.orig is not None else e}") from e


class NoLogTable(LookupError):
    """The pseidon_logs table does not exist (the database answered); `pseidon-dagster logs init` creates it."""

    def __init__(self, engine: sa.Engine):
        self.url = engine.url.render_as_string(hide_password=True)
        super().__init__(f"the pseidon_logs table does not exist in {self.url}: create it with `pseidon-dagster logs "
                         f"init`")


class LogConfigError(ValueError):
    """A pseidon_logs row that cannot be run. The message names the log and the column."""

    def __init__(self, log: str, column: str, problem: str):
        super().__init__(f"pseidon_logs row {log!r}, column {column}: {problem}")
        self.log = log
        self.column = column


def engine_for(url: str) -> sa.Engine:
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
        if path and path != ":memory:":
            paths.makedirs_private(os.path.dirname(os.path.abspath(path)))
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("mysql"):
        kwargs["pool_recycle"] = 3600
        kwargs["connect_args"] = {"connect_timeout": 5}
    return sa.create_engine(url, **kwargs)


def create_table(engine: sa.Engine, with_date_format: bool = False, with_retention: bool = False) -> None:
    """Create pseidon_logs as the seed's DDL does (plus the optional date_format and retention columns when asked)."""
    table = pseidon_logs
    if with_date_format or with_retention:
        table = pseidon_logs.to_metadata(sa.MetaData())
    if with_date_format:
        table.append_column(sa.Column("date_format", sa.String(100), server_default="datehour"))
    if with_retention:
        table.append_column(sa.Column("retention_hours", sa.Integer))
        table.append_column(sa.Column("quarantine_retention_hours", sa.Integer))
    table.create(engine, checkfirst=True)


def _reflect(engine: sa.Engine) -> sa.Table:
    try:
        return sa.Table("pseidon_logs", sa.MetaData(), autoload_with=engine)
    except sa.exc.NoSuchTableError:
        raise NoLogTable(engine) from None


def validate_row(row: dict, settings: Settings | None = None) -> LogSpec:
    """Turn one row into a LogSpec confined to SETTINGS (default: the default settings, whose only root is
    var/data), or raise LogConfigError naming the log and the column."""
    name = row.get("log")
    if not name or not _TOPIC.match(str(name)):
        raise LogConfigError(str(name), "log", "not a valid Kafka topic name ([A-Za-z0-9._-], 1-249 chars)")
    fmt = row.get("format")
    if fmt is None or not str(fmt).strip():
        raise LogConfigError(name, "format", "is empty; give a descriptor such as txt:sep=tab;ts=0")
    try:
        parse_descriptor(fmt)
    except DescriptorError as e:
        raise LogConfigError(name, "format", str(e)) from None
    try:
        out = output_format(row.get("output_format"))
    except OutputFormatError as e:
        raise LogConfigError(name, "output_format", str(e)) from None
    base = row.get("base_partition")
    if not base or not str(base).strip():
        raise LogConfigError(name, "base_partition", "is empty; give the root directory of the log's files")
    part = row.get("log_partition")
    if part is None or not str(part).strip("/ "):
        raise LogConfigError(name, "log_partition", "is empty; give the log's sub-directory under base_partition")
    date_format = row.get("date_format")
    date_format = "datehour" if date_format is None else str(date_format).strip().lower()
    if date_format not in ("datehour", "date"):
        raise LogConfigError(name, "date_format", f"{row.get('date_format')!r} is not 'datehour' or 'date'")
    quarantine = row.get("quarantine") or DEFAULT_QUARANTINE
    keeps = {c: _hours(name, c, row.get(c)) for c in ("retention_hours", "quarantine_retention_hours")}
    spec = LogSpec(
        log=name,
        format=fmt,
        output_format=out,
        base_partition=str(base).rstrip("/") or "/",
        log_partition=str(part).strip("/"),
        hive_table_name=row.get("hive_table_name") or None,
        hive_url=row.get("hive_url") or None,
        hive_user=row.get("hive_user") or None,
        hive_password=row.get("hive_password") or None,
        quarantine=str(quarantine).rstrip("/") or "/",
        log_group=row.get("log_group") or "default",
        enabled=bool(row.get("enabled", 1)),
        date_format=date_format,
        raw_output_format=row.get("output_format"),
        **keeps,
    )
    return confine(spec, settings or Settings())


def _hours(log: str, column: str, value) -> int | None:
    """An optional retention column: NULL (or no such column) is unset; else a whole number of hours >= 1."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        hours = int(str(value).strip())
    except ValueError:
        hours = 0
    if hours < 1:
        raise LogConfigError(log, column, f"{str(value)[:40]!r} is not a whole number of hours >= 1 (NULL: keep all)")
    return hours


def confine(spec: LogSpec, settings: Settings) -> LogSpec:
    """SPEC if it only does what SETTINGS allow a row to do (with the seed's quarantine default read as unset), else
    LogConfigError naming the log and the column.

    Also for a spec that did not come from a row just now (a replayed plan's frozen spec)."""
    if spec.quarantine.rstrip("/") == SEED_QUARANTINE:
        spec = dataclasses.replace(spec, quarantine=DEFAULT_QUARANTINE)
    for column, value in (("base_partition", spec.base_partition), ("quarantine", spec.quarantine)):
        root = settings.resolve_path(value)
        for col, shown, path in ((column, value, root),
                                 ("log_partition", spec.log_partition, f"{root.rstrip('/')}/{spec.log_partition}")):
            problem = paths.outside(path, settings.roots)
            if problem:
                raise LogConfigError(spec.log, col, f"{paths.redact_url(shown)!r} {problem}")
    if spec.hive_url:
        try:
            target = target_for(settings, spec.hive_url)
        except CatalogError as e:
            raise LogConfigError(spec.log, "hive_url", str(e)) from None
        try:
            split_table(table_name_of(spec), target.database)
        except CatalogError as e:
            raise LogConfigError(spec.log, "hive_table_name", str(e)) from None
    if secrets.is_reference(spec.hive_password):
        try:
            secrets.check_row_reference(spec.hive_password, settings.vault)
        except secrets.SecretError as e:
            raise LogConfigError(spec.log, "hive_password", str(e)) from None
    return spec


@dataclasses.dataclass
class LogTable:
    """pseidon_logs through ENGINE; rows are confined to SETTINGS (None: the default settings, which only allow
    var/data - so a caller that forgets its settings refuses rows instead of trusting them)."""

    engine: sa.Engine
    settings: Settings | None = None

    @classmethod
    def from_url(cls, url: str) -> LogTable:
        return cls(engine_for(url))

    @classmethod
    def for_settings(cls, settings: Settings) -> LogTable:
        """The table of :etl-db-host, confining rows to SETTINGS: what the CLI, the sensor and the jobs use."""
        return cls(engine_for(settings.etl_db_url), settings)

    def rows(self, group: str | None = None, enabled_only: bool = True) -> list[dict]:
        with _answering(self.engine, "read the rows" + (f" of log_group {group!r}" if group is not None else "")):
            t = _reflect(self.engine)
            q = sa.select(t)
            if group is not None:
                q = q.where(t.c.log_group == group)
            if enabled_only:
                q = q.where(t.c.enabled == 1)
            with self.engine.connect() as c:
                return [dict(r._mapping) for r in c.execute(q.order_by(t.c.log))]

    def logs(self, group: str) -> tuple[list[LogSpec], list[LogConfigError]]:
        """Enabled logs of this :etl-group; rows that fail validation come back as errors, not exceptions."""
        good, bad = [], []
        for row in self.rows(group):
            try:
                good.append(validate_row(row, self.settings))
            except LogConfigError as e:
                bad.append(e)
        return good, bad

    def get(self, log: str, group: str | None = None) -> LogSpec:
        d = self.row(log)
        if group is not None and d.get("log_group") != group:
            raise LookupError(f"log {log!r} belongs to log_group {d.get('log_group')!r}, not {group!r}")
        return validate_row(d, self.settings)

    def upsert(self, rows: Iterable[dict]) -> None:
        t = _reflect(self.engine)
        with self.engine.begin() as c:
            for row in rows:
                known = {k: v for k, v in row.items() if k in t.c}
                c.execute(sa.delete(t).where(t.c.log == known["log"]))
                c.execute(sa.insert(t).values(**known))

    def row(self, log: str) -> dict:
        """The row of LOG as stored (any group, enabled or not); LookupError when there is none."""
        with _answering(self.engine, f"read the row of log {log!r}"):
            t = _reflect(self.engine)
            with self.engine.connect() as c:
                row = c.execute(sa.select(t).where(t.c.log == log)).first()
        if row is None:
            raise LookupError(f"no pseidon_logs row for log {log!r}")
        return dict(row._mapping)

    def hive_password(self, log: str) -> str | None:
        """Only the hive_password column of LOG's row (as stored: a value or a vault: reference), for a step that
        has the rest of the row already; LookupError when there is no row."""
        with _answering(self.engine, f"read the hive_password of log {log!r}"):
            t = _reflect(self.engine)
            with self.engine.connect() as c:
                row = c.execute(sa.select(t.c.hive_password).where(t.c.log == log)).first()
        if row is None:
            raise LookupError(f"no pseidon_logs row for log {log!r}")
        return row[0] or None

    def add(self, row: dict, replace: bool = False, partitions: Callable[[str], list[int]] | None = None) -> LogSpec:
        """Insert ROW once it passes what every run checks (validate_row, confined to the settings) and, with
        PARTITIONS (KafkaSource.partitions), once its topic exists; an existing log only with REPLACE."""
        spec = validate_row(row, self.settings)
        if partitions is not None:
            partitions(spec.topic)  # TopicNotFound / KafkaUnavailable name the topic and the brokers
        with _answering(self.engine, f"add the row of log {spec.log!r}"):
            t = _reflect(self.engine)
            if row.get("date_format") is not None and "date_format" not in t.c:
                raise LogConfigError(spec.log, "date_format", "the table has no date_format column (it was created "
                                                              "without `logs init --with-date-format`)")
            with self.engine.begin() as c:
                if not replace and c.execute(sa.select(t.c.log).where(t.c.log == spec.log)).first() is not None:
                    raise LogConfigError(spec.log, "log", "already exists (logs add --replace overwrites it)")
                c.execute(sa.delete(t).where(t.c.log == spec.log))
                c.execute(sa.insert(t).values(**{k: v for k, v in row.items() if k in t.c}))
        return spec

    def describe(self, log: str, partitions: Callable[[str], list[int]] | None = None) -> dict:
        """The row of LOG for people: its columns (passwords as ***, user-info of URLs hidden), whether runs can use
        it (`valid`, `error`) and, with PARTITIONS, its topic's partition count (or why there is none)."""
        row = self.row(log)
        shown = {k: ("***" if k == "hive_password" and v else paths.redact_url(v) if isinstance(v, str) else v)
                 for k, v in row.items()}
        out: dict = {"row": shown, "valid": True, "error": None}
        try:
            validate_row(row, self.settings)
        except LogConfigError as e:
            out.update(valid=False, error=str(e))
        if partitions is not None:
            try:
                out["partitions"] = len(partitions(log))
            except Exception as e:  # noqa: BLE001 - reported, not raised: the row is shown either way
                out["partitions"], out["topic_error"] = None, str(e)
        return out

    def set_enabled(self, log: str, enabled: bool) -> None:
        """Enable (after checking the row as a run would) or disable LOG; LookupError when there is no row."""
        if enabled:
            validate_row(self.row(log), self.settings)
        with _answering(self.engine, f"{'enable' if enabled else 'disable'} log {log!r}"):
            t = _reflect(self.engine)
            with self.engine.begin() as c:
                done = c.execute(sa.update(t).where(t.c.log == log).values(enabled=1 if enabled else 0)).rowcount
        if not done:
            raise LookupError(f"no pseidon_logs row for log {log!r}")

    def delete(self, log: str) -> None:
        t = _reflect(self.engine)
        with self.engine.begin() as c:
            c.execute(sa.delete(t).where(t.c.log == log))


__all__ = ["LogSpec", "LogTable", "LogConfigError", "LogTableUnavailable", "NoLogTable", "create_table", "validate_row",
           "confine", "OUTPUT_FORMATS"]
