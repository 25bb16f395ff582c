"""What went wrong, in one line for the person at the terminal: the server and the pseidon.edn key that names it
(`Redis at 127.0.0.1:6390 (:redis-conf) refused the connection`), and the command that fixes a missing table,
database or topic. The CLI prints it; with -v the traceback instead.

librdkafka logs every failed connection attempt on stderr by itself (dozens of lines while Kafka is down);
`quiet_kafka` sends those lines to a Python logger that is shown only with -v.
"""
from __future__ import annotations

import dataclasses
import logging
import re

import redis
import sqlalchemy as sa

from .config import ConfigError, Settings
from .kafka import KafkaUnavailable, TopicNotFound
from .logtable import LogTableUnavailable, NoLogTable
from .secrets import SecretMap

LIBRDKAFKA = logging.getLogger("pseidon_dagster.librdkafka")

# Errors whose message says it all; anything else is shown with its type.
_PLAIN = ("ConfigError", "LogConfigError", "SecretError", "CatalogError", "OffsetError", "LockedError", "LookupError",
          "IngestError", "RebuildError", "DescriptorError", "OutputFormatError", "ReadStalled", "LeaseLost")


def quiet_kafka(settings: Settings, verbose: bool) -> Settings:
    """SETTINGS whose Kafka clients log through LIBRDKAFKA (at DEBUG with VERBOSE, else nothing) instead of
    writing to stderr themselves."""
    LIBRDKAFKA.setLevel(logging.DEBUG if verbose else logging.CRITICAL + 1)
    return dataclasses.replace(settings, kafka_config=SecretMap({**settings.kafka_config, "logger": LIBRDKAFKA}))


def explain(e: BaseException, settings: Settings | None = None, config: str | None = None) -> str:
    """E as one line: where (server and config key) and what to do, when it is a known kind of failure."""
    conf = f" --config {config}" if config else ""
    if isinstance(e, TopicNotFound) and settings is not None:
        topic = re.search(r"topic ('[^']*')", str(e))
        name = topic.group(1).strip("'") if topic else "<topic>"
        return (f"{e} (:kafka-brokers): create it (kafka-topics.sh --bootstrap-server {settings.bootstrap_servers} "
                f"--create --topic {name} --partitions N), or stop ingesting it: pseidon-dagster logs disable "
                f"{name}{conf}")
    if isinstance(e, KafkaUnavailable) and settings is not None:
        text = re.sub(r'KafkaError\{code=\w+,val=-?\d+,str="(.*?)"\}', r"\1", str(e))
        return text.replace(f"Kafka at {settings.bootstrap_servers}",
                            f"Kafka at {settings.bootstrap_servers} (:kafka-brokers)", 1)
    if isinstance(e, NoLogTable):
        return f"the pseidon_logs table does not exist in {e.url} (:etl-db-host): create it with: " \
               f"pseidon-dagster logs init{conf}"
    if isinstance(e, LogTableUnavailable) and settings is not None:
        return _log_table(e, settings, conf)
    if isinstance(e, (redis.ConnectionError, redis.TimeoutError, redis.AuthenticationError)):
        return _redis(e, settings)
    if isinstance(e, sa.exc.OperationalError) and settings is not None:  # outside the table's own calls
        return _log_table(e, settings, conf)
    text = " ".join(str(e).split())
    return text if type(e).__name__ in _PLAIN or isinstance(e, ConfigError) else f"{type(e).__name__}: {text}"


def _redis(e: BaseException, settings: Settings | None) -> str:
    import redis

    m = re.search(r"(?:connecting to|Redis at) \[?([^\s\]]+?)\]?:(\d+)", str(e))
    where = (m.group(1), int(m.group(2))) if m else (settings.redis.hosts[0] if settings else ("?", 0))
    key = ":redis-conf"
    if settings is not None and settings.ops.metrics_redis and where in settings.ops.metrics_redis.hosts \
            and where not in settings.redis.hosts:
        key = ":metrics :redis"
    text = str(e)
    if isinstance(e, redis.AuthenticationError) or re.search(r"WRONGPASS|NOAUTH|invalid password", text):
        what = f"refused the password ({key} :password)"
    elif "refused" in text.lower():
        what = "refused the connection"
    elif isinstance(e, redis.TimeoutError) or "timed out" in text.lower() or "timeout" in text.lower():
        what = "did not answer in time"
    else:
        what = f"did not answer: {' '.join(text.split())}"
    return f"Redis at {where[0]}:{where[1]} ({key}) {what}"


def _log_table(e: BaseException, settings: Settings, conf: str) -> str:
    import sqlalchemy as sa

    url = sa.engine.make_url(settings.etl_db_url)
    shown = url.render_as_string(hide_password=True)
    cause = e if isinstance(e, sa.exc.DBAPIError) else e.__cause__
    orig = getattr(cause, "orig", None)
    args: tuple = orig.args if orig is not None else ()
    code = args[0] if args and isinstance(args[0], int) else None
    where = f"the pseidon_logs database at {shown} (:etl-db-host)"
    if code == 1049:
        return (f"database {url.database!r} does not exist on {url.host}:{url.port or 3306} (:etl-db-host): create "
                f"it (CREATE DATABASE {url.database}), then the table: pseidon-dagster logs init{conf}")
    if code in (1044, 1045, 1698):
        return f"{where} refused the user or password (:etl-db-user, :etl-db-pwd): {args[-1]}"
    detail = " ".join(str(orig if orig is not None else e).split())
    if code == 2003 and "refused" in detail.lower():
        return f"{where} refused the connection"
    if code in (2003, 2013) and "timed out" in detail.lower():
        return f"{where} did not answer in time"
    return f"{where} is unavailable: {detail}"
