"""pseidon.edn: load, validate and turn into typed settings.

Every key the original README documents is either used or accepted with a logged note that says why it has no
effect here (see KEYS_WITHOUT_EFFECT). Unknown keys are warned about by name; wrong types raise ConfigError naming
the key.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import re
from pathlib import Path
from typing import Any, Callable

import edn_format

from . import paths
from .secrets import SecretMap

log = logging.getLogger(__name__)
logging.getLogger("edn_format").setLevel(logging.WARNING)  # its lexer logs every grammar rule at INFO

DEFAULT_CONFIG_PATH = "/opt/pseidon-etl/conf/pseidon.edn"


class ConfigError(ValueError):
    """A pseidon.edn problem; the message names the key."""


# Keys of the original that have no meaning in a micro-batch run, with the reason logged when they are set.
KEYS_WITHOUT_EFFECT = {
    "consume-step": "work units are not used: a run plans [start, end) per Kafka partition",
    "kafka-msg-ch-buffer-size": "there is no internal channel: messages are consumed in batches of :kafka-batch-size",
    "pool": "there is no internal thread pool; Dagster's executor and run queue schedule work",
    "etl-threads": "one run processes one log; run several logs at once through Dagster's run queue",
    "io-threads": "confluent-kafka (librdkafka) manages its own I/O threads",
    "repl-port": "no nREPL is opened (the original's was an unauthenticated remote shell)",
    "repl-host": "no nREPL is opened",
    "topic-refresh-freq-ms": "pseidon_logs is re-read on every sensor tick and every run",
    "work-calculate-freq": "work is planned once per run",
    "etl-error-threshold": "bad messages go to quarantine and never fail a batch, so there is nothing to count up",
    "plugins": "the plugin pipeline is replaced by Dagster assets downstream of the files asset",
    "jaas": "use :kafka-config with librdkafka's sasl.* settings instead",
}
WRITER_KEYS_WITHOUT_EFFECT = {
    "check-freq": "files are closed when a run ends or a segment is cut, not by a background check",
    "parallel-files": "each Kafka partition writes its own files; there is nothing to parallelise by hand",
    "write-multiplier": "see :parallel-files",
    "out-buffer-size": "writes are buffered in fixed 1 MiB chunks",
    "use-buffer": "writes are always buffered",
    "flush-on-write": "files are flushed when closed",
    "retries": "a failed run is retried by Dagster and replays its stored plan",
    "retry-sleep": "see :retries",
    "codec": "the codec comes from each log's output_format column",
    "parquet-page-size": "pyarrow chooses page sizes",
    "parquet-enable-dictionary": "pyarrow's dictionary encoding is used",
    "parquet-memory-min-chunk-size": "pyarrow manages its own memory",
}


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
    schema_dir: str = "conf/schemas"
    vault: dict[str, Any] = dataclasses.field(default_factory=SecretMap)  # repr masks :token, :secret-id, :role-id
    sensor_min_lag: int = 1
    sensor_max_wait_ms: int | None = None
    sensor_retry_backoff_ms: int = 60_000
    lease_ttl_s: float = 30.0
    backfill_lateness_ms: int = 3_600_000
    ingest_workers: int = 1
    ops: OpsSettings = OpsSettings()  # :metrics, :monitor-port, :fatal-errors-file, :alerts, :freshness
    source: str | None = None

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


# ---------------------------------------------------------------------------------------------------------------
# parsing helpers


def _plain(value: Any) -> Any:
    """EDN values to plain Python: keywords to their name, immutable maps/vectors to dict/list."""
    if isinstance(value, edn_format.Keyword):
        return value.name
    if isinstance(value, dict) or hasattr(value, "items"):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)) or (
            hasattr(value, "__iter__") and not isinstance(value, (str, bytes))):
        return [_plain(v) for v in value]
    return value


def _typed(key: str, kind: type | tuple[type, ...], value: Any) -> Any:
    if isinstance(value, bool) and kind in (int, float):
        raise ConfigError(f":{key} must be a {kind.__name__}, got {value!r}")
    if not isinstance(value, kind):
        want = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ConfigError(f":{key} must be a {want}, got {type(value).__name__} {value!r}")
    return value


def _int(key: str, value: Any, minimum: int | None = 0) -> int:
    _typed(key, int, value)
    if minimum is not None and value < minimum:
        raise ConfigError(f":{key} must be >= {minimum}, got {value}")
    return value


def _bool(key: str, value: Any) -> bool:
    return _typed(key, bool, value)


def _str(key: str, value: Any) -> str:
    return _typed(key, str, value)


_JDBC_SUBNAME = re.compile(r"^//(?P<hostport>[^/?]+)(?:/(?P<db>[^?;]*))?(?:[?;](?P<params>.*))?$")


def db_url(host: str, user: str | None, pwd: str | None) -> str:
    """:etl-db-host as a SQLAlchemy URL. Accepts the original JDBC subname (//host:3306/db?...), a full
    jdbc:mysql:// URL, or any SQLAlchemy URL (sqlite:///..., mysql+pymysql://...)."""
    from sqlalchemy.engine import URL

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


def _brokers(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",") if v.strip()]
    elif isinstance(value, list):
        items = []
        for i, b in enumerate(value):
            if isinstance(b, dict):
                if "host" not in b:
                    raise ConfigError(f":kafka-brokers entry {i} has no :host")
                items.append(f"{b['host']}:{_int('kafka-brokers port', b.get('port', 9092), 1)}")
            elif isinstance(b, str):
                items.append(b)
            else:
                raise ConfigError(f":kafka-brokers entry {i} must be {{:host .. :port ..}} or \"host:port\"")
    else:
        raise ConfigError(":kafka-brokers must be a vector of {:host .. :port ..} maps or a \"host:port,...\" string")
    if not items:
        raise ConfigError(":kafka-brokers is empty")
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


