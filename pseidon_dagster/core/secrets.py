"""Secret references resolved through HashiCorp Vault (KV v2, or v1); plain values pass through unchanged.

A reference is `vault:<path>#<key>`:
    vault:secret/data/pseidon#db_password    KV v2, mount `secret`, secret `pseidon` (`data/` is the KV v2 API marker)
    vault:secret/pseidon#db_password         the same secret (mount = first path segment)
    vault:pseidon#db_password                with {:mount "secret"}: the secret `pseidon` under the configured mount

Where references may appear: :etl-db-pwd and the :redis-conf :password in pseidon.edn, and pseidon_logs.hive_password.
A row is untrusted input: its references resolve only under :vault :row-prefixes (none by default), so a row cannot
read the database or Redis password, or any other secret the ETL's credentials can read.

Address and authentication come from the :vault map of pseidon.edn (parsed once by config.py into VaultConfig),
else the environment:
    {:addr "http://127.0.0.1:8200"        VAULT_ADDR
     :token "..."                         VAULT_TOKEN
     :role-id "..." :secret-id "..."      VAULT_ROLE_ID / VAULT_SECRET_ID  (AppRole login)
     :approle-mount "approle"
     :mount "secret" :kv-version 2
     :namespace "..."                     VAULT_NAMESPACE  (Vault Enterprise)
     :ca-cert "/path/ca.pem"              VAULT_CACERT
     :timeout-ms 10000 :cache-ttl-ms 300000
     :row-prefixes ["secret/pseidon/hive"]}   Vault paths that pseidon_logs rows may reference (default: none)

Secrets are read once per process and cached for :cache-ttl-ms (5 minutes: one run, while a long-lived daemon still
sees rotated secrets). Errors raise SecretError naming the reference and the reason, never a token, secret-id,
secret value or key name (a reference is shown as vault:<path>#***). Resolved values are `Secret` strings, whose
repr() is masked; settings maps are `SecretMap`s, whose repr() masks secret-looking keys; VaultConfig's repr shows
neither the token nor the AppRole credentials.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Mapping
from typing import Any, TypeGuard
from urllib.parse import urlsplit, urlunsplit

from .paths import redact_url

log = logging.getLogger(__name__)

VAULT_PREFIX = "vault:"
DEFAULT_TIMEOUT_MS = 10_000
DEFAULT_CACHE_TTL_MS = 300_000
_SECRET_KEY = re.compile(r"(?i)pass|pwd|secret|token|key|jaas|credential|role.?id|oauthbearer\.config|user.?info")


class SecretError(RuntimeError):
    """A secret reference could not be resolved. The message never contains a secret or a token."""


class Secret(str):
    """A resolved secret value: an ordinary str everywhere, except that repr() does not show it."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'***'"


def is_secret_key(name: Any) -> bool:
    """Whether a settings key names a secret (sasl.password, sasl.jaas.config, ssl.key.pem, token, secret-id, ...)."""
    return bool(_SECRET_KEY.search(str(name)))


class SecretMap(dict):
    """A settings map (:kafka-config, :vault): an ordinary dict, except that repr() masks the values of secret keys
    and the user-info of URLs."""

    __slots__ = ()

    def __repr__(self) -> str:
        def shown(k, v):
            if is_secret_key(k):
                return "'***'"
            return repr(redact_url(v)) if isinstance(v, str) else repr(v)

        return "{" + ", ".join(f"{k!r}: {shown(k, v)}" for k, v in self.items()) + "}"


def is_reference(value: str | None) -> TypeGuard[str]:
    return isinstance(value, str) and value.startswith(VAULT_PREFIX)


@dataclasses.dataclass(frozen=True)
class Reference:
    mount: str
    path: str
    key: str
    kv_version: int
    text: str  # the reference as written (it names a secret; it is not one)

    @property
    def where(self) -> str:
        return f"{self.mount}/{self.path}"

    @property
    def shown(self) -> str:
        return _shown(self.text)


