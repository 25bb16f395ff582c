"""Hive partition registration, table schemas and table creation over HiveServer2 (PyHive, Thrift binary + SASL).

What a run registers: every partition directory it wrote a data file into, with an explicit LOCATION:

    ALTER TABLE `db`.`table` ADD IF NOT EXISTS PARTITION (`dt`='20261120', `hr`='2026112007')
        LOCATION 'file:///data/lake/raw/clicks/date=20261120/hour=2026112007'

The statement is idempotent, so a replayed run registers the same partitions again at no cost. An existing
partition whose LOCATION points elsewhere (the original pseidon-hdfs registered dt=/hr= partitions without a
LOCATION, so Hive looked for them under <table>/dt=../hr=..) is moved to the directory the files are in. Connection
failures are retried with exponential backoff (:hive :retries / :retry-backoff-ms); when registration still fails,
CatalogError is raised, the ingest does not commit its offsets, and the next run replays the plan and registers
again.

Every identifier is validated ([A-Za-z_][A-Za-z0-9_]*) and backtick-quoted, every partition value and LOCATION is
validated before any SQL is sent: a hostile hive_table_name such as `t; DROP TABLE x` raises CatalogError. No DDL
literal holds '$' (Hive substitutes ${env:..}, ${hivevar:..} in statements), and column types must parse as one
whole Hive type. A hive_url may not carry a password (user-info or password=), and with :hive :allowed-hosts only
those hosts are contacted.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import posixpath
import re
import socket
import time
from typing import Any, Callable, Iterable, Sequence
from urllib.parse import urlsplit

from . import paths
from .config import Settings
from .logtable import LogSpec
from .partitioning import hour_start, partition_dir

log = logging.getLogger(__name__)

DEFAULT_PORT = 10000
DEFAULT_DATABASE = "default"
DEFAULT_USER = "hive"
DEFAULT_TIMEOUT_S = 60.0
TEXT_FORMATS = ("gzip", "txt", "bzip2", "zstd")

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_VALUE = re.compile(r"[0-9A-Za-z_-]+\Z")
_HIVE_TYPE = re.compile(r"[A-Za-z0-9_<>,:() ]+\Z")


class CatalogError(RuntimeError):
    """Hive registration/DDL failed or was refused. The message names the log, table and partitions where known,
    and the server's error; it never contains a password."""


# -- hive_url --------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class HiveTarget:
    """Where HiveServer2 is: from a pseidon_logs.hive_url.

    params: the session variables after ';' (principal, auth, ...); conf: the Hive settings after '?'."""

    host: str
    port: int = DEFAULT_PORT
    database: str = DEFAULT_DATABASE
    params: dict[str, str] = dataclasses.field(default_factory=dict, hash=False)
    conf: dict[str, str] = dataclasses.field(default_factory=dict, hash=False)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}/{self.database}"