def _guard_kafka_config(conf: dict[str, Any]) -> None:
    for key in conf:
        if key.strip().lower() in PROTECTED_KAFKA_KEYS:
            raise ConfigError(f":kafka-config {key!r} cannot be set: {PROTECTED_KAFKA_KEYS[key.strip().lower()]}")


def _redis(value: Any) -> RedisSettings:
    _typed("redis-conf", dict, value)
    known = {"host", "port", "password", "db", "timeout", "heart-beat", "max-active", "group-name"}
    for k in value:
        if k not in known:
            log.warning("unknown key :redis-conf :%s is ignored", k)
        elif k in ("heart-beat", "max-active", "group-name"):
            log.info(":redis-conf :%s has no effect here (redis-py manages its connection pool)", k)
    raw_hosts = value.get("host", "127.0.0.1:6379")
    raw_hosts = raw_hosts if isinstance(raw_hosts, list) else [raw_hosts]
    default_port = _int("redis-conf :port", value.get("port", 6379), 1)
    hosts = []
    for h in raw_hosts:
        _str("redis-conf :host", h)
        name, _, port = h.rpartition(":") if ":" in h else (h, "", "")
        hosts.append((name, int(port)) if port else (h, default_port))
    timeout = value.get("timeout", 5000)
    return RedisSettings(
        hosts=tuple(hosts),
        password=_str("redis-conf :password", value["password"]) if value.get("password") is not None else None,
        db=_int("redis-conf :db", value.get("db", 0)),
        timeout_s=_int("redis-conf :timeout", timeout, 1) / 1000.0,
    )


