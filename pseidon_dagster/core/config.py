"""pseidon.edn: one declared table of keys -> typed Settings.

KEYS, and the tables of the maps it holds (:redis-conf, :writer, :hive, :vault, :metrics, :alerts, :freshness), declare
every key pseidon.edn may hold: the settings field it sets, how its value is converted and checked (type, bounds), its
default as written in pseidon.edn, and what it means. That one table parses a file (an error names the key), says why a
key of the original has no effect here, warns about an unknown key naming the nearest known one (an error with
`:strict true` or `--strict`), and renders the README's configuration table (`pseidon-dagster config keys`;
tests/unit/core/test_config_table.py checks that the README holds exactly it). `:vault` and `:hive` become typed
settings here, once (secrets.VaultConfig, HivePartitionSettings).

(Over 400 lines because the table, with one line of help per key, is most of it.)
"""
from __future__ import annotations

import dataclasses
import difflib
import logging
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL

from . import edn, paths
from .formats.registry import RegistryUnavailable, check_config, normalize_url
from .secrets import SecretMap, VaultConfig, is_reference, parse_reference, resolver_for

log = logging.getLogger(__name__)

DEFAULT_CONFIG_PATH = "/opt/pseidon-etl/conf/pseidon.edn"


class ConfigError(ValueError):
    """A pseidon.edn problem; the message names the key."""


# -- the settings ------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class RedisSettings:
    hosts: tuple[tuple[str, int], ...] = (("127.0.0.1", 6379),)
    password: str | None = dataclasses.field(default=None, repr=False)
    db: int = 0
    timeout_s: float = 5.0

    @property
    def cluster(self) -> bool:
        return len(self.hosts) > 1


@dataclasses.dataclass(frozen=True)
class WriterSettings:
    rollover_size: int = 115_000_000
    rollover_timeout_ms: int = 600_000
    rollover_abs_timeout_ms: int = 600_000
    gzip_level: int = 1
    zstd_level: int = 3
    max_open_files: int = 64
    parquet_codec: str = "snappy"
    parquet_block_size: int = 20_971_520
    allow_all_ts: bool = False
    ts_window_back_ms: int = 30 * 24 * 3600 * 1000
    ts_window_ahead_ms: int = 3600 * 1000
    line_breaks: str = "quarantine"  # or "escape": what happens to a text line holding \n or \r
    fsync: bool = True  # files and their directories are on stable storage before the offsets are committed


@dataclasses.dataclass(frozen=True)
class HivePartitionSettings:
    date_column: str = "dt"
    hour_column: str = "hr"
    date_value: str = "%Y%m%d"
    hour_value: str = "%Y%m%d%H"
    retries: int = 3
    retry_backoff_s: float = 2.0
    # HiveServer2 hosts a pseidon_logs.hive_url may name, as (host, port or None = any port); empty: any host.
    allowed_hosts: tuple[tuple[str, int | None], ...] = ()


@dataclasses.dataclass(frozen=True)
class OpsSettings:
    """Operations: metrics, alerts, freshness, fatal errors (see README "Operations")."""

    metrics_redis: RedisSettings | None = None  # :metrics {:redis {...}}; None: the offsets Redis (:redis-conf)
    monitor_port: int = 8282  # the original's default (its README said 8080, its code and scripts 8282)
    fatal_errors_file: str = "/tmp/fatalerrors"
    alert_webhook: str | None = dataclasses.field(default=None, repr=False)  # a webhook URL may hold a token
    alert_timeout_s: float = 5.0
    freshness_default_minutes: int = 120
    freshness_minutes: dict[str, int] = dataclasses.field(default_factory=dict)  # per log

    def freshness_for(self, log: str) -> int:
        """Minutes a log may go without landing data before it is stale."""
        return self.freshness_minutes.get(log, self.freshness_default_minutes)


