"""HiveCatalog: DDL over HiveServer2 (impyla, Thrift binary + SASL: PLAIN/LDAP, GSSAPI, NOSASL), one connection per
call, retried on connection errors; and the reading of its answers (DESCRIBE rows, partition locations, errors)."""
from __future__ import annotations

import logging
import posixpath
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit

from .errors import CatalogError
from .sql import (
    DEFAULT_DATABASE,
    create_table_sql,
    ident,
    location_literal,
    partition_clause,
    partition_spec,
    qualified,
    split_table,
)
from .url import HiveTarget

if TYPE_CHECKING:
    from impala.hiveserver2 import HiveServer2Connection as Connection
    from impala.hiveserver2 import HiveServer2Cursor as Cursor

log = logging.getLogger(__name__)

DEFAULT_USER = "hive"
DEFAULT_TIMEOUT_S = 60.0

T = TypeVar("T")

# impyla, thrift and thrift_sasl are imported when a connection is made, not with this module: most processes that
# import the package (the sensor, the Dagster code location, the CLI's other commands) never connect to Hive.


def _connection_errors() -> tuple[type[BaseException], ...]:
    from thrift.transport.TTransport import TTransportException

    return (TTransportException, OSError, EOFError, socket.timeout)


def _server_message(e: BaseException) -> str:
    """The server's own error text (first line) out of a HiveServer2 error, else str(e); at most 500 characters."""
    msg = None
    if e.args:
        status = getattr(e.args[0], "status", None)  # a Thrift response (TExecuteStatementResp, ...), or not
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
        """(impyla auth_mechanism, Kerberos service name) from the hive_url: ;auth=noSasl -> NOSASL; ;principal=
        hive/_HOST@REALM -> GSSAPI (service `hive`); a password -> LDAP (SASL PLAIN with it); else PLAIN (what
        HiveServer2's authentication NONE expects)."""
        p = {k.lower(): v for k, v in self.target.params.items()}
        if p.get("auth", "").lower() == "nosasl":
            return "NOSASL", None
        if p.get("principal"):
            return "GSSAPI", p["principal"].split("/")[0].split("@")[0]
        return ("LDAP" if self._password else "PLAIN"), None

    def _connect(self) -> tuple[Connection, Cursor]:
        from impala.dbapi import connect

        t = self.target
        auth, service = self._auth()
        # Connect to `default` and qualify every name: the log's database may not exist yet (create_table_for).
        # retries=1: the retries (and their backoff) are this class's own.
        conn = connect(host=t.host, port=t.port, database=DEFAULT_DATABASE, timeout=self.timeout_s,
                       auth_mechanism=auth, user=self.user, password=self._password,
                       kerberos_service_name=service or "hive", retries=1)
        try:
            # close_finished_queries=False: impyla would fetch each finished DDL's operation log (GetLog), which a
            # server without operation logging (or one restarted meanwhile) answers with an error; the operations
            # are closed with the cursor instead.
            return conn, conn.cursor(user=self.user, configuration=dict(t.conf) or None,
                                     close_finished_queries=False)
        except BaseException:
            _quietly(conn.close)
            raise

    def run(self, what: str, fn: Callable[[Cursor], T]) -> T:
        """fn(cursor) on a fresh connection, retried on connection errors. WHAT names the action in errors."""
        from impala import error as hive_exc

        conn_errors = _connection_errors()
        attempts = self.retries + 1
        last: BaseException | None = None
        for attempt in range(attempts):
            try:
                conn, cur = self._connect()
                try:
                    return fn(cur)
                finally:
                    _close(cur, conn)
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
                raise CatalogError(f"{what}: {e} (pip install impyla thrift thrift-sasl pure-sasl)") from None
        reason = f"{type(last).__name__}: {_server_message(last)}" if last is not None else "no attempt made"
        raise CatalogError(f"{what}: HiveServer2 {self.target} not reachable after {attempts} attempt(s): {reason}")

    def execute(self, sql: str, fetch: bool = False, what: str | None = None) -> list[tuple]:
        def go(cur: Cursor) -> list[tuple]:
            cur.execute(sql)
            return [tuple(r) for r in cur.fetchall()] if fetch else []

        return self.run(what or sql.split("(")[0][:80], go)

    # queries -------------------------------------------------------------------------------------------------
    def _q(self, db: str | None, table: str) -> str:
        return qualified(db, table, self.target.database)

    def add_partitions(self, db: str | None, table: str, partitions: Sequence[tuple[dict[str, str], str]],
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

        def go(cur: Cursor) -> list[str]:
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

    def drop_partitions(self, db: str | None, table: str, partitions: Sequence[dict[str, str]]) -> list[str]:
        """ALTER TABLE ... DROP IF EXISTS PARTITION for each spec (external tables: the files stay)."""
        name = self._q(db, table)
        stmts = [(partition_spec(v), f"ALTER TABLE {name} DROP IF EXISTS PARTITION ({partition_clause(v)})")
                 for v in partitions]

        def go(cur: Cursor) -> list[str]:
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

        def go(cur: Cursor) -> bool:
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
        sql = create_table_sql(name, columns, partition_columns, storage, location, external, properties)
        self.execute(sql, what=f"CREATE TABLE {name}")
        return sql


def _close(cur: Cursor, conn: Connection) -> None:
    try:
        cur.close()
    except Exception:  # noqa: BLE001 - the server is gone or the session broken
        # impyla marks a cursor closed only when its session closed; otherwise the cursor's __del__ retries the RPCs
        # at garbage collection: a blocking connect, and an error logged from inside the collector (on Python 3.11
        # that formats a traceback with ast.parse, which corrupts a running ast.parse: "AST constructor recursion
        # depth mismatch").
        cur._closed = True
    _quietly(conn.close)


def _quietly(fn: Callable[[], object]) -> None:
    try:
        fn()
    except Exception:  # noqa: BLE001 - closing a dead connection may fail in many ways
        pass


# -- the server's answers ---------------------------------------------------------------------------------------


def describe_columns(rows: Iterable[Sequence[object]]) -> list[tuple[str, str]]:
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


def _location_of(rows: Iterable[Sequence[object]]) -> str | None:
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