def _writer(value: Any) -> WriterSettings:
    _typed("writer", dict, value)
    d = WriterSettings()
    ints = {
        "rollover-size": "rollover_size", "rollover-timeout": "rollover_timeout_ms",
        "rollover-abs-timeout": "rollover_abs_timeout_ms", "gzip-level": "gzip_level", "zstd-level": "zstd_level",
        "max-open-files": "max_open_files", "parquet-block-size": "parquet_block_size",
        "ts-window-back-ms": "ts_window_back_ms", "ts-window-ahead-ms": "ts_window_ahead_ms",
    }
    out: dict[str, Any] = {}
    for k, v in value.items():
        if k in ints:
            out[ints[k]] = _int(f"writer :{k}", v, 1 if k in ("rollover-size", "max-open-files") else 0)
        elif k == "allow-all-ts":
            out["allow_all_ts"] = _bool("writer :allow-all-ts", v)
        elif k == "fsync":
            out["fsync"] = _bool("writer :fsync", v)
        elif k == "line-breaks":
            policy = _str("writer :line-breaks", v).lower()
            if policy not in ("quarantine", "escape"):
                raise ConfigError(f":writer :line-breaks {v!r} is not one of quarantine, escape")
            out["line_breaks"] = policy
        elif k == "parquet-codec":
            codec = _str("writer :parquet-codec", v).lower()
            if codec not in ("snappy", "gzip", "zstd", "none", "brotli", "lz4"):
                raise ConfigError(f":writer :parquet-codec {v!r} is not one of snappy, gzip, zstd, brotli, lz4, none")
            out["parquet_codec"] = codec
        elif k in WRITER_KEYS_WITHOUT_EFFECT:
            log.info(":writer :%s has no effect here: %s", k, WRITER_KEYS_WITHOUT_EFFECT[k])
        elif "." in k:
            log.warning(":writer :%s (per-topic writer override) is not supported and is ignored", k)
        else:
            log.warning("unknown key :writer :%s is ignored", k)
    if "gzip_level" in out and out["gzip_level"] > 3:
        # ISA-L has levels 0-3; keep standard-gzip semantics by mapping 4-9 to ISA-L's best.
        out["gzip_level"] = 3
    return dataclasses.replace(d, **out)


def _hive(value: Any) -> HivePartitionSettings:
    _typed("hive", dict, value)
    names = {"date-column": "date_column", "hour-column": "hour_column", "date-value": "date_value",
             "hour-value": "hour_value"}
    out: dict[str, Any] = {}
    for k, v in value.items():
        if k in names:
            out[names[k]] = _str(f"hive :{k}", v)
        elif k == "retries":
            out["retries"] = _int("hive :retries", v)
        elif k == "retry-backoff-ms":
            out["retry_backoff_s"] = _int("hive :retry-backoff-ms", v) / 1000.0
        elif k == "allowed-hosts":
            out["allowed_hosts"] = tuple(_host_port(h) for h in _strings("hive :allowed-hosts", v))
        else:
            log.warning("unknown key :hive :%s is ignored", k)
    for col in ("date_column", "hour_column"):
        if col in out and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", out[col]):
            raise ConfigError(f":hive :{col.replace('_', '-')} {out[col]!r} is not a valid column name")
    return dataclasses.replace(HivePartitionSettings(), **out)


def _strings(key: str, value: Any) -> list[str]:
    """A vector of non-empty strings."""
    if not isinstance(value, list):
        raise ConfigError(f":{key} must be a vector of strings, got {type(value).__name__}")
    for v in value:
        if not isinstance(v, str) or not v.strip():
            raise ConfigError(f":{key} entries must be non-empty strings, got {v!r}")
    return [v.strip() for v in value]


def _host_port(text: str) -> tuple[str, int | None]:
    """'host', 'host:port', '[v6]' or '[v6]:port' -> (lower-case host, port or None)."""
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\](?::(\d+))?|([^:\[\]/@]+)(?::(\d+))?", text)
    port = (m.group(2) or m.group(4)) if m else None
    if m is None or (port and not 0 < int(port) < 65536):
        raise ConfigError(f":hive :allowed-hosts entry {text!r} is not host, host:port or [ipv6]:port")
    return (m.group(1) or m.group(3)).lower(), int(port) if port else None