@dataclasses.dataclass(frozen=True)
class Settings:
    etl_db_url: str = dataclasses.field(default="sqlite:///var/pseidon.db", repr=False)  # may embed the password
    etl_db_user: str | None = None
    etl_db_pwd: str | None = dataclasses.field(default=None, repr=False)
    etl_group: str = "etl"
    kafka_brokers: tuple[str, ...] = ("127.0.0.1:9092",)
    kafka_use_earliest: bool = False
    kafka_config: dict[str, Any] = dataclasses.field(default_factory=SecretMap)  # repr masks sasl.password, ...
    kafka_timeout_s: float = 10.0
    kafka_batch_size: int = 10_000
    max_offsets_per_partition: int = 5_000_000
    redis: RedisSettings = RedisSettings()
    data_dir: str = "var/data"
    allowed_roots: tuple[str, ...] = ()  # beside :data-dir, where pseidon_logs paths may point
    writer: WriterSettings = WriterSettings()
    hive: HivePartitionSettings = HivePartitionSettings()
    avro_schema_registry_url: str = dataclasses.field(default="http://localhost:8081", repr=False)  # may hold user:pw@
    # SchemaRegistryClient settings (basic auth, TLS, proxy); repr masks basic.auth.user.info and ssl.key.password
    avro_schema_registry_config: dict[str, str] = dataclasses.field(default_factory=SecretMap)
    schema_dir: str = "conf/schemas"
    vault: VaultConfig = VaultConfig()  # repr shows no token, secret-id or role-id
    retention_hours: int | None = None  # unset: keep every hour (a pseidon_logs retention_hours overrides per log)
    quarantine_retention_hours: int | None = None
    sensor_min_lag: int | None = None  # unset: timed batches (a file's worth of bytes, or the rollover timeout)
    sensor_min_bytes: int | None = None  # unset: :writer :rollover-size
    sensor_max_wait_ms: int | None = None
    sensor_retry_backoff_ms: int = 60_000
    lease_ttl_s: float = 30.0
    backfill_lateness_ms: int = 3_600_000
    ingest_workers: int = 1
    ops: OpsSettings = OpsSettings()  # :metrics, :monitor-port, :fatal-errors-file, :alerts, :freshness
    strict: bool = False
    source: str | None = None

    @property
    def batch_bytes(self) -> int:
        """A backlog worth a file: runs are requested when a log's waiting messages reach it (timed batches)."""
        return self.sensor_min_bytes if self.sensor_min_bytes is not None else self.writer.rollover_size

    @property
    def metrics_redis(self) -> RedisSettings:
        """Where runs write their counters and /metrics reads them: :metrics :redis, else the offsets Redis."""
        return self.ops.metrics_redis or self.redis

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(self.kafka_brokers)

    @property
    def max_wait_ms(self) -> int:
        """A log with any lag is run once it has waited this long (defaults to :writer :rollover-timeout)."""
        if self.sensor_max_wait_ms is not None:
            return self.sensor_max_wait_ms
        return min(self.writer.rollover_timeout_ms, self.writer.rollover_abs_timeout_ms)

    @property
    def lease_wait_s(self) -> float:
        """How long a run waits for a log's lease held by another run: its TTL plus a margin."""
        return self.lease_ttl_s + min(10.0, max(1.0, self.lease_ttl_s / 3))

    @property
    def roots(self) -> tuple[str, ...]:
        """Where the paths of pseidon_logs rows may lead: :data-dir, then each of :allowed-roots."""
        return (self.data_dir, *self.allowed_roots)

    def resolve_path(self, path: str) -> str:
        """Relative paths (and only those) are taken relative to :data-dir; URIs are kept as they are."""
        if "://" in path or os.path.isabs(path):
            return path
        return os.path.join(self.data_dir, path)


# -- converters: (value, key name as written) -> the settings value, or ConfigError naming the key ---------------

Convert = Callable[[Any, str], Any]


def _typed(value: Any, name: str, kind: type | tuple[type, ...]) -> Any:
    if isinstance(value, bool) and kind in (int, float):
        raise ConfigError(f"{name} must be a {kind.__name__}, got {value!r}")
    if not isinstance(value, kind):
        want = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ConfigError(f"{name} must be a {want}, got {type(value).__name__} {value!r}")
    return value


def anything(value: Any, name: str) -> Any:
    return value


def boolean(value: Any, name: str) -> bool:
    return _typed(value, name, bool)


def text(value: Any, name: str) -> str:
    return _typed(value, name, str)


def integer(minimum: int | None = 0, maximum: int | None = None, scale: float = 1) -> Convert:
    """An int within [MINIMUM, MAXIMUM], times SCALE (1/1000: milliseconds to seconds)."""
    def convert(value: Any, name: str) -> Any:
        _typed(value, name, int)
        if minimum is not None and value < minimum:
            raise ConfigError(f"{name} must be >= {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise ConfigError(f"{name} must be <= {maximum}, got {value}")
        return value * scale if scale != 1 else value
    return convert


MS = 1 / 1000  # a key in milliseconds sets a field in seconds


def choice(*options: Any) -> Convert:
    def convert(value: Any, name: str) -> Any:
        v = value.lower() if isinstance(value, str) else value
        if isinstance(v, bool) or v not in options:
            raise ConfigError(f"{name} {value!r} is not one of {', '.join(map(str, options))}")
        return v
    return convert


def matching(pattern: str, what: str) -> Convert:
    def convert(value: Any, name: str) -> str:
        if not re.fullmatch(pattern, text(value, name)):
            raise ConfigError(f"{name} {value!r} {what}")
        return value
    return convert


def strings(value: Any, name: str) -> tuple[str, ...]:
    """A vector of non-empty strings."""
    if not isinstance(value, list):
        raise ConfigError(f"{name} must be a vector of strings, got {type(value).__name__}")
    for v in value:
        if not isinstance(v, str) or not v.strip():
            raise ConfigError(f"{name} entries must be non-empty strings, got {v!r}")
    return tuple(v.strip() for v in value)


def each(convert: Convert) -> Convert:
    return lambda value, name: tuple(convert(v, name) for v in strings(value, name))


def root(value: Any, name: str) -> str:
    try:
        paths.place(text(value, name), real=False)
    except ValueError as e:
        raise ConfigError(f"{name} {paths.redact_url(value)!r} {e}") from None
    return value


def brokers(value: Any, name: str) -> tuple[str, ...]:
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",") if v.strip()]
    elif isinstance(value, list):
        items = []
        for i, b in enumerate(value):
            if isinstance(b, dict):
                if "host" not in b:
                    raise ConfigError(f"{name} entry {i} has no :host")
                items.append(f"{b['host']}:{integer(1)(b.get('port', 9092), f'{name} port')}")
            elif isinstance(b, str):
                items.append(b)
            else:
                raise ConfigError(f"{name} entry {i} must be {{:host .. :port ..}} or \"host:port\"")
    else:
        raise ConfigError(f"{name} must be a vector of {{:host .. :port ..}} maps or a \"host:port,...\" string")
    if not items:
        raise ConfigError(f"{name} is empty")
    return tuple(items)


