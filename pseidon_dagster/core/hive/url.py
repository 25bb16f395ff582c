"""Where HiveServer2 is: a pseidon_logs.hive_url parsed into a HiveTarget.

A hive_url may not carry a password (user-info or password=), nor '$' (Hive variable substitution); with
:hive :allowed-hosts only those hosts are contacted (target_for)."""
from __future__ import annotations

import dataclasses
import re

from .. import paths
from ..config import Settings
from .errors import CatalogError
from .sql import DEFAULT_DATABASE, is_identifier

DEFAULT_PORT = 10000


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
    if not is_identifier(database):
        raise CatalogError(f"hive_url {_safe_url(raw)!r}: database {database!r} is not a valid Hive identifier")
    return HiveTarget(host, port, database, _kv(sess, "parameter", raw), _kv(hiveconf, "Hive setting", raw))


def target_for(settings: Settings, hive_url: str) -> HiveTarget:
    """The HiveServer2 a hive_url names, if :hive :allowed-hosts (when set) lets rows name it."""
    target = parse_hive_url(hive_url)
    allowed = settings.hive.allowed_hosts
    if allowed and not any(h == target.host.lower() and p in (None, target.port) for h, p in allowed):
        raise CatalogError(f"hive_url host {target.host}:{target.port} is not in :hive :allowed-hosts")
    return target
