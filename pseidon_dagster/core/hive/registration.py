"""Per log: which Hive partitions a run registers, the log's HiveCatalog, its table's schema and CREATE TABLE.

What a run registers: every partition directory it wrote a data file into, with an explicit LOCATION:

    ALTER TABLE `db`.`table` ADD IF NOT EXISTS PARTITION (`dt`='20261120', `hr`='2026112007')
        LOCATION 'file:///data/lake/raw/clicks/date=20261120/hour=2026112007'

The statement is idempotent, so a replayed run registers the same partitions again at no cost. An existing
partition whose LOCATION points elsewhere (the original pseidon-hdfs registered dt=/hr= partitions without a
LOCATION, so Hive looked for them under <table>/dt=../hr=..) is moved to the directory the files are in. Connection
failures are retried with exponential backoff (:hive :retries / :retry-backoff-ms); when registration still fails,
CatalogError is raised, the ingest does not commit its offsets, and the next run replays the plan and registers
again.
"""
from __future__ import annotations

import logging
import os
import posixpath
import re
from collections.abc import Callable, Iterable, Sequence

import pyarrow as pa

from .. import secrets
from ..config import Settings
from ..model import FileInfo, IngestResult, LogSpec
from ..partitioning import hour_start, partition_dir
from .client import HiveCatalog
from .errors import CatalogError
from .sql import DEFAULT_DATABASE, ESCAPED_PROPERTIES, ident, partition_spec, split_table, storage_clause
from .types import SchemaError, arrow_columns, load_schema_file, schema_from_columns
from .url import target_for

log = logging.getLogger(__name__)

CatalogFactory = Callable[[Settings, LogSpec], tuple[HiveCatalog, str, str]]
Registrar = Callable[[IngestResult], list[str]]


def table_name_of(spec: LogSpec) -> str:
    """hive_table_name, or the log name with '-' and '.' turned into '_' (the original used the log name)."""
    return spec.hive_table_name or re.sub(r"[^A-Za-z0-9_]", "_", spec.log)


def _password(settings: Settings, spec: LogSpec) -> str | None:
    pwd = spec.hive_password
    if not pwd:
        return None
    try:
        return secrets.resolve_row_reference(pwd, settings.vault)  # a row's reference: only under :row-prefixes
    except secrets.SecretError as e:
        raise CatalogError(f"log {spec.log!r}: hive_password: {e}") from None


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


def partitions_for(settings: Settings, spec: LogSpec, files: Iterable[FileInfo]) -> list[tuple[dict[str, str], str]]:
    """The distinct partitions [(values, location)] holding FILES (their data files), ordered by time.

    The location is the directory each file is in (date=YYYYMMDD[/hour=YYYYMMDDHH]) as a URI; the values come from
    the file's hour with :hive's column names and formats. Date-only layouts (date_format=date) get the date
    column only, one partition per day."""
    root = settings.resolve_path(spec.base_partition)
    remote = "://" in root and not root.startswith("file://")
    out: dict[str, tuple[int, dict[str, str]]] = {}
    for f in files:
        if f.kind != "data":
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


def registrar_for(settings: Settings, spec: LogSpec, catalog_factory: CatalogFactory | None = None) -> Registrar:
    """The ingest's register hook for SPEC: registers the partitions of the run's data files, returns their specs.

    The hive_url and table name are validated now (CatalogError before anything is read); the connection, and the
    hive_password's Vault lookup, happen when the hook runs."""
    if not spec.hive_url:
        raise CatalogError(f"log {spec.log!r} has no hive_url: nothing to register partitions in")
    target = target_for(settings, spec.hive_url)
    db, table = split_table(table_name_of(spec), target.database)
    factory = catalog_factory or catalog_for

    def register(result: IngestResult) -> list[str]:
        planned = result.spec or spec  # the paths and layout the run's plan was made with
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


def hive_schema_for(settings: Settings, spec: LogSpec) -> pa.Schema | None:
    """The Arrow schema of the log's Hive table (data columns only; partition columns and the :hive date/hour
    columns are dropped), or None when the log has no hive_url. Read from Hive on every call."""
    if not spec.hive_url:
        return None
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


def create_table_for(settings: Settings, spec: LogSpec,
                     columns: Sequence[tuple[str, str]] | pa.Schema | None = None) -> str:
    """CREATE EXTERNAL TABLE IF NOT EXISTS for a log (and its database), partitioned by the :hive date [and hour]
    columns (string), stored to match output_format, at LOCATION <base_partition>/<log_partition>.

    COLUMNS: [(name, hive_type)] or a pyarrow.Schema; by default <schema-dir>/<log>.json when it exists. Text logs
    with a txt descriptor get a delimited table split on the descriptor's separator; without columns (and for
    json/avro-txt) one `line string` column. Parquet needs columns. Returns the DDL sent."""
    if columns is None:
        columns = load_schema_file(settings.schema_dir, spec.log)
    if isinstance(columns, pa.Schema):
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