def _kv(text: str, what: str, url: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in text.split(";"):
        if not item.strip():
            continue
        k, eq, v = item.partition("=")
        if not eq or not k.strip():
            raise CatalogError(f"hive_url {_safe_url(url)!r}: {what} {item!r} is not key=value")
        out[k.strip()] = v.strip()
    return out


def _safe_url(url: str) -> str:
    """The URL with its user-info and any password=... parameter masked (for error messages)."""
    return re.sub(r"(?i)(password|pwd)\s*=[^;?#&]*", r"\1=***", paths.redact_url(url))


def parse_hive_url(url: str) -> HiveTarget:
    """Parse a hive_url: the original's JDBC subname `//host:10000/db` or a full
    `jdbc:hive2://host:port/db;sess=v;...?hiveconf=v#hivevar=v`. Defaults: port 10000, database `default`.

    Unlike the original (section 5.2), `;principal=hive/_HOST@REALM` stays a parameter and never becomes the
    database name, and a URL that already starts with jdbc:hive2:// is accepted. For a multi-host (HA) list the
    first host is used."""
    if not isinstance(url, str) or not url.strip():
        raise CatalogError("hive_url is empty")
    raw = url.strip()
    if "$" in raw:
        raise CatalogError(f"hive_url {_safe_url(raw)!r} contains '$' (Hive variable substitution)")
    if re.search(r"(?i)[;?#&]\s*(password|pwd)\s*=", raw):
        raise CatalogError(f"hive_url {_safe_url(raw)!r} holds a password parameter; put the password in "
                           f"hive_password (a vault: reference is best)")
    rest = raw
    for prefix in ("jdbc:hive2:", "hive2:"):
        if rest.lower().startswith(prefix):
            rest = rest[len(prefix):]
            break
    if not rest.startswith("//"):
        raise CatalogError(f"hive_url {_safe_url(raw)!r} is neither //host:port/db nor jdbc:hive2://host:port/db")
    rest = rest[2:]
    rest, _, _hivevars = rest.partition("#")
    rest, _, hiveconf = rest.partition("?")
    m = re.match(r"([^/;]*)(/[^;]*)?(;.*)?\Z", rest, re.S)
    if not m:  # pragma: no cover - the pattern matches any string
        raise CatalogError(f"hive_url {_safe_url(raw)!r} cannot be parsed")
    authority, path, sess = m.group(1), m.group(2) or "", (m.group(3) or "")[1:]
    if "@" in authority:
        raise CatalogError(f"hive_url {_safe_url(raw)!r} has user-info (user:password@); give the user in hive_user "
                           f"and the password in hive_password")
    first = authority.split(",")[0].strip()
    if first.startswith("["):
        host, _, tail = first[1:].partition("]")
        port_text = tail[1:] if tail.startswith(":") else ""
    else:
        host, _, port_text = first.partition(":")
    if not host:
        raise CatalogError(f"hive_url {_safe_url(raw)!r} has no host")
    try:
        port = int(port_text) if port_text else DEFAULT_PORT
    except ValueError:
        raise CatalogError(f"hive_url {_safe_url(raw)!r}: port {port_text!r} is not a number") from None
    if not 0 < port < 65536:
        raise CatalogError(f"hive_url {_safe_url(raw)!r}: port {port} is out of range")
    database = path.strip("/") or DEFAULT_DATABASE
    if not _IDENT.match(database):
        raise CatalogError(f"hive_url {_safe_url(raw)!r}: database {database!r} is not a valid Hive identifier")
    return HiveTarget(host, port, database, _kv(sess, "parameter", raw), _kv(hiveconf, "Hive setting", raw))


# -- validation and quoting -----------------------------------------------------------------------------------


def ident(name: str, what: str = "identifier") -> str:
    """A validated, backtick-quoted Hive identifier."""
    if not isinstance(name, str) or not _IDENT.match(name):
        raise CatalogError(f"{what} {name!r} is not a valid Hive identifier ([A-Za-z_][A-Za-z0-9_]*)")
    return f"`{name}`"


def split_table(name: str, default_db: str) -> tuple[str, str]:
    """'table' or 'db.table' -> (db, table), both validated."""
    if not isinstance(name, str) or not name.strip():
        raise CatalogError("the Hive table name is empty")
    parts = name.split(".")
    if len(parts) == 1:
        db, table = default_db, parts[0]
    elif len(parts) == 2:
        db, table = parts
    else:
        raise CatalogError(f"Hive table name {name!r} must be table or db.table")
    ident(db, "Hive database")
    ident(table, f"Hive table name {name!r}: table")
    return db, table


def qualified(db: str | None, table: str, default_db: str = DEFAULT_DATABASE) -> str:
    """`db`.`table` from (db, 'table') or (None, 'db.table')."""
    d, t = split_table(table, db or default_db)
    return f"{ident(d)}.{ident(t)}"


def partition_value(value: Any, column: str = "partition") -> str:
    text = str(value)
    if not _VALUE.match(text):
        raise CatalogError(f"partition value {text!r} for {column} may only hold letters, digits, '_' and '-'")
    return f"'{text}'"


def partition_clause(values: dict[str, Any]) -> str:
    if not values:
        raise CatalogError("a partition needs at least one column value")
    return ", ".join(f"{ident(k, 'partition column')}={partition_value(v, k)}" for k, v in values.items())


def partition_spec(values: dict[str, Any]) -> str:
    """dt=20261120/hr=2026112007, as SHOW PARTITIONS prints it."""
    return "/".join(f"{k}={v}" for k, v in values.items())


def location_literal(location: str) -> str:
    if not isinstance(location, str) or not location.strip():
        raise CatalogError("a partition LOCATION is empty")
    problem = paths.text_problem(location)
    if problem:
        raise CatalogError(f"LOCATION {paths.redact_url(location)!r} {problem}")
    return f"'{location}'"


def _column_type(t: str) -> str:
    if not isinstance(t, str) or not _HIVE_TYPE.match(t.strip()):
        raise CatalogError(f"column type {t!r} is not a Hive type")
    from .schemas import SchemaError, hive_type

    try:
        hive_type(t)
    except (SchemaError, ValueError) as e:
        raise CatalogError(f"column type {t!r}: {e}") from None
    return t.strip()


# -- the HiveServer2 client -------------------------------------------------------------------------------------


def _connection_errors() -> tuple[type[BaseException], ...]:
    from thrift.transport.TTransport import TTransportException

    return (TTransportException, OSError, EOFError, socket.timeout)


def _server_message(e: BaseException) -> str:
    """The server's own error text (first line) out of a PyHive error, else str(e); at most 500 characters."""
    msg = None
    if e.args:
        status = getattr(e.args[0], "status", None)
        msg = getattr(status, "errorMessage", None)
    text = (msg or str(e) or type(e).__name__).strip()
    first = text.splitlines()[0] if text else type(e).__name__
    return first[:500]


class HiveCatalog:
    """A HiveServer2 client for DDL. One connection per call (opened, used, closed); every call is retried on
    connection errors, with backoff_s * 2**attempt between attempts. Server-side errors (the server answered with
    an error) are not retried: they raise CatalogError at once."""

    def __init__(self, target: HiveTarget, user: str | None = None, password: str | None = None, *,
                 retries: int = 3, backoff_s: float = 2.0, timeout_s: float = DEFAULT_TIMEOUT_S,
                 sleep: Callable[[float], None] = time.sleep):
        self.target = target
        self.user = user or DEFAULT_USER
        self._password = password or None
        self.retries = max(0, retries)
        self.backoff_s = max(0.0, backoff_s)
        self.timeout_s = timeout_s
        self._sleep = sleep
        mode = target.params.get("transportMode", "binary").lower()
        if mode != "binary":
            raise CatalogError(f"hive_url {target}: transportMode={mode} is not supported (binary Thrift only)")

    def __repr__(self) -> str:
        return f"HiveCatalog({self.target}, user={self.user!r})"

    # connection ----------------------------------------------------------------------------------------------
    def _auth(self) -> tuple[str, str | None]:
        p = {k.lower(): v for k, v in self.target.params.items()}
        if p.get("auth", "").lower() == "nosasl":
            return "NOSASL", None
        if p.get("principal"):
            return "KERBEROS", p["principal"].split("/")[0].split("@")[0]
        return ("CUSTOM" if self._password else "NONE"), None

    def _connect(self):
        from pyhive import hive
        from thrift.transport import TSocket, TTransport

        t = self.target
        sock = TSocket.TSocket(t.host, t.port)
        sock.setTimeout(int(self.timeout_s * 1000))
        auth, service = self._auth()
        if auth == "NOSASL":
            transport = TTransport.TBufferedTransport(sock)
        else:
            import thrift_sasl

            mech = "GSSAPI" if auth == "KERBEROS" else "PLAIN"
            user, pwd = self.user, (self._password or "x")  # PLAIN needs a non-empty password even for NONE

            def sasl_factory():
                return hive.get_installed_sasl(host=t.host, sasl_auth=mech, service=service, username=user,
                                               password=pwd)

            transport = thrift_sasl.TSaslClientTransport(sasl_factory, mech, sock)
        # Connect to `default` and qualify every name: the log's database may not exist yet (create_table_for).
        return hive.connect(thrift_transport=transport, username=self.user, database=DEFAULT_DATABASE,
                            configuration=dict(t.conf) or None)

    def run(self, what: str, fn: Callable[[Any], Any]):
        """fn(cursor) on a fresh connection, retried on connection errors. WHAT names the action in errors."""
        from pyhive import exc as hive_exc

        conn_errors = _connection_errors()
        attempts = self.retries + 1
        last: BaseException | None = None
        for attempt in range(attempts):
            try:
                conn = self._connect()
                try:
                    cur = conn.cursor()
                    try:
                        return fn(cur)
                    finally:
                        _quietly(cur.close)
                finally:
                    _quietly(conn.close)
            except CatalogError:
                raise
            except hive_exc.Error as e:
                raise CatalogError(f"{what}: HiveServer2 {self.target} answered: {_server_message(e)}") from None
            except conn_errors as e:
                last = e
                if attempt + 1 < attempts:
                    delay = self.backoff_s * (2 ** attempt)
                    log.warning("%s: HiveServer2 %s not reachable (%s); attempt %d of %d, retrying in %.1fs",
                                what, self.target, _server_message(e), attempt + 1, attempts, delay)
                    self._sleep(delay)
            except ImportError as e:
                raise CatalogError(f"{what}: {e} (pip install 'pyhive[hive_pure_sasl]')") from None
        raise CatalogError(f"{what}: HiveServer2 {self.target} not reachable after {attempts} attempt(s): "
                           f"{type(last).__name__}: {_server_message(last)}")

    def execute(self, sql: str, fetch: bool = False, what: str | None = None) -> list[tuple]:
        def go(cur):
            cur.execute(sql)
            return [tuple(r) for r in cur.fetchall()] if fetch else []

        return self.run(what or sql.split("(")[0][:80], go)

    # queries -------------------------------------------------------------------------------------------------
    def _q(self, db: str | None, table: str) -> str:
        return qualified(db, table, self.target.database)

    def add_partitions(self, db: str | None, table: str, partitions: Sequence[tuple[dict[str, Any], str]],
                       fix_locations: bool = True) -> list[str]:
        """Register partitions [(values, location)], idempotently; returns their specs (dt=../hr=..).

        With fix_locations, an existing partition whose LOCATION differs is moved with SET LOCATION."""
        name = self._q(db, table)
        stmts = []
        for values, location in partitions:
            clause, loc = partition_clause(values), location_literal(location)
            stmts.append((partition_spec(values), clause, location,
                          f"ALTER TABLE {name} ADD IF NOT EXISTS PARTITION ({clause}) LOCATION {loc}"))
        if not stmts:
            return []

        def go(cur):
            for _spec, clause, location, sql in stmts:
                cur.execute(sql)
                if fix_locations:
                    cur.execute(f"DESCRIBE FORMATTED {name} PARTITION ({clause})")
                    current = _location_of(cur.fetchall())
                    if current is not None and not same_location(current, location):
                        log.warning("Hive partition %s %s pointed at %s; moving it to %s", name, _spec, current,
                                    location)
                        cur.execute(f"ALTER TABLE {name} PARTITION ({clause}) SET LOCATION "
                                    f"{location_literal(location)}")
            return [s for s, *_ in stmts]

        return self.run(f"registering partitions of {name}", go)

    def drop_partitions(self, db: str | None, table: str, partitions: Sequence[dict[str, Any]]) -> list[str]:
        """ALTER TABLE ... DROP IF EXISTS PARTITION for each spec (external tables: the files stay)."""
        name = self._q(db, table)
        stmts = [(partition_spec(v), f"ALTER TABLE {name} DROP IF EXISTS PARTITION ({partition_clause(v)})")
                 for v in partitions]

        def go(cur):
            for _spec, sql in stmts:
                cur.execute(sql)
            return [s for s, _ in stmts]

        return self.run(f"dropping partitions of {name}", go) if stmts else []

    def show_partitions(self, db: str | None, table: str) -> list[str]:
        rows = self.execute(f"SHOW PARTITIONS {self._q(db, table)}", fetch=True)
        return [str(r[0]) for r in rows]

    def describe(self, table: str, db: str | None = None) -> list[tuple[str, str]]:
        """The table's data columns [(name, hive_type)], without partition columns and '#' header rows."""
        rows = self.execute(f"DESCRIBE {self._q(db, table)}", fetch=True, what=f"DESCRIBE {table}")
        return describe_columns(rows)

    def table_exists(self, db: str | None, table: str) -> bool:
        d, t = split_table(table, db or self.target.database)

        def go(cur):
            cur.execute(f"SHOW DATABASES LIKE '{d}'")
            if not any(str(c).strip().lower() == d.lower() for r in cur.fetchall() for c in r):
                return False
            cur.execute(f"SHOW TABLES IN {ident(d)} LIKE '{t}'")
            return any(str(c).strip().lower() == t.lower() for r in cur.fetchall() for c in r if isinstance(c, str))

        return self.run(f"looking up table {d}.{t}", go)

    def create_database(self, db: str) -> None:
        self.execute(f"CREATE DATABASE IF NOT EXISTS {ident(db, 'Hive database')}")

    def create_table(self, db: str | None, table: str, columns: Sequence[tuple[str, str]],
                     partition_columns: Sequence[str], storage: str, location: str | None = None,
                     external: bool = True, properties: dict[str, str] | None = None) -> str:
        """CREATE [EXTERNAL] TABLE IF NOT EXISTS; STORAGE is a clause built by storage_clause(). Returns the DDL."""
        name = self._q(db, table)
        if not columns:
            raise CatalogError(f"CREATE TABLE {name}: no columns")
        cols = ", ".join(f"{ident(n, 'column')} {_column_type(t)}" for n, t in columns)
        parts = ", ".join(f"{ident(p, 'partition column')} string" for p in partition_columns)
        sql = (f"CREATE {'EXTERNAL ' if external else ''}TABLE IF NOT EXISTS {name} ({cols})"
               + (f" PARTITIONED BY ({parts})" if parts else "") + f" {storage}"
               + (f" LOCATION {location_literal(location)}" if location else "")
               # PROPERTIES are constants of this module (never row text)
               + (" TBLPROPERTIES (" + ", ".join(f"'{k}' = '{v}'" for k, v in sorted(properties.items())) + ")"
                  if properties else ""))
        self.execute(sql, what=f"CREATE TABLE {name}")
        return sql


def _quietly(fn: Callable[[], Any]) -> None:
    try:
        fn()
    except Exception:  # noqa: BLE001 - closing a dead connection may fail in many ways
        pass


def describe_columns(rows: Iterable[Sequence[Any]]) -> list[tuple[str, str]]:
    """DESCRIBE output -> data columns. Works for Hive (padded names, blank rows) and Spark's Thrift Server."""
    data: list[tuple[str, str]] = []
    partition_cols: set[str] = set()
    section = "data"
    for r in rows:
        name = (str(r[0]) if r and r[0] is not None else "").strip()
        typ = (str(r[1]) if len(r) > 1 and r[1] is not None else "").strip()
        if name.startswith("#"):
            if "partition" in name.lower():
                section = "partition"
            elif name.lower() != "# col_name":
                section = "other"
            continue
        if not name:
            continue
        if section == "data":
            data.append((name.lower(), typ.lower()))
        elif section == "partition":
            partition_cols.add(name.lower())
    return [(n, t) for n, t in data if n not in partition_cols]


def _location_of(rows: Iterable[Sequence[Any]]) -> str | None:
    for r in rows:
        if r and r[0] is not None and str(r[0]).strip().rstrip(":").strip().lower() == "location":
            return str(r[1]).strip() if len(r) > 1 and r[1] is not None else None
    return None


def same_location(a: str, b: str) -> bool:
    """file:/x, file:///x and /x are the same place; hdfs://nn:8020/x and hdfs://nn/x too (ports are ignored)."""
    def norm(u: str) -> tuple[str, str, str]:
        s = urlsplit(u)
        scheme = (s.scheme or "file").lower()
        host = (s.hostname or "").lower() if scheme != "file" else ""
        return scheme, host, posixpath.normpath(s.path or "/")

    return norm(a) == norm(b)


# -- per log --------------------------------------------------------------------------------------------------


def table_name_of(spec: LogSpec) -> str:
    """hive_table_name, or the log name with '-' and '.' turned into '_' (the original used the log name)."""
    return spec.hive_table_name or re.sub(r"[^A-Za-z0-9_]", "_", spec.log)


def _password(settings: Settings, spec: LogSpec) -> str | None:
    pwd = spec.hive_password
    if not pwd:
        return None
    from . import secrets

    try:
        return secrets.resolve_row_reference(pwd, settings.vault)  # a row's reference: only under :row-prefixes
    except secrets.SecretError as e:
        raise CatalogError(f"log {spec.log!r}: hive_password: {e}") from None


def target_for(settings: Settings, hive_url: str) -> HiveTarget:
    """The HiveServer2 a hive_url names, if :hive :allowed-hosts (when set) lets rows name it."""
    target = parse_hive_url(hive_url)
    allowed = settings.hive.allowed_hosts
    if allowed and not any(h == target.host.lower() and p in (None, target.port) for h, p in allowed):
        raise CatalogError(f"hive_url host {target.host}:{target.port} is not in :hive :allowed-hosts")
    return target


def catalog_for(settings: Settings, spec: LogSpec) -> tuple[HiveCatalog, str, str]:
    """(catalog, db, table) of a log; raises CatalogError when the log has no hive_url or a bad table name."""
    if not spec.hive_url:
        raise CatalogError(f"log {spec.log!r} has no hive_url")
    try:
        target = target_for(settings, spec.hive_url)
        db, table = split_table(table_name_of(spec), target.database)
    except CatalogError as e:
        raise CatalogError(f"log {spec.log!r}: {e}") from None
    h = settings.hive
    for col in (h.date_column, h.hour_column):  # checked when pseidon.edn is read, and again here, where SQL is made
        ident(col, ":hive partition column")
    cat = HiveCatalog(target, spec.hive_user, _password(settings, spec), retries=h.retries,
                      backoff_s=h.retry_backoff_s)
    return cat, db, table


def _local_uri(path: str) -> str:
    return "file://" + os.path.abspath(path)


def table_location(settings: Settings, spec: LogSpec) -> str:
    """<base_partition>/<log_partition> as a URI (file:///abs/path for local directories)."""
    root = settings.resolve_path(spec.base_partition)
    if "://" in root and not root.startswith("file://"):
        return f"{root.rstrip('/')}/{spec.log_partition.strip('/')}"
    if root.startswith("file://"):
        root = root[len("file://"):]
    return _local_uri(os.path.join(root, spec.log_partition.strip("/")))


def partition_values(settings: Settings, spec: LogSpec, hour: int) -> dict[str, str]:
    """The Hive partition values of an event hour: {dt: YYYYMMDD, hr: YYYYMMDDHH} with :hive's names and formats
    (the date only for date_format=date logs)."""
    h, t = settings.hive, hour_start(hour)
    values = {h.date_column: t.strftime(h.date_value)}
    if spec.hourly:
        values[h.hour_column] = t.strftime(h.hour_value)
    return values


def partitions_for(settings: Settings, spec: LogSpec, files: Iterable[Any]) -> list[tuple[dict[str, str], str]]:
    """The distinct partitions [(values, location)] holding FILES (FileInfo of kind data), ordered by time.

    The location is the directory each file is in (date=YYYYMMDD[/hour=YYYYMMDDHH]) as a URI; the values come from
    the file's hour with :hive's column names and formats. Date-only layouts (date_format=date) get the date
    column only, one partition per day."""
    root = settings.resolve_path(spec.base_partition)
    remote = "://" in root and not root.startswith("file://")
    out: dict[str, tuple[int, dict[str, str]]] = {}
    for f in files:
        if getattr(f, "kind", "data") != "data":
            continue
        values = partition_values(settings, spec, f.hour)
        if remote:
            location = partition_dir(root, spec.log_partition, f.hour, spec.hourly)
        else:
            location = _local_uri(posixpath.dirname(f.path))
        prev = out.get(location)
        if prev is None or f.hour < prev[0]:
            out[location] = (f.hour, values)
    return [(v, loc) for loc, (_, v) in sorted(out.items(), key=lambda kv: (kv[1][0], kv[0]))]


def _short(items: list[str], n: int = 10) -> str:
    return ", ".join(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")


def registrar_for(settings: Settings, spec: LogSpec,
                  catalog_factory: Callable[[Settings, LogSpec], tuple[HiveCatalog, str, str]] | None = None
                  ) -> Callable[[Any], list[str]]:
    """The ingest's register hook for SPEC: registers the partitions of the run's data files, returns their specs.

    The hive_url and table name are validated now (CatalogError before anything is read); the connection, and the
    hive_password's Vault lookup, happen when the hook runs."""
    if not spec.hive_url:
        raise CatalogError(f"log {spec.log!r} has no hive_url: nothing to register partitions in")
    target = target_for(settings, spec.hive_url)
    db, table = split_table(table_name_of(spec), target.database)
    factory = catalog_factory or catalog_for

    def register(result) -> list[str]:
        planned = getattr(result, "spec", None) or spec  # the paths and layout the run's plan was made with
        parts = partitions_for(settings, planned, result.data_files)
        if not parts:
            return []
        specs = [partition_spec(v) for v, _ in parts]
        try:
            cat, d, t = factory(settings, spec)
            done = cat.add_partitions(d, t, parts)
        except CatalogError as e:
            raise CatalogError(f"log {spec.log!r}: could not register {len(specs)} partition(s) ({_short(specs)}) "
                               f"in Hive table {db}.{table} at {target.host}:{target.port}: {e}") from None
        log.info("log %s: registered %d partition(s) of %s.%s: %s", spec.log, len(done), db, table, _short(done))
        return done

    return register


def hive_schema_for(settings: Settings, spec: LogSpec):
    """The Arrow schema of the log's Hive table (data columns only; partition columns and the :hive date/hour
    columns are dropped), or None when the log has no hive_url. Read from Hive on every call."""
    if not spec.hive_url:
        return None
    from .schemas import SchemaError, schema_from_columns

    cat, db, table = catalog_for(settings, spec)
    cols = cat.describe(table, db)
    skip = {settings.hive.date_column.lower(), settings.hive.hour_column.lower()}
    cols = [(n, t) for n, t in cols if n not in skip]
    if not cols:
        raise CatalogError(f"log {spec.log!r}: Hive table {db}.{table} has no data columns")
    try:
        return schema_from_columns(cols)
    except (SchemaError, ValueError) as e:
        raise CatalogError(f"log {spec.log!r}: Hive table {db}.{table}: {e}") from None


def _sep_literal(sep: bytes) -> str:
    if len(sep) != 1:
        raise CatalogError(f"separator {sep!r} is more than one byte; Hive's text SerDe splits on a single byte")
    c = sep.decode("latin-1")
    if c.isprintable() and c not in "'\\\"`;$":  # '$' as an octal escape: no Hive variable substitution
        return f"'{c}'"
    return "'\\%03o'" % ord(c)


def storage_clause(spec: LogSpec, columns: Sequence[tuple[str, str]] | None, escaped: bool = False
                   ) -> tuple[str, list[tuple[str, str]]]:
    """(storage clause, columns) for a log's output_format. ESCAPED: text lines escape `\\`, LF and CR
    (:writer :line-breaks "escape"), which Hive reads back with ESCAPED BY '\\' and serialization.escape.crlf."""
    if spec.output_format == "parquet":
        if not columns:
            raise CatalogError(f"log {spec.log!r} writes parquet: give the table's columns")
        return "STORED AS PARQUET", list(columns)
    if spec.output_format not in TEXT_FORMATS:
        raise CatalogError(f"log {spec.log!r}: no Hive storage for output_format {spec.output_format!r}")
    from .formats import parse_descriptor

    d = parse_descriptor(spec.format)
    if d.type == "txt" and columns:
        from .formats.txt import separator

        return (f"ROW FORMAT DELIMITED FIELDS TERMINATED BY {_sep_literal(separator(d.get('sep')))}"
                f"{_ESCAPED if escaped else ''} STORED AS TEXTFILE"), list(columns)
    # One `line` column holding the whole line: json and avro-txt lines, or txt without given columns. The field
    # terminator is the line terminator, which never occurs inside a line, so the line is never split.
    return (f"ROW FORMAT DELIMITED FIELDS TERMINATED BY '\\n'{_ESCAPED if escaped else ''} STORED AS TEXTFILE",
            list(columns) if columns else [("line", "string")])


_ESCAPED = " ESCAPED BY '\\\\'"
ESCAPED_PROPERTIES = {"serialization.escape.crlf": "true"}


def create_table_for(settings: Settings, spec: LogSpec, columns: Sequence[tuple[str, str]] | Any = None) -> str:
    """CREATE EXTERNAL TABLE IF NOT EXISTS for a log (and its database), partitioned by the :hive date [and hour]
    columns (string), stored to match output_format, at LOCATION <base_partition>/<log_partition>.

    COLUMNS: [(name, hive_type)] or a pyarrow.Schema; by default <schema-dir>/<log>.json when it exists. Text logs
    with a txt descriptor get a delimited table split on the descriptor's separator; without columns (and for
    json/avro-txt) one `line string` column. Parquet needs columns. Returns the DDL sent."""
    if columns is None:
        from .schemas import load_schema_file

        columns = load_schema_file(settings.schema_dir, spec.log)
    if columns is not None and hasattr(columns, "names") and hasattr(columns, "field"):
        columns = arrow_columns(columns)
    cat, db, table = catalog_for(settings, spec)
    escaped = settings.writer.line_breaks == "escape" and spec.output_format != "parquet"
    storage, cols = storage_clause(spec, columns, escaped)
    if spec.output_format == "zstd":
        log.warning("log %s writes .zst text: Hive reads it only where Hadoop's native zstd codec is installed "
                    "(Spark's local Thrift Server from the pyspark wheel cannot)", spec.log)
    h = settings.hive
    parts = [h.date_column] + ([h.hour_column] if spec.hourly else [])
    if db != DEFAULT_DATABASE:
        cat.create_database(db)
    return cat.create_table(db, table, cols, parts, storage, table_location(settings, spec),
                            properties=ESCAPED_PROPERTIES if escaped else None)


def arrow_columns(schema) -> list[tuple[str, str]]:
    """pyarrow.Schema -> [(name, hive_type)] for the types hive_schema_for maps back."""
    return [(f.name, arrow_to_hive(f.type)) for f in schema]


def arrow_to_hive(t) -> str:
    import pyarrow as pa

    simple = [(pa.types.is_string, "string"), (pa.types.is_large_string, "string"), (pa.types.is_boolean, "boolean"),
              (pa.types.is_int8, "tinyint"), (pa.types.is_int16, "smallint"), (pa.types.is_int32, "int"),
              (pa.types.is_int64, "bigint"), (pa.types.is_float32, "float"), (pa.types.is_float64, "double"),
              (pa.types.is_timestamp, "timestamp"), (pa.types.is_date32, "date"), (pa.types.is_binary, "binary")]
    for test, name in simple:
        if test(t):
            return name
    if pa.types.is_decimal(t):
        return f"decimal({t.precision},{t.scale})"
    if pa.types.is_list(t):
        return f"array<{arrow_to_hive(t.value_type)}>"
    if pa.types.is_map(t):
        return f"map<{arrow_to_hive(t.key_type)},{arrow_to_hive(t.item_type)}>"
    if pa.types.is_struct(t):
        return "struct<" + ",".join(f"{f.name}:{arrow_to_hive(f.type)}" for f in t) + ">"
    raise CatalogError(f"no Hive type for Arrow type {t}")


__all__ = [
    "CatalogError", "HiveCatalog", "HiveTarget", "parse_hive_url", "registrar_for", "hive_schema_for",
    "create_table_for", "partitions_for", "table_location", "catalog_for", "target_for",
]