# librdkafka settings the exactly-once design relies on: offsets live in Redis, never in Kafka; a range is read
# from an explicit start and must fail rather than silently jump; the end of a partition must be reported.
PROTECTED_KAFKA_KEYS = {
    "enable.auto.commit": "offsets are committed to Redis after the files are published, never to Kafka",
    "enable.auto.offset.store": "offsets are committed to Redis after the files are published, never to Kafka",
    "auto.offset.reset": "a planned start offset that Kafka no longer has must fail the run, not jump silently",
    "enable.partition.eof": "a run learns that a partition's range is complete from the end-of-partition event",
    "group.id": "no consumer group is joined (partitions are assigned); group offsets are never used",
    "group.instance.id": "no consumer group is joined (partitions are assigned)",
    "enable.auto.commit.interval.ms": "offsets are never committed to Kafka",
    "auto.commit.interval.ms": "offsets are never committed to Kafka",
}


def kafka_config(value: Any, name: str) -> SecretMap:
    conf = SecretMap((str(k), v) for k, v in _typed(value, name, dict).items())
    for key in conf:
        if key.strip().lower() in PROTECTED_KAFKA_KEYS:
            raise ConfigError(f"{name} {key!r} cannot be set: {PROTECTED_KAFKA_KEYS[key.strip().lower()]}")
    return conf


def registry_config(value: Any, name: str) -> SecretMap:
    try:
        return SecretMap(check_config(_typed(value, name, dict)))
    except ValueError as e:
        raise ConfigError(f"{name} {e}") from None


def redis_hosts(value: Any, name: str) -> tuple[tuple[str, int | None], ...]:
    """"host:port" or a vector of them; a host without a port gets :port (see _redis)."""
    out = []
    for h in value if isinstance(value, list) else [value]:
        host, _, port = text(h, name).rpartition(":") if ":" in h else (h, "", "")
        if port and not port.isdigit():
            raise ConfigError(f"{name} {h!r}: port {port!r} is not a number")
        out.append((host, int(port)) if port else (h, None))
    return tuple(out)


def host_port(value: Any, name: str) -> tuple[str, int | None]:
    """'host', 'host:port', '[v6]' or '[v6]:port' -> (lower-case host, port or None)."""
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\](?::(\d+))?|([^:\[\]/@]+)(?::(\d+))?", value)
    port = (m.group(2) or m.group(4)) if m else None
    if m is None or (port and not 0 < int(port) < 65536):
        raise ConfigError(f"{name} entry {value!r} is not host, host:port or [ipv6]:port")
    return (m.group(1) or m.group(3)).lower(), int(port) if port else None


def webhook(value: Any, name: str) -> str:
    url = text(value, name).strip()
    if not re.match(r"^https?://[^/\s]+", url):
        raise ConfigError(f"{name} must be an http:// or https:// URL")
    return url


def file_path(value: Any, name: str) -> str:
    path = text(value, name).strip()
    if not path or "\x00" in path:
        raise ConfigError(f"{name} must be a file path")
    return path


def minutes_per_log(value: Any, name: str) -> dict[str, int]:
    return {str(log): integer(1)(n, f"{name} {log!r}") for log, n in _typed(value, name, dict).items()}


def kv_version(value: Any, name: str) -> int:
    if isinstance(value, bool) or value not in (1, 2):
        raise ConfigError(f"{name} must be 1 or 2")
    return value


def gzip_level(value: Any, name: str) -> int:
    """ISA-L has levels 0-3; standard gzip's 4-9 are mapped to ISA-L's best."""
    return min(integer(0)(value, name), 3)


_JDBC_SUBNAME = re.compile(r"^//(?P<hostport>[^/?]+)(?:/(?P<db>[^?;]*))?(?:[?;](?P<params>.*))?$")


def db_url(host: str, user: str | None, pwd: str | None) -> str:
    """:etl-db-host as a SQLAlchemy URL. Accepts the original JDBC subname (//host:3306/db?...), a full
    jdbc:mysql:// URL, or any SQLAlchemy URL (sqlite:///..., mysql+pymysql://...)."""
    if host.startswith("jdbc:mysql:") or host.startswith("jdbc:mariadb:"):
        host = host.split(":", 2)[2]
    m = _JDBC_SUBNAME.match(host)
    if m:
        hostport = m.group("hostport").split(",")[0]  # load-balanced subnames: take the first host
        if "@" in hostport:
            raise ConfigError(":etl-db-host has user-info (user:password@); give them as :etl-db-user/:etl-db-pwd")
        h, _, p = hostport.partition(":")
        if p and not p.isdigit():
            raise ConfigError(f":etl-db-host port {p!r} is not a number")
        return URL.create(
            "mysql+pymysql", username=user, password=pwd, host=h, port=int(p) if p else 3306,
            database=m.group("db") or None,
        ).render_as_string(hide_password=False)
    if "://" not in host:
        raise ConfigError(f":etl-db-host {host!r} is neither a JDBC subname (//host:3306/db) nor a SQLAlchemy URL")
    return host