def _shown(text: str) -> str:
    """A reference for messages: its path, not its key (errors never name a secret's keys)."""
    path, sep, _key = text.strip().rpartition("#")
    return f"{path}#***" if sep else text.strip()


def parse_reference(value: str, mount: str | None = None, kv_version: int = 2) -> Reference:
    """vault:<path>#<key> -> Reference. MOUNT and KV_VERSION are the :vault defaults."""
    if not is_reference(value):
        raise SecretError("not a vault:<path>#<key> reference")
    text = value.strip()
    body = text[len(VAULT_PREFIX):]
    path, sep, key = body.rpartition("#")
    if not sep or not key.strip():
        raise SecretError(f"{text}: no key; write vault:<path>#<key>")
    segments = [s for s in path.strip().strip("/").split("/")]
    if not path.strip("/ ") or any(s in ("", ".", "..") for s in segments):
        raise SecretError(f"{_shown(text)}: the path must be <mount>/<secret path> without empty or '..' segments")
    default_mount = mount.strip("/") if mount else None
    if default_mount and "/".join(segments).startswith(default_mount + "/"):
        m, rest = default_mount, segments[len(default_mount.split("/")):]
    elif default_mount:
        m, rest = default_mount, segments
    else:
        if len(segments) < 2:
            raise SecretError(f"{_shown(text)}: give <mount>/<path> (or set :vault {{:mount ...}})")
        m, rest = segments[0], segments[1:]
    version = kv_version
    if kv_version == 2 and len(rest) > 1 and rest[0] == "data":
        rest = rest[1:]
    if not rest:
        raise SecretError(f"{_shown(text)}: no secret path after the mount {m!r}")
    return Reference(m, "/".join(rest), key.strip(), version, text)


# -- the cache -------------------------------------------------------------------------------------------------

_cache: dict[tuple, tuple[float, dict[str, Any]]] = {}
_cache_lock = threading.Lock()


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()


# -- configuration -----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class VaultConfig:
    """The :vault map of pseidon.edn, parsed (and checked) once by config.py. Unset keys are taken from the
    environment when a resolver is made (with_env)."""

    addr: str | None = None
    token: str | None = dataclasses.field(default=None, repr=False)
    role_id: str | None = dataclasses.field(default=None, repr=False)
    secret_id: str | None = dataclasses.field(default=None, repr=False)
    approle_mount: str = "approle"
    mount: str | None = None
    kv_version: int = 2
    namespace: str | None = None
    ca_cert: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_MS / 1000
    cache_ttl_s: float = DEFAULT_CACHE_TTL_MS / 1000
    row_prefixes: tuple[str, ...] = ()  # <mount>/<path> prefixes that pseidon_logs references may resolve under

    def __repr__(self) -> str:
        return (f"VaultConfig(addr={self.safe_addr!r}, auth={self.auth!r}, mount={self.mount!r}, "
                f"kv_version={self.kv_version}, row_prefixes={self.row_prefixes!r})")

    @property
    def auth(self) -> str:
        return "token" if self.token else "approle" if self.role_id else "none"

    @property
    def fingerprint(self) -> str:
        """Who is asking, as a digest (so a cached secret is only served to the identity that read it)."""
        ident = f"t:{self.token}" if self.token else f"a:{self.role_id}:{self.secret_id}"
        return hashlib.sha256(ident.encode()).hexdigest()[:16]

    @property
    def safe_addr(self) -> str:
        if not self.addr:
            return "(no address)"
        s = urlsplit(self.addr)
        netloc = s.hostname or ""
        if s.port:
            netloc += f":{s.port}"
        return urlunsplit((s.scheme, netloc, s.path, "", ""))

    def with_env(self, env: Mapping[str, str] | None = None) -> VaultConfig:
        """What pseidon.edn left unset, from VAULT_ADDR, VAULT_NAMESPACE, VAULT_CACERT and, unless the file names a
        token or an AppRole, VAULT_TOKEN (else VAULT_ROLE_ID/VAULT_SECRET_ID)."""
        environ: Mapping[str, str] = os.environ if env is None else env
        token, role_id, secret_id = self.token, self.role_id, self.secret_id
        if not (self.token or self.role_id):
            token = environ.get("VAULT_TOKEN") or None
            role_id = None if token else environ.get("VAULT_ROLE_ID") or None
            secret_id = None if token else environ.get("VAULT_SECRET_ID") or None
        return dataclasses.replace(self, addr=self.addr or environ.get("VAULT_ADDR") or None,
                                   namespace=self.namespace or environ.get("VAULT_NAMESPACE") or None,
                                   ca_cert=self.ca_cert or environ.get("VAULT_CACERT") or None,
                                   token=token, role_id=role_id, secret_id=secret_id)