def _root(key: str, value: str) -> str:
    try:
        paths.place(value, real=False)
    except ValueError as e:
        raise ConfigError(f":{key} {paths.redact_url(value)!r} {e}") from None
    return value


# ---------------------------------------------------------------------------------------------------------------
# operations keys: :metrics, :monitor-port, :fatal-errors-file, :alerts, :freshness

OPS_KEYS = ("metrics", "monitor-port", "fatal-errors-file", "alerts", "freshness")


def _ops(raw: dict[str, Any], secret: Callable[[str], str]) -> OpsSettings:
    out: dict[str, Any] = {}
    if "metrics" in raw:
        m = _typed("metrics", dict, raw["metrics"])
        for k in m:
            if k != "redis":
                log.warning("unknown key :metrics :%s is ignored", k)
        if m.get("redis") is not None:
            try:
                rs = _redis(m["redis"])
            except ConfigError as e:
                raise ConfigError(str(e).replace(":redis-conf", ":metrics :redis")) from None
            if rs.password:
                rs = dataclasses.replace(rs, password=secret(rs.password))
            out["metrics_redis"] = rs
    if "monitor-port" in raw:
        port = _int("monitor-port", raw["monitor-port"], 0)
        if port > 65535:
            raise ConfigError(f":monitor-port must be <= 65535, got {port}")
        out["monitor_port"] = port
    if "fatal-errors-file" in raw:
        path = _str("fatal-errors-file", raw["fatal-errors-file"]).strip()
        if not path or "\x00" in path:
            raise ConfigError(":fatal-errors-file must be a file path")
        out["fatal_errors_file"] = path
    if "alerts" in raw:
        a = _typed("alerts", dict, raw["alerts"])
        for k, v in a.items():
            if k == "webhook":
                url = secret(_str("alerts :webhook", v)).strip()
                if not re.match(r"^https?://[^/\s]+", url):
                    raise ConfigError(":alerts :webhook must be an http:// or https:// URL")
                out["alert_webhook"] = url
            elif k == "timeout-ms":
                out["alert_timeout_s"] = _int("alerts :timeout-ms", v, 1) / 1000.0
            else:
                log.warning("unknown key :alerts :%s is ignored", k)
    if "freshness" in raw:
        f = _typed("freshness", dict, raw["freshness"])
        for k, v in f.items():
            if k == "default-minutes":
                out["freshness_default_minutes"] = _int("freshness :default-minutes", v, 1)
            elif k == "logs":
                per = _typed("freshness :logs", dict, v)
                out["freshness_minutes"] = {str(name): _int(f"freshness :logs {name!r}", n, 1)
                                            for name, n in per.items()}
            else:
                log.warning("unknown key :freshness :%s is ignored", k)
    return OpsSettings(**out)