def _root_finish(fields: dict[str, Any]) -> dict[str, Any]:
    if "basic.auth.user.info" in fields.get("avro_schema_registry_config", {}):  # and user-info in the URL too?
        try:
            check_config(fields["avro_schema_registry_config"],
                         normalize_url(fields.get("avro_schema_registry_url")))
        except ValueError as e:
            raise ConfigError(f":avro-schema-registry-config {e}") from None
        except RegistryUnavailable:
            pass  # an invalid URL fails the runs of avro-txt logs, saying why
    if "etl_db_url" in fields:
        fields["etl_db_url"] = db_url(fields["etl_db_url"], fields.get("etl_db_user"), fields.get("etl_db_pwd"))
    elif "etl_db_user" in fields or "etl_db_pwd" in fields:
        log.info(":etl-db-user/:etl-db-pwd are set but :etl-db-host is not; the embedded SQLite table is used")
    return fields


# -- the table ---------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Section:
    """A map of keys. Its parsed fields make a CLS; without one they go into the parent's field of the map's key
    (:alerts :webhook -> ops.alert_webhook). FINISH adjusts the fields first (keys that depend on each other)."""

    keys: tuple[Key, ...]
    cls: type | None = None
    finish: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    first: tuple[str, ...] = ()  # keys parsed before the others (those that secret references depend on)

    def key(self, name: str) -> Key | None:
        return next((k for k in self.keys if k.name == name), None)


@dataclasses.dataclass(frozen=True)
class Key:
    name: str                         # as written, without the ':' and the map it is in
    field: str | None                 # the settings field it sets (dotted: ops.monitor_port); None: no effect here
    convert: Convert | Section = anything
    default: Any = None               # as written in pseidon.edn; None: unset (`shown` says what applies)
    help: str = ""
    secret: bool = False              # a vault: reference is resolved before the value is converted
    shown: str | None = None          # the README's default column, when `default` cannot say it


def inert(name: str, why: str, convert: Convert = anything) -> Key:
    """A key of the original pseidon-etl that is accepted and has no effect here; WHY is logged when it is set."""
    return Key(name, None, convert, help=why)


def _redis_finish(fields: dict[str, Any]) -> dict[str, Any]:
    port = fields.pop("port", 6379)
    fields["hosts"] = tuple((h, p or port) for h, p in fields.get("hosts", (("127.0.0.1", None),)))
    return fields


def _vault_finish(fields: dict[str, Any]) -> dict[str, Any]:
    mount, kv = fields.get("mount"), fields.get("kv_version", 2)
    if "approle_mount" in fields:
        fields["approle_mount"] = fields["approle_mount"].strip("/")
    prefixes = []
    for p in fields.get("row_prefixes", ()):
        try:
            prefixes.append(parse_reference(f"vault:{p}#k", mount, kv).where)
        except Exception:  # noqa: BLE001 - SecretError, said as a config error
            raise ConfigError(f":vault :row-prefixes entry {p!r} is not a <mount>/<path> Vault path") from None
    fields["row_prefixes"] = tuple(prefixes)
    return fields