# -- resolution ------------------------------------------------------------------------------------------------


class VaultResolver:
    """Resolves vault: references with one hvac client (created, and logged in, on first use)."""

    def __init__(self, conf: VaultConfig):
        self.conf = conf
        self._client = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"VaultResolver({self.conf.safe_addr}, auth={self.conf.auth})"

    def __call__(self, value: str) -> str:
        if not is_reference(value):
            return value
        ref = parse_reference(value, self.conf.mount, self.conf.kv_version)
        data = self._read(ref)
        if ref.key not in data:
            raise SecretError(f"cannot resolve {ref.shown}: the secret {ref.where} has no such key")
        v = data[ref.key]
        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
            raise SecretError(f"cannot resolve {ref.shown}: its value is a {type(v).__name__}, not a string")
        return Secret(str(v))

    # --------------------------------------------------------------------------------------------------------
    def _scrub(self, text: str) -> str:
        for s in (self.conf.token, self.conf.secret_id, getattr(self._client, "token", None)):
            if s:
                text = text.replace(str(s), "***")
        return text[:300]

    def _fail(self, ref: Reference, reason: str) -> SecretError:
        return SecretError(f"cannot resolve {ref.shown}: {self._scrub(reason)}")

    def _client_for(self, ref: Reference):
        c = self.conf
        if not c.addr:
            raise self._fail(ref, "no Vault address: set :vault {:addr \"https://vault:8200\"} or VAULT_ADDR")
        if c.auth == "none":
            raise self._fail(ref, "no Vault credentials: set :vault :token or :role-id/:secret-id "
                                  "(or VAULT_TOKEN, or VAULT_ROLE_ID/VAULT_SECRET_ID)")
        if self._client is None:
            import hvac

            # token="" (not None): hvac would otherwise fall back to VAULT_TOKEN or ~/.vault-token by itself.
            client = hvac.Client(url=c.addr, token=c.token or "", namespace=c.namespace,
                                 verify=c.ca_cert if c.ca_cert else True, timeout=c.timeout_s)
            if c.auth == "approle":
                self._login(client, ref)
            self._client = client
        return self._client

    def _login(self, client, ref: Reference) -> None:
        c = self.conf
        try:
            client.auth.approle.login(role_id=c.role_id, secret_id=c.secret_id, mount_point=c.approle_mount)
        except Exception as e:  # noqa: BLE001 - mapped to one clear reason below
            raise self._fail(ref, f"AppRole login at {c.safe_addr} (auth/{c.approle_mount}) failed: "
                                  f"{self._reason(e)}") from None
        log.info("logged in to Vault at %s with AppRole (auth/%s)", c.safe_addr, c.approle_mount)

    def _reason(self, e: BaseException) -> str:
        import hvac.exceptions as hx
        import requests

        errors = "; ".join(str(x) for x in (getattr(e, "errors", None) or []))
        detail = f" ({self._scrub(errors)})" if errors else ""
        if isinstance(e, hx.Forbidden):
            return f"permission denied (HTTP 403){detail}: check the token or AppRole and its policy"
        if isinstance(e, hx.Unauthorized):
            return f"not authenticated (HTTP 401){detail}"
        if isinstance(e, hx.InvalidPath):
            return f"not found (HTTP 404){detail}"
        if isinstance(e, hx.VaultDown):
            return f"Vault is sealed or down (HTTP 503){detail}"
        if isinstance(e, hx.InvalidRequest):
            return f"invalid request (HTTP 400){detail}"
        if isinstance(e, hx.VaultError):
            return f"{type(e).__name__}{detail}"
        if isinstance(e, requests.exceptions.RequestException):
            return f"Vault at {self.conf.safe_addr} is unreachable ({type(e).__name__})"
        return type(e).__name__

    def _read(self, ref: Reference) -> dict[str, Any]:
        c = self.conf
        key = (c.addr, c.namespace, ref.mount, ref.path, ref.kv_version, c.fingerprint)
        now = time.monotonic()
        with _cache_lock:
            hit = _cache.get(key)
            if hit is not None and hit[0] > now:
                return hit[1]
        import hvac.exceptions as hx

        with self._lock:
            client = self._client_for(ref)
            for attempt in (1, 2):
                try:
                    data = self._fetch(client, ref)
                    break
                except hx.Forbidden as e:
                    if c.auth == "approle" and attempt == 1:  # the login token may have expired: log in again
                        self._login(client, ref)
                        continue
                    raise self._fail(ref, f"reading {ref.where} (KV v{ref.kv_version}) at {c.safe_addr}: "
                                          f"{self._reason(e)}") from None
                except Exception as e:  # noqa: BLE001 - mapped to one clear reason
                    raise self._fail(ref, f"reading {ref.where} (KV v{ref.kv_version}) at {c.safe_addr}: "
                                          f"{self._reason(e)}") from None
        if not isinstance(data, dict):
            raise self._fail(ref, f"{ref.where} is not a key/value secret")
        with _cache_lock:
            _cache[key] = (time.monotonic() + c.cache_ttl_s, data)
        log.debug("read Vault secret %s (%d keys)", ref.where, len(data))
        return data

    @staticmethod
    def _fetch(client, ref: Reference) -> Any:
        if ref.kv_version == 2:
            resp = client.secrets.kv.v2.read_secret_version(path=ref.path, mount_point=ref.mount,
                                                            raise_on_deleted_version=True)
            return ((resp or {}).get("data") or {}).get("data")
        resp = client.secrets.kv.v1.read_secret(path=ref.path, mount_point=ref.mount)
        return (resp or {}).get("data")