def from_mapping(raw: dict[str, Any], source: str | None = None,
                 resolve_secret: Callable[[str], str] | None = None) -> Settings:
    """Build Settings from a plain mapping with the EDN key names (without the leading ':')."""
    secret = resolve_secret or (lambda v: v)
    out: dict[str, Any] = {"source": source}
    user = raw.get("etl-db-user")
    pwd = raw.get("etl-db-pwd")
    if user is not None:
        out["etl_db_user"] = _str("etl-db-user", user)
    if pwd is not None:
        out["etl_db_pwd"] = secret(_str("etl-db-pwd", pwd))
    handled = {"etl-db-user", "etl-db-pwd"}
    ops: dict[str, Any] = {}
    for key, value in raw.items():
        if key in handled:
            continue
        if key == "etl-db-host":
            out["etl_db_url"] = db_url(_str(key, value), out.get("etl_db_user"), out.get("etl_db_pwd"))
        elif key == "etl-group":
            out["etl_group"] = _str(key, value)
            if not re.fullmatch(r"[A-Za-z0-9._-]+", value):
                raise ConfigError(f":etl-group {value!r} may only hold letters, digits, '.', '_' and '-'")
        elif key == "kafka-brokers":
            out["kafka_brokers"] = _brokers(value)
        elif key == "kafka-use-earliest":
            out["kafka_use_earliest"] = _bool(key, value)
        elif key == "kafka-config":
            out["kafka_config"] = SecretMap((str(k), v) for k, v in _typed(key, dict, value).items())
            _guard_kafka_config(out["kafka_config"])
        elif key == "kafka-timeout-ms":
            out["kafka_timeout_s"] = _int(key, value, 1) / 1000.0
        elif key == "kafka-batch-size":
            out["kafka_batch_size"] = _int(key, value, 1)
        elif key == "max-offsets-per-partition":
            out["max_offsets_per_partition"] = _int(key, value, 1)
        elif key == "redis-conf":
            rs = _redis(value)
            if rs.password:
                rs = dataclasses.replace(rs, password=secret(rs.password))
            out["redis"] = rs
        elif key == "data-dir":
            out["data_dir"] = _root(key, _str(key, value))
        elif key == "allowed-roots":
            out["allowed_roots"] = tuple(_root("allowed-roots", v) for v in _strings(key, value))
        elif key == "writer":
            out["writer"] = _writer(value)
        elif key == "hive":
            out["hive"] = _hive(value)
        elif key == "avro-schema-registry-url":
            out["avro_schema_registry_url"] = _str(key, value)
        elif key == "avro-schema-registry-max-schemas":
            _int(key, value, 1)
            log.info(":%s has no effect here: every schema id seen is cached", key)
        elif key == "schema-dir":
            out["schema_dir"] = _str(key, value)
        elif key == "vault":
            out["vault"] = SecretMap(_typed(key, dict, value))
        elif key == "sensor-min-lag":
            out["sensor_min_lag"] = _int(key, value, 1)
        elif key == "sensor-max-wait-ms":
            out["sensor_max_wait_ms"] = _int(key, value, 0)
        elif key == "sensor-retry-backoff-ms":
            out["sensor_retry_backoff_ms"] = _int(key, value, 0)
        elif key == "lease-ttl-ms":
            out["lease_ttl_s"] = _int(key, value, 1000) / 1000.0
        elif key == "ingest-workers":
            out["ingest_workers"] = _int(key, value, 1)
        elif key == "backfill-lateness-ms":
            out["backfill_lateness_ms"] = _int(key, value, 0)
        elif key in OPS_KEYS:
            ops[key] = value
        elif key in KEYS_WITHOUT_EFFECT:
            log.info(":%s has no effect here: %s", key, KEYS_WITHOUT_EFFECT[key])
        else:
            log.warning("unknown key :%s in %s is ignored", key, source or "config")
    if ops:
        out["ops"] = _ops(ops, secret)
    if "etl_db_url" not in out and (user or pwd):
        log.info(":etl-db-user/:etl-db-pwd are set but :etl-db-host is not; the embedded SQLite table is used")
    return Settings(**out)


def load(path: str | os.PathLike | None = None, resolve_secret: Callable[[str], str] | None = None) -> Settings:
    """Load pseidon.edn from PATH, else $PSEIDON_CONF, else /opt/pseidon-etl/conf/pseidon.edn."""
    chosen = path or os.environ.get("PSEIDON_CONF") or DEFAULT_CONFIG_PATH
    p = Path(chosen)
    if not p.is_file():
        raise ConfigError(f"config file {str(p)!r} not found (use --config PATH or $PSEIDON_CONF)")
    try:
        parsed = edn_format.loads(p.read_text())
    except Exception as e:  # edn_format raises several exception types
        raise ConfigError(f"{p}: not valid EDN: {e}") from e
    raw = _plain(parsed)
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: the top level must be a map {{:key value ...}}")
    if resolve_secret is None:
        from .secrets import resolver_for

        resolve_secret = resolver_for(raw.get("vault"))
    return from_mapping(raw, source=str(p), resolve_secret=resolve_secret)