def _row_prefixes(value: Any, name: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError(f"{name} must be a vector of Vault paths such as [\"secret/pseidon/hive\"]")
    for v in value:
        if not isinstance(v, str) or not v.strip():
            raise ConfigError(f"{name} entry {v!r} is not a <mount>/<path> Vault path")
    return tuple(v.strip() for v in value)


POOL = "redis-py manages its connection pool"
REDIS = Section((
    Key("host", "hosts", redis_hosts, "127.0.0.1:6379", "`\"host:port\"`, or a vector of them: a Redis Cluster"),
    Key("port", "port", integer(1), 6379, "the port of a `:host` given without one"),
    Key("password", "password", text, help="the password (a Vault reference allowed)", secret=True),
    Key("db", "db", integer(0), 0, "the database number (a Redis Cluster has only 0)"),
    Key("timeout", "timeout_s", integer(1, scale=MS), 5000, "connect and socket timeout, ms"),
    inert("heart-beat", POOL), inert("max-active", POOL), inert("group-name", POOL),
), RedisSettings, _redis_finish)

WRITER = Section((
    Key("rollover-size", "rollover_size", integer(1), 115_000_000,
        "bytes (before compression) after which a file's segment is cut"),
    Key("rollover-timeout", "rollover_timeout_ms", integer(0), 600_000,
        "ms: the longest a log with lag waits for a run (the sensor's max wait; the smaller of the two applies)"),
    Key("rollover-abs-timeout", "rollover_abs_timeout_ms", integer(0), 600_000, "ms: the same bound"),
    Key("max-open-files", "max_open_files", integer(1), 64,
        "hour files a run may have open at once, shared by the plan's partitions; a partition at its share cuts its "
        "segment before a new hour"),
    Key("line-breaks", "line_breaks", choice("quarantine", "escape"), "quarantine",
        "a text line that would hold `\\n`/`\\r` goes to quarantine; `\"escape\"` writes every line with `\\\\`, "
        "`\\n`, `\\r` escaped instead (Hive reads them back with `ESCAPED BY '\\\\'` and "
        "`serialization.escape.crlf`, which `hive create-table` declares)"),
    Key("gzip-level", "gzip_level", gzip_level, 1, "ISA-L level 0–3 (4–9 are mapped to 3); output is standard gzip"),
    Key("zstd-level", "zstd_level", integer(0), 3, "zstd compression level"),
    Key("parquet-codec", "parquet_codec", choice("snappy", "gzip", "zstd", "brotli", "lz4", "none"), "snappy",
        "snappy, gzip, zstd, brotli, lz4, none"),
    Key("parquet-block-size", "parquet_block_size", integer(0), 20_971_520, "bytes of input per Parquet row group"),
    Key("allow-all-ts", "allow_all_ts", boolean, False,
        "accept every 4-digit-year timestamp; otherwise the window of `:ts-window-back-ms`/`:ts-window-ahead-ms` "
        "applies"),
    Key("ts-window-back-ms", "ts_window_back_ms", integer(0), 2_592_000_000,
        "events older than this (30 days) before the plan's creation go to quarantine"),
    Key("ts-window-ahead-ms", "ts_window_ahead_ms", integer(0), 3_600_000,
        "events more than this (1 hour) ahead of the plan's creation go to quarantine"),
    Key("fsync", "fsync", boolean, True,
        "files and their directories are fsynced before the offsets are committed; `false` only for tests (a power "
        "loss could then lose committed data)"),
    inert("codec", "the codec comes from each log's output_format column"),
    inert("check-freq", "files are closed when a run ends or a segment is cut, not by a background check"),
    inert("parallel-files", "each Kafka partition writes its own files; there is nothing to parallelise by hand"),
    inert("write-multiplier", "see :parallel-files"),
    inert("out-buffer-size", "writes are buffered in fixed 1 MiB chunks"),
    inert("use-buffer", "writes are always buffered"),
    inert("flush-on-write", "files are flushed when closed"),
    inert("retries", "a failed run is retried by Dagster and replays its stored plan"),
    inert("retry-sleep", "see :retries"),
    inert("parquet-page-size", "pyarrow chooses page sizes"),
    inert("parquet-enable-dictionary", "pyarrow's dictionary encoding is used"),
    inert("parquet-memory-min-chunk-size", "pyarrow manages its own memory"),
), WriterSettings)

COLUMN = matching(r"[A-Za-z_][A-Za-z0-9_]*", "is not a valid column name")
HIVE = Section((
    Key("date-column", "date_column", COLUMN, "dt", "the date partition column"),
    Key("hour-column", "hour_column", COLUMN, "hr", "the hour partition column"),
    Key("date-value", "date_value", text, "%Y%m%d", "strftime format of the date partition value"),
    Key("hour-value", "hour_value", text, "%Y%m%d%H", "strftime format of the hour partition value"),
    Key("retries", "retries", integer(0), 3, "attempts after a failed registration, with back-off"),
    Key("retry-backoff-ms", "retry_backoff_s", integer(0, scale=MS), 2000, "the first back-off, doubling"),
    Key("allowed-hosts", "allowed_hosts", each(host_port), [],
        "the only HiveServer2 hosts (`host` or `host:port`) a row's `hive_url` may name — see "
        "[Hostile rows](#hostile-rows)", shown="`[]` (any)"),
), HivePartitionSettings)

VAULT = Section((
    Key("addr", "addr", text, help="Vault's address", shown="`$VAULT_ADDR`"),
    Key("token", "token", text, help="a token", shown="`$VAULT_TOKEN`"),
    Key("role-id", "role_id", text, help="AppRole login (with `:secret-id`) instead of a token",
        shown="`$VAULT_ROLE_ID`"),
    Key("secret-id", "secret_id", text, help="the AppRole's secret id", shown="`$VAULT_SECRET_ID`"),
    Key("approle-mount", "approle_mount", text, "approle", "where the AppRole auth method is mounted"),
    Key("mount", "mount", text, help="the KV mount references without one are read from"),
    Key("kv-version", "kv_version", kv_version, 2, "KV secrets engine version, 1 or 2"),
    Key("namespace", "namespace", text, help="Vault Enterprise namespace", shown="`$VAULT_NAMESPACE`"),
    Key("ca-cert", "ca_cert", text, help="CA certificate file of Vault's TLS", shown="`$VAULT_CACERT`"),
    Key("timeout-ms", "timeout_s", integer(0, scale=MS), 10_000, "request timeout"),
    Key("cache-ttl-ms", "cache_ttl_s", integer(0, scale=MS), 300_000,
        "how long a secret read is reused by the process"),
    Key("row-prefixes", "row_prefixes", _row_prefixes, [],
        "Vault paths (`<mount>/<path>`) that `pseidon_logs.hive_password` references may read — see "
        "[Hostile rows](#hostile-rows)", shown="`[]` (rows' references are refused)"),
), VaultConfig, _vault_finish)

METRICS = Section((
    Key("redis", "metrics_redis", REDIS, help="where runs write their counters and `/metrics` reads them: the keys "
        "of `:redis-conf`", shown="the `:redis-conf` Redis"),
))
ALERTS = Section((
    Key("webhook", "alert_webhook", webhook, help="every failed run is POSTed there as JSON (a Vault reference "
        "allowed)", secret=True),
    Key("timeout-ms", "alert_timeout_s", integer(1, scale=MS), 5000, "the webhook's timeout"),
))
FRESHNESS = Section((
    Key("default-minutes", "freshness_default_minutes", integer(1), 120,
        "a log that lands no data for this long is stale"),
    Key("logs", "freshness_minutes", minutes_per_log, {}, "per log: `{\"clicks\" 30}`"),
))

KEYS = (
    Key("etl-db-host", "etl_db_url", text, "sqlite:///var/pseidon.db",
        "the `pseidon_logs` database: the original JDBC subname `//host:3306/db?...` (MySQL/MariaDB via PyMySQL, "
        "with `:etl-db-user`/`:etl-db-pwd`), `jdbc:mysql://...`, or any SQLAlchemy URL"),
    Key("etl-db-user", "etl_db_user", text, help="the database user of the subname form"),
    Key("etl-db-pwd", "etl_db_pwd", text, help="its password (a Vault reference allowed)", secret=True),
    Key("etl-group", "etl_group", matching(r"[A-Za-z0-9._-]+", "may only hold letters, digits, '.', '_' and '-'"),
        "etl", "rows with `log_group = :etl-group` and `enabled = 1` are ingested; also the Redis key prefix"),
    Key("kafka-brokers", "kafka_brokers", brokers, "127.0.0.1:9092",
        "`[{:host \"h\" :port 9092} ...]` or `\"h1:9092,h2:9092\"`"),
    Key("kafka-use-earliest", "kafka_use_earliest", boolean, False,
        "a log with no offsets and no files in the lake starts at the low watermark (true) or the high watermark "
        "(false)"),
    Key("kafka-config", "kafka_config", kafka_config, {},
        "extra librdkafka settings (SASL, TLS, ...); `enable.auto.commit`, `enable.auto.offset.store`, "
        "`auto.offset.reset`, `enable.partition.eof`, `group.id`, `group.instance.id` are refused (exactly-once "
        "relies on them)"),
    Key("kafka-timeout-ms", "kafka_timeout_s", integer(1, scale=MS), 10_000,
        "metadata/watermark timeouts, and how long a read may see no data before failing"),
    Key("kafka-batch-size", "kafka_batch_size", integer(1), 10_000, "messages per `consume()` call"),
    Key("max-offsets-per-partition", "max_offsets_per_partition", integer(1), 5_000_000,
        "cap of one run's range per Kafka partition"),
    Key("redis-conf", "redis", REDIS, help="the Redis of offsets, plans and leases",
        shown="`{:host \"127.0.0.1:6379\"}`"),
    Key("data-dir", "data_dir", root, "var/data",
        "relative `base_partition` and `quarantine` paths are resolved under it; the default quarantine is "
        "`<data-dir>/quarantine`"),
    Key("allowed-roots", "allowed_roots", each(root), [],
        "further roots (local paths or filesystem URIs such as `\"hdfs://nn:8020/log\"`, `\"s3://bucket/lake\"`) "
        "that `pseidon_logs` paths may lead into — see [Hostile rows](#hostile-rows)", shown="`[]` (only `:data-dir`)"),
    Key("writer", "writer", WRITER, help="how files are cut and which event times are accepted", shown="as below"),
    Key("hive", "hive", HIVE, help="Hive partition registration — [docs/hive-vault.md](docs/hive-vault.md)",
        shown="as below"),
    Key("retention-hours", "retention_hours", integer(1), help="hours of data each log keeps: older event hours are "
        "dropped from Hive, then from the lake, by `retention_schedule` (a `retention_hours` column of `pseidon_logs` "
        "overrides it per log)", shown="unset: all"),
    Key("quarantine-retention-hours", "quarantine_retention_hours", integer(1), help="hours of quarantine files "
        "each log keeps (a `quarantine_retention_hours` column overrides it per log)", shown="unset: all"),
    Key("avro-schema-registry-url", "avro_schema_registry_url", text, "http://localhost:8081",
        "the Confluent Schema Registry of `avro-txt` logs; `user:password@` in it is sent as basic auth"),
    Key("avro-schema-registry-config", "avro_schema_registry_config", registry_config, {},
        "settings of the registry client: `basic.auth.user.info` (`\"user:password\"`), `ssl.ca.location`, "
        "`ssl.certificate.location`, `ssl.key.location`, `ssl.key.password`, `proxy` — see "
        "[docs/formats.md](docs/formats.md#the-schema-registry)"),
    Key("schema-dir", "schema_dir", text, "conf/schemas", "Parquet schemas `<log>.json` for logs without a Hive table"),
    Key("vault", "vault", VAULT, help="Vault address and auth for `vault:` references; an unset key comes from the "
        "environment — [docs/hive-vault.md](docs/hive-vault.md)", shown="as below"),
    Key("sensor-min-lag", "sensor_min_lag", integer(1), help="a log with at least this many messages waiting gets a "
        "run at the next tick (the demo sets 1); unset: timed batches, by bytes and by time", shown="unset"),
    Key("sensor-min-bytes", "sensor_min_bytes", integer(1), help="a log whose waiting messages in one Kafka "
        "partition make about this many bytes (at the size of its last run's messages) gets a run at the next tick",
        shown="`:writer :rollover-size`"),
    Key("sensor-max-wait-ms", "sensor_max_wait_ms", integer(0), help="a log with any smaller lag gets a run after "
        "waiting this long", shown="the rollover timeout"),
    Key("sensor-retry-backoff-ms", "sensor_retry_backoff_ms", integer(0), 60_000,
        "a run the sensor requested that failed is requested again after this long (doubling, up to 16×)"),
    Key("lease-ttl-ms", "lease_ttl_s", integer(1000, scale=MS), 30_000,
        "the run lease's time to live; a crashed run's lease lapses within it; a run waits for a held lease up to it "
        "plus a margin (≤ 10 s)"),
    Key("backfill-lateness-ms", "backfill_lateness_ms", integer(0), 3_600_000,
        "how far outside a backfill's window Kafka's time index is searched for the window's messages"),
    Key("ingest-workers", "ingest_workers", integer(1), 1,
        "worker processes of one run (each Kafka partition's range in one worker)"),
    Key("metrics", "ops", METRICS, help="`{:redis {...}}` — see [Operations](#operations)", shown="as below"),
    Key("monitor-port", "ops.monitor_port", integer(0, 65535), 8282,
        "port of `pseidon-dagster metrics-server` (bound to 127.0.0.1 unless `--host`)"),
    Key("fatal-errors-file", "ops.fatal_errors_file", file_path, "/tmp/fatalerrors",
        "unrecoverable errors of runs are appended here (created 0600, never through a symlink)"),
    Key("alerts", "ops", ALERTS, help="alerts on failed runs", shown="as below"),
    Key("freshness", "ops", FRESHNESS, help="when a log is stale", shown="as below"),
    Key("strict", "strict", boolean, False, "unknown keys are an error instead of a warning (also `--strict`)"),
    inert("consume-step", "work units are not used: a run plans [start, end) per Kafka partition"),
    inert("kafka-msg-ch-buffer-size",
          "there is no internal channel: messages are consumed in batches of :kafka-batch-size"),
    inert("pool", "there is no internal thread pool; Dagster's executor and run queue schedule work"),
    inert("etl-threads", "one run processes one log; run several logs at once through Dagster's run queue"),
    inert("io-threads", "confluent-kafka (librdkafka) manages its own I/O threads"),
    inert("repl-port", "no nREPL is opened (the original's was an unauthenticated remote shell)"),
    inert("repl-host", "no nREPL is opened"),
    inert("topic-refresh-freq-ms", "pseidon_logs is re-read on every sensor tick and every run"),
    inert("work-calculate-freq", "work is planned once per run"),
    inert("etl-error-threshold",
          "bad messages go to quarantine and never fail a batch, so there is nothing to count up"),
    inert("plugins", "the plugin pipeline is replaced by Dagster assets downstream of the files asset"),
    inert("jaas", "use :kafka-config with librdkafka's sasl.* settings instead"),
    inert("avro-schema-registry-max-schemas", "every schema id seen is cached", integer(1)),
)
ROOT = Section(KEYS, Settings, _root_finish, first=("vault",))

# Names kept for callers: the top-level keys without effect (with why), and the operations keys.
KEYS_WITHOUT_EFFECT = {k.name: k.help for k in KEYS if k.field is None}
OPS_KEYS = tuple(k.name for k in KEYS if k.field and k.field.split(".")[0] == "ops")


def walk(section: Section = ROOT, prefix: str = "", path: str = "",
         seen: set | None = None) -> Iterator[tuple[str, str | None, Key]]:
    """Every key: (its name as the README writes it, e.g. ':writer :rollover-size'; its settings path, e.g.
    'writer.rollover_size', or None; the key). A map met again (:metrics :redis, a :redis-conf) is not repeated."""
    seen = set() if seen is None else seen
    seen.add(id(section))
    for key in section.keys:
        name = f"{prefix} :{key.name}".strip()
        field = None if key.field is None else f"{path}.{key.field}".strip(".")
        yield name, field, key
        if isinstance(key.convert, Section) and id(key.convert) not in seen:
            yield from walk(key.convert, name, field or "", seen)


# -- parsing -----------------------------------------------------------------------------------------------------

class _FromVault:
    """resolve_secret for load(): a resolver made from the file's own :vault."""


_VAULT = _FromVault()


@dataclasses.dataclass
class _Parse:
    resolve: Callable[[str], str] | _FromVault
    vault: VaultConfig | None = None
    unknown: list[str] = dataclasses.field(default_factory=list)

    def secret(self, value: str) -> str:
        if isinstance(self.resolve, _FromVault):
            if not is_reference(value):
                return value
            self.resolve = resolver_for(self.vault)
        return self.resolve(value)

    def section(self, section: Section, raw: Any, where: str) -> Any:
        if where:
            _typed(raw, where, dict)
        fields: dict[str, Any] = {}
        for name in sorted(raw, key=lambda n: n not in section.first):
            value, key, shown = raw[name], section.key(name), f"{where} :{name}".strip()
            if key is None:
                self.unknown.append(shown + _hint(section, str(name), where))
                continue
            if isinstance(key.convert, Section):
                sub = self.section(key.convert, value, shown)
                if key.convert.cls is None:
                    fields.update({f"{key.field}.{k}": v for k, v in sub.items()})
                    continue
                value = sub
            else:
                if key.secret and isinstance(value, str):
                    value = self.secret(value)
                value = key.convert(value, shown)
            if key.field is None:
                log.info("%s has no effect here: %s", shown, key.help)
                continue
            fields[key.field] = value
            if isinstance(value, VaultConfig):
                self.vault = value  # parsed first: what the secret references of the other keys are read with
        if section.finish:
            fields = section.finish(fields)
        return _make(section.cls, fields) if section.cls else fields


def _hint(section: Section, name: str, where: str) -> str:
    near = difflib.get_close_matches(name, [k.name for k in section.keys], 1, 0.75)
    if near:
        return f" (did you mean {f'{where} :{near[0]}'.strip()}?)"
    return " (per-topic overrides are not supported)" if "." in name else ""


def _make(cls: type, fields: dict[str, Any]) -> Any:
    """CLS from FIELDS, where dotted fields (ops.monitor_port) set a field of a nested settings object."""
    flat: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for name, value in fields.items():
        head, dot, rest = name.partition(".")
        if dot:
            nested.setdefault(head, {})[rest] = value
        else:
            flat[name] = value
    default = cls()
    for head, sub in nested.items():
        flat[head] = dataclasses.replace(getattr(default, head), **sub)
    return cls(**flat)


def from_mapping(raw: dict[str, Any], source: str | None = None,
                 resolve_secret: Callable[[str], str] | _FromVault | None = None, strict: bool = False) -> Settings:
    """Settings from a plain mapping with the EDN key names (without the leading ':'). RESOLVE_SECRET turns vault:
    references into values (default: kept as they are). Unknown keys are warned about, or with STRICT (or
    `:strict true`) refused."""
    where = source or "config"
    parse = _Parse(resolve_secret or (lambda v: v))
    settings = dataclasses.replace(parse.section(ROOT, raw, ""), source=source)
    if parse.unknown and (strict or settings.strict):
        raise ConfigError(f"{where}: " + "; ".join(f"unknown key {u}" for u in parse.unknown)
                          + " (unknown keys are errors with --strict or :strict true)")
    for u in parse.unknown:
        name, _, hint = u.partition(" (")
        log.warning("unknown key %s in %s is ignored%s", name, where, f" ({hint}" if hint else "")
    return settings


def load(path: str | os.PathLike | None = None, resolve_secret: Callable[[str], str] | None = None,
         strict: bool = False) -> Settings:
    """Load pseidon.edn from PATH, else $PSEIDON_CONF, else /opt/pseidon-etl/conf/pseidon.edn. vault: references
    are resolved through the file's :vault (and the environment) unless RESOLVE_SECRET says otherwise."""
    chosen = path or os.environ.get("PSEIDON_CONF") or DEFAULT_CONFIG_PATH
    p = Path(chosen)
    if not p.is_file():
        raise ConfigError(f"config file {str(p)!r} not found (use --config PATH or $PSEIDON_CONF)")
    try:
        raw = edn.loads(p.read_text())
    except edn.EDNError as e:
        raise ConfigError(f"{p}: not valid EDN: {e}") from e
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: the top level must be a map {{:key value ...}}")
    return from_mapping(raw, source=str(p), resolve_secret=resolve_secret or _VAULT, strict=strict)


# -- documentation -----------------------------------------------------------------------------------------------

def _edn(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + " ".join(map(_edn, value)) + "]"
    if isinstance(value, dict):
        return "{" + " ".join(f"{_edn(k)} {_edn(v)}" for k, v in value.items()) + "}"
    return str(value)


def markdown() -> str:
    """The README's configuration table: one row per key that has an effect."""
    rows = ["| key | default | meaning |", "|---|---|---|"]
    for name, _, key in walk():
        if key.field is not None:
            default = key.shown or ("–" if key.default is None else f"`{_edn(key.default)}`")
            rows.append(f"| `{name}` | {default} | {key.help} |")
    return "\n".join(rows) + "\n"


def markdown_inert() -> str:
    """The README's sentence listing the keys of the original that are accepted without effect."""
    names = sorted((name for name, _, key in walk() if key.field is None), key=lambda n: n.count(" "))
    return "Accepted but without effect here (each logs why): " + ", ".join(f"`{n}`" for n in names) + "."