def check_row_reference(value: str, conf: VaultConfig) -> Reference:
    """The reference VALUE from a pseidon_logs row, if :vault :row-prefixes allows it; else SecretError. Vault is
    not contacted."""
    ref = parse_reference(value, conf.mount, conf.kv_version)
    if not conf.row_prefixes:
        raise SecretError(f"{ref.shown}: vault: references in pseidon_logs rows are refused unless :vault "
                          f":row-prefixes lists the Vault paths rows may read, e.g. :vault {{:row-prefixes "
                          f"[\"secret/pseidon/hive\"]}}")
    if not any(ref.where == p or ref.where.startswith(p + "/") for p in conf.row_prefixes):
        raise SecretError(f"{ref.shown}: {ref.where} is not under :vault :row-prefixes "
                          f"({', '.join(conf.row_prefixes)})")
    return ref


def resolve_row_reference(value: str, vault: VaultConfig | None, env: Mapping[str, str] | None = None) -> str:
    """A pseidon_logs value (hive_password): plain values as they are, vault: references only under :row-prefixes."""
    if not is_reference(value):
        return value
    resolver = resolver_for(vault, env)
    check_row_reference(value, resolver.conf)
    return resolver(value)


def resolver_for(vault: VaultConfig | None, env: Mapping[str, str] | None = None) -> VaultResolver:
    """A function that resolves vault: references through Vault (VAULT, i.e. settings.vault, completed from ENV,
    default os.environ) and returns any other value unchanged.

    Nothing is contacted until a reference is resolved; a config without references never needs Vault."""
    return VaultResolver((vault or VaultConfig()).with_env(env))


__all__ = ["VAULT_PREFIX", "SecretError", "Secret", "SecretMap", "Reference", "is_reference", "is_secret_key",
           "VaultConfig", "parse_reference", "resolver_for", "check_row_reference", "resolve_row_reference",
           "clear_cache"]
