"""How Vault failures read: an expired AppRole token is renewed by logging in again; a sealed, unauthenticated or
failing Vault, a value that is not a string and a path that is not a key/value secret each fail with their own reason,
never with the token. Vault is the small KV server of test_secrets.py, or here one that answers every request with a
fixed HTTP status (both bound to 127.0.0.1)."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pseidon_dagster.core import secrets
from pseidon_dagster.core.secrets import SecretError, resolver_for
from tests.unit.core import test_secrets
from tests.unit.core.test_secrets import DB_PASSWORD, ROLE_ID, SECRET_ID, TOKEN

vault = test_secrets.vault  # the fake Vault's fixture
vault_settings = test_secrets.vault_settings


def test_an_expired_approle_token_is_renewed_by_logging_in_again(vault):
    resolve = resolver_for(vault_settings({"addr": vault.addr, "role-id": ROLE_ID, "secret-id": SECRET_ID,
                                           "cache-ttl-ms": 0}), env={})
    assert resolve("vault:secret/pseidon#db_password") == DB_PASSWORD
    vault.tokens.clear()  # the login token expired: Vault now answers 403

    assert resolve("vault:secret/pseidon#db_password") == DB_PASSWORD
    assert vault.logins == 2


def test_a_value_that_is_not_a_string_and_a_secret_that_is_not_key_value(vault):
    vault.kv[("secret", "lists")] = {"hosts": ["a", "b"]}
    vault.kv[("secret", "plain")] = "just text"
    resolve = resolver_for(vault_settings({"addr": vault.addr, "token": TOKEN}), env={})
    with pytest.raises(SecretError) as e:
        resolve("vault:secret/lists#hosts")
    assert str(e.value) == "cannot resolve vault:secret/lists#***: its value is a list, not a string"
    with pytest.raises(SecretError) as e:
        resolve("vault:secret/plain#k")
    assert str(e.value) == "cannot resolve vault:secret/plain#***: secret/plain is not a key/value secret"


@pytest.fixture
def status_vault(monkeypatch):
    """A Vault whose every answer is `state["status"]` with errors ["boom"]."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    secrets.clear_cache()
    state = {"status": 503}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            raw = json.dumps({"errors": ["boom"]}).encode()
            self.send_response(state["status"])
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    state["addr"] = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()
    secrets.clear_cache()


@pytest.mark.parametrize("status,reason", [
    (401, "not authenticated (HTTP 401) (boom)"),
    (503, "Vault is sealed or down (HTTP 503) (boom)"),
    (500, "InternalServerError (boom)"),
])
def test_each_vault_failure_has_its_reason_and_never_the_token(status_vault, status, reason):
    status_vault["status"] = status
    resolve = resolver_for(vault_settings({"addr": status_vault["addr"], "token": TOKEN}), env={})
    with pytest.raises(SecretError) as e:
        resolve("vault:secret/pseidon#db_password")
    assert str(e.value) == (f"cannot resolve vault:secret/pseidon#***: reading secret/pseidon (KV v2) at "
                            f"{status_vault['addr']}: {reason}")
    assert TOKEN not in str(e.value)
