"""vault: references resolved through hvac.

There is no Vault server on this machine, so these tests run a small HTTP server (http.server in a thread, bound to
127.0.0.1) that speaks the part of Vault's HTTP API that hvac uses here:
- KV v2 `GET /v1/<mount>/data/<path>` with `X-Vault-Token` -> `{"data": {"data": {...}, "metadata": {...}}}`,
- KV v1 `GET /v1/<mount>/<path>` -> `{"data": {...}}`,
- `POST /v1/auth/approle/login` with `{"role_id", "secret_id"}` -> `{"auth": {"client_token": ...}}`,
- 403 `{"errors": ["permission denied"]}` for an unknown token, 404 `{"errors": []}` for an unknown path.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import socket
import threading
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy.engine import make_url

from pseidon_dagster.core import config as config_mod
from pseidon_dagster.core import secrets
from pseidon_dagster.core.hive import CatalogError, catalog_for
from pseidon_dagster.core.logtable import LogSpec
from pseidon_dagster.core.secrets import Secret, SecretError, is_reference, parse_reference, resolver_for

TOKEN = "s.root-" + uuid.uuid4().hex
ROLE_ID = "role-" + uuid.uuid4().hex[:8]
SECRET_ID = "sid-" + uuid.uuid4().hex
DB_PASSWORD = "db-pw-" + uuid.uuid4().hex[:8]
REDIS_PASSWORD = "redis-pw-" + uuid.uuid4().hex[:8]
HIVE_PASSWORD = "hive-pw-" + uuid.uuid4().hex[:8]


class FakeVault:
    """State of the fake Vault: secrets per (mount, path), valid tokens, KV versions per mount, request log."""

    def __init__(self):
        self.kv = {
            ("secret", "pseidon"): {"db_password": DB_PASSWORD, "redis_password": REDIS_PASSWORD,
                                    "hive_password": HIVE_PASSWORD, "port": 3306},
            ("secret", "team/app"): {"k": "nested-value"},
            ("kv1", "legacy"): {"pw": "v1-value"},
        }
        self.versions = {"secret": 2, "kv1": 1}
        self.tokens = {TOKEN}
        self.requests: list[tuple[str, str]] = []
        self.logins = 0

    def handler(self):
        vault = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def _send(self, code: int, body: dict) -> None:
                raw = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_POST(self):
                vault.requests.append(("POST", self.path))
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n) or b"{}")
                if self.path == "/v1/auth/approle/login":
                    if body.get("role_id") == ROLE_ID and body.get("secret_id") == SECRET_ID:
                        vault.logins += 1
                        token = f"s.approle-{uuid.uuid4().hex}"
                        vault.tokens.add(token)
                        return self._send(200, {"auth": {"client_token": token, "accessor": "a",
                                                         "policies": ["pseidon"], "lease_duration": 3600,
                                                         "renewable": True}})
                    return self._send(400, {"errors": ["invalid role or secret ID"]})
                return self._send(404, {"errors": []})

            def do_GET(self):
                path = self.path.split("?")[0]
                vault.requests.append(("GET", path))
                if self.headers.get("X-Vault-Token") not in vault.tokens:
                    return self._send(403, {"errors": ["permission denied"]})
                parts = path.removeprefix("/v1/").split("/")
                mount = parts[0]
                if vault.versions.get(mount) == 2 and len(parts) > 2 and parts[1] == "data":
                    data = vault.kv.get((mount, "/".join(parts[2:])))
                    if data is None:
                        return self._send(404, {"errors": []})
                    return self._send(200, {"data": {"data": data, "metadata": {"version": 1, "destroyed": False,
                                                                                "deletion_time": ""}}})
                if vault.versions.get(mount) == 1:
                    data = vault.kv.get((mount, "/".join(parts[1:])))
                    if data is None:
                        return self._send(404, {"errors": []})
                    return self._send(200, {"data": data, "lease_duration": 0})
                return self._send(404, {"errors": []})

        return Handler


@pytest.fixture
def vault(monkeypatch):
    for var in ("VAULT_ADDR", "VAULT_TOKEN", "VAULT_ROLE_ID", "VAULT_SECRET_ID", "VAULT_NAMESPACE", "VAULT_CACERT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    secrets.clear_cache()
    state = FakeVault()
    server = ThreadingHTTPServer(("127.0.0.1", 0), state.handler())
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.addr = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()
    secrets.clear_cache()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- references (no server) --------------------------------------------------------------------------------------


@pytest.mark.parametrize("text,mount,expected", [
    ("vault:secret/data/pseidon#db_password", None, ("secret", "pseidon", "db_password", 2)),
    ("vault:secret/pseidon#db_password", None, ("secret", "pseidon", "db_password", 2)),
    ("vault:secret/data/team/app#k", None, ("secret", "team/app", "k", 2)),
    ("vault:/secret/pseidon/#k", None, ("secret", "pseidon", "k", 2)),
    ("vault:pseidon#k", "secret", ("secret", "pseidon", "k", 2)),
    ("vault:secret/data/pseidon#k", "secret", ("secret", "pseidon", "k", 2)),
    ("vault:a#b#c", "secret", ("secret", "a#b", "c", 2)),
])
def test_parse_reference(text, mount, expected):
    ref = parse_reference(text, mount)
    assert (ref.mount, ref.path, ref.key, ref.kv_version) == expected


@pytest.mark.parametrize("text", ["vault:secret/pseidon", "vault:secret/pseidon#", "vault:pseidon#k",
                                  "vault:secret/../x#k", "vault:#k", "vault:secret//x#k"])
def test_bad_references(text):
    with pytest.raises(SecretError) as e:
        parse_reference(text)
    assert text.split("#")[0] in str(e.value) or "vault:" in str(e.value)


def vault_settings(conf: dict) -> secrets.VaultConfig:
    """The typed :vault settings of a pseidon.edn holding CONF."""
    return config_mod.from_mapping({"vault": conf}).vault


def test_plain_values_pass_through_without_vault():
    resolve = resolver_for(None, env={})
    assert resolve("plain-password") == "plain-password"
    assert resolve("") == ""
    assert not is_reference("plain") and not is_reference(None) and is_reference("vault:x/y#z")


def test_secret_repr_is_masked():
    s = Secret("hunter2")
    assert s == "hunter2" and f"{s}" == "hunter2" and str(s) == "hunter2"
    assert "hunter2" not in repr(s) and "hunter2" not in repr({"pw": s}) and "hunter2" not in repr([s])


# -- against the fake Vault --------------------------------------------------------------------------------------


def _edn(path, text):
    path.write_text(text)
    return path


def test_config_load_resolves_db_and_redis_passwords(vault, tmp_path):
    conf = _edn(tmp_path / "pseidon.edn", f"""
        {{:etl-db-host "//127.0.0.1:3306/pseidon"
          :etl-db-user "pseidon"
          :etl-db-pwd "vault:secret/data/pseidon#db_password"
          :redis-conf {{:host "127.0.0.1:6379" :password "vault:secret/pseidon#redis_password"}}
          :vault {{:addr "{vault.addr}" :token "{TOKEN}"}}}}""")

    settings = config_mod.load(conf)

    assert settings.etl_db_pwd == DB_PASSWORD
    url = make_url(settings.etl_db_url)
    assert (url.username, url.password, url.host, url.database) == ("pseidon", DB_PASSWORD, "127.0.0.1", "pseidon")
    assert settings.redis.password == REDIS_PASSWORD
    assert DB_PASSWORD not in repr(settings.etl_db_pwd) and REDIS_PASSWORD not in repr(settings.redis)
    # one read of secret/pseidon served both keys (cached per process)
    assert vault.requests.count(("GET", "/v1/secret/data/pseidon")) == 1


def test_wrong_token_fails_clearly_without_leaking_it(vault, tmp_path, caplog):
    wrong = "s.wrong-" + uuid.uuid4().hex
    conf = _edn(tmp_path / "pseidon.edn", f"""
        {{:etl-db-host "//127.0.0.1:3306/pseidon" :etl-db-user "pseidon"
          :etl-db-pwd "vault:secret/data/pseidon#db_password"
          :vault {{:addr "{vault.addr}" :token "{wrong}"}}}}""")
    caplog.set_level(logging.DEBUG)

    with pytest.raises(SecretError) as e:
        config_mod.load(conf)

    msg = str(e.value)
    assert "vault:secret/data/pseidon#***" in msg  # the reference's path, not its key
    assert "permission denied" in msg and "403" in msg
    everything = msg + "".join(traceback.format_exception(e.value)) + caplog.text
    for leaked in (wrong, DB_PASSWORD):
        assert leaked not in everything


def test_approle_login(vault, caplog):
    caplog.set_level(logging.DEBUG)
    resolve = resolver_for(vault_settings({"addr": vault.addr, "role-id": ROLE_ID, "secret-id": SECRET_ID}), env={})

    assert resolve("vault:secret/data/pseidon#db_password") == DB_PASSWORD
    assert resolve("vault:secret/team/app#k") == "nested-value"
    assert vault.logins == 1
    assert ("POST", "/v1/auth/approle/login") in vault.requests
    assert SECRET_ID not in caplog.text and SECRET_ID not in repr(resolve)


def test_approle_bad_secret_id(vault, caplog):
    caplog.set_level(logging.DEBUG)
    bad = "sid-bad-" + uuid.uuid4().hex
    resolve = resolver_for(vault_settings({"addr": vault.addr, "role-id": ROLE_ID, "secret-id": bad}), env={})
    with pytest.raises(SecretError) as e:
        resolve("vault:secret/pseidon#db_password")
    assert "AppRole login" in str(e.value) and "invalid role or secret ID" in str(e.value)
    assert bad not in str(e.value) + "".join(traceback.format_exception(e.value)) + caplog.text


def test_env_fallback_token(vault, monkeypatch):
    monkeypatch.setenv("VAULT_ADDR", vault.addr)
    monkeypatch.setenv("VAULT_TOKEN", TOKEN)
    assert resolver_for(None)("vault:secret/pseidon#db_password") == DB_PASSWORD


def test_env_fallback_approle(vault, monkeypatch):
    monkeypatch.setenv("VAULT_ADDR", vault.addr)
    monkeypatch.setenv("VAULT_ROLE_ID", ROLE_ID)
    monkeypatch.setenv("VAULT_SECRET_ID", SECRET_ID)
    assert resolver_for(vault_settings({}))("vault:secret/pseidon#db_password") == DB_PASSWORD
    assert vault.logins == 1


def test_missing_key_names_no_keys_and_no_values(vault):
    resolve = resolver_for(vault_settings({"addr": vault.addr, "token": TOKEN}), env={})
    with pytest.raises(SecretError) as e:
        resolve("vault:secret/pseidon#nope")
    assert "has no such key" in str(e.value)
    assert "nope" not in str(e.value) and "db_password" not in str(e.value) and DB_PASSWORD not in str(e.value)


def test_missing_secret_and_non_string_value(vault):
    resolve = resolver_for(vault_settings({"addr": vault.addr, "token": TOKEN}), env={})
    with pytest.raises(SecretError, match=r"secret/missing.*404"):
        resolve("vault:secret/data/missing#k")
    assert resolve("vault:secret/pseidon#port") == "3306"


def test_kv_v1_mount(vault):
    resolve = resolver_for(vault_settings({"addr": vault.addr, "token": TOKEN, "kv-version": 1}), env={})
    assert resolve("vault:kv1/legacy#pw") == "v1-value"


def test_default_mount(vault):
    resolve = resolver_for(vault_settings({"addr": vault.addr, "token": TOKEN, "mount": "secret"}), env={})
    assert resolve("vault:pseidon#db_password") == DB_PASSWORD
    assert resolve("vault:team/app#k") == "nested-value"


def test_cache_per_identity(vault):
    conf = {"addr": vault.addr, "token": TOKEN}
    assert resolver_for(vault_settings(conf), env={})("vault:secret/pseidon#db_password") == DB_PASSWORD
    assert resolver_for(vault_settings(conf), env={})("vault:secret/pseidon#hive_password") == HIVE_PASSWORD
    assert vault.requests.count(("GET", "/v1/secret/data/pseidon")) == 1
    # another identity does not get the cached copy
    with pytest.raises(SecretError, match="permission denied"):
        other = vault_settings({"addr": vault.addr, "token": "s.other"})
        resolver_for(other, env={})("vault:secret/pseidon#db_password")
    # a zero TTL reads every time
    again = resolver_for(vault_settings({**conf, "cache-ttl-ms": 0}), env={})
    again("vault:secret/pseidon#db_password")
    again("vault:secret/pseidon#db_password")
    assert vault.requests.count(("GET", "/v1/secret/data/pseidon")) >= 2


def test_unreachable_and_unconfigured_vault():
    secrets.clear_cache()
    resolve = resolver_for(vault_settings({"addr": f"http://127.0.0.1:{_closed_port()}", "token": TOKEN,
                                           "timeout-ms": 2000}),
                           env={})
    with pytest.raises(SecretError, match="unreachable") as e:
        resolve("vault:secret/pseidon#db_password")
    assert TOKEN not in str(e.value)
    with pytest.raises(SecretError, match="no Vault address"):
        resolver_for(vault_settings({"token": TOKEN}), env={})("vault:secret/pseidon#k")
    with pytest.raises(SecretError, match="no Vault credentials"):
        resolver_for(vault_settings({"addr": "http://127.0.0.1:1"}), env={})("vault:secret/pseidon#k")


def test_hive_password_reference_resolved_for_the_catalog(vault, monkeypatch):
    settings = config_mod.from_mapping({"vault": {"addr": vault.addr, "token": TOKEN,
                                                  "row-prefixes": ["secret/pseidon"]}})
    spec = LogSpec(log="clicks", format="txt:ts=0", output_format="gzip", base_partition="/lake",
                   log_partition="clicks", hive_table_name="clicks", hive_url="//127.0.0.1:10000/default",
                   hive_user="etl", hive_password="vault:secret/data/pseidon#hive_password")
    cat, db, table = catalog_for(settings, spec)
    assert cat._password == HIVE_PASSWORD and (db, table) == ("default", "clicks")
    assert HIVE_PASSWORD not in repr(cat) and HIVE_PASSWORD not in repr(spec)

    broken = dataclasses.replace(spec, hive_password="vault:secret/data/pseidon#nope")
    with pytest.raises(CatalogError, match=r"log 'clicks': hive_password: cannot resolve"):
        catalog_for(settings, broken)
