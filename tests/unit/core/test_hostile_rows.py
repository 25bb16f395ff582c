"""Hostile pseidon_logs rows and Hive DDL: Vault references only under :vault :row-prefixes, hive_url hosts only from
:hive :allowed-hosts, no password in hive_url, and no Hive variable substitution ($, ${) in any DDL literal.

Vault is the small KV v2 server of test_secrets.py; rows are validated as the table would (validate_row). Rows
through the real pseidon_logs table: tests/integration/core/test_hostile_rows.py."""
from __future__ import annotations

import traceback

import pytest

from pseidon_dagster.core import config as config_mod
from pseidon_dagster.core.config import ConfigError
from pseidon_dagster.core.hive import CatalogError, catalog_for, location_literal, parse_hive_url
from pseidon_dagster.core.hive import sql as hive_sql
from pseidon_dagster.core.logtable import LogConfigError, validate_row
from pseidon_dagster.core.secrets import SecretError, resolver_for
from tests.unit.core import test_secrets
from tests.unit.core.test_secrets import HIVE_PASSWORD, TOKEN

vault = test_secrets.vault  # the fake Vault's fixture
vault_settings = test_secrets.vault_settings


def hive_row(log="clicks", **kw):
    """A pseidon_logs row of group g with a hive_url; KW overrides columns."""
    row = dict(log=log, format="txt:sep=pipe;ts=0", output_format="gzip", base_partition="lake",
               log_partition=f"raw/{log}", quarantine="quarantine", log_group="g", enabled=1,
               hive_url="//127.0.0.1:10000/default", hive_table_name="clicks", hive_user="etl")
    row.update(kw)
    return row


def row_settings(tmp_path, vault_conf=None, hive=None):
    """Settings with :data-dir TMP_PATH and the given :vault and :hive maps."""
    m = {"data-dir": str(tmp_path)}
    if vault_conf is not None:
        m["vault"] = vault_conf
    if hive is not None:
        m["hive"] = hive
    return config_mod.from_mapping(m)


# -- vault: references from rows -----------------------------------------------------------------------------


def test_row_references_resolve_only_under_the_prefixes(vault, tmp_path):
    vault.kv[("secret", "pseidon/hive")] = {"clicks": HIVE_PASSWORD}
    s = row_settings(tmp_path, {"addr": vault.addr, "token": TOKEN, "row-prefixes": ["secret/data/pseidon/hive"]})
    ok = validate_row(hive_row(hive_password="vault:secret/data/pseidon/hive#clicks"), s)
    cat, _, _ = catalog_for(s, ok)
    assert cat._password == HIVE_PASSWORD

    for ref in ("vault:secret/data/pseidon#db_password", "vault:secret/pseidon#db_password",
                "vault:secret/data/pseidon/hive-admin#pw", "vault:other/pseidon/hive#clicks"):
        with pytest.raises(LogConfigError, match="column hive_password") as e:
            validate_row(hive_row(hive_password=ref), s)
        assert "row-prefixes" in str(e.value)
    # the mount default applies to prefixes and references alike
    s2 = row_settings(tmp_path, {"addr": vault.addr, "token": TOKEN, "mount": "secret",
                                 "row-prefixes": ["pseidon/hive"]})
    assert catalog_for(s2, validate_row(hive_row(hive_password="vault:pseidon/hive#clicks"), s2))[0]._password \
        == HIVE_PASSWORD
    assert ("GET", "/v1/secret/data/pseidon") not in vault.requests


@pytest.mark.parametrize("prefixes", ["secret/x", [""], ["secret/../x"], [1]])
def test_bad_row_prefixes_are_refused(prefixes):
    with pytest.raises(ConfigError, match="row-prefixes"):
        vault_settings({"row-prefixes": prefixes})


def test_errors_never_list_a_secrets_keys(vault):
    resolve = resolver_for(vault_settings({"addr": vault.addr, "token": TOKEN}), env={})
    with pytest.raises(SecretError) as e:
        resolve("vault:secret/pseidon#nope")
    msg = "".join(traceback.format_exception_only(e.value))  # (the full traceback quotes this test's source)
    assert "vault:secret/pseidon#" in msg and "has no such key" in msg
    for name in ("nope", "db_password", "redis_password", "hive_password", "port"):
        assert name not in msg


# -- hive_url ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("hosts", ["h", [""], ["h:x"], ["h:70000"], [1]])
def test_bad_allowed_hosts_fail_the_config(hosts):
    with pytest.raises(ConfigError, match="allowed-hosts"):
        config_mod.from_mapping({"hive": {"allowed-hosts": hosts}})


@pytest.mark.parametrize("url", [
    "//etl:hunter2@127.0.0.1:10000/default",
    "jdbc:hive2://etl:hunter2@127.0.0.1:10000/default",
    "jdbc:hive2://127.0.0.1:10000/default;user=etl;password=hunter2",
    "jdbc:hive2://127.0.0.1:10000/default;PWD=hunter2",
    "jdbc:hive2://127.0.0.1:10000/default?password=hunter2",
    "jdbc:hive2://127.0.0.1:10000/default#password=hunter2",
])
def test_a_password_in_hive_url_is_refused_and_never_shown(tmp_path, url):
    with pytest.raises(LogConfigError, match="column hive_url") as e:
        validate_row(hive_row(hive_url=url), row_settings(tmp_path))
    with pytest.raises(CatalogError) as e2:
        parse_hive_url(url)
    for err in (e.value, e2.value):
        assert "hunter2" not in str(err) + "".join(traceback.format_exception(err))
        assert "hive_password" in str(err)


def test_hive_url_errors_mask_passwords(tmp_path):
    with pytest.raises(CatalogError) as e:
        parse_hive_url("//etl:hunter2@host:notaport/default")
    assert "hunter2" not in str(e.value)


# -- Hive variable substitution ------------------------------------------------------------------------------


@pytest.mark.parametrize("location", ["file:///lake/${env:HOME}", "file:///lake/${hivevar:x}", "hdfs://nn/$x",
                                      "file:///lake/'x"])
def test_dollar_is_refused_in_location(location):
    with pytest.raises(CatalogError, match="LOCATION"):
        location_literal(location)


def test_dollar_in_hive_url_is_refused():
    with pytest.raises(CatalogError, match=r"\$"):
        parse_hive_url("jdbc:hive2://127.0.0.1:10000/default?hive.exec.pre.hooks=${env:X}")


def test_a_dollar_separator_is_escaped_in_ddl():
    assert hive_sql._sep_literal(b"$") == "'\\044'"
    assert hive_sql._sep_literal(b"|") == "'|'"


@pytest.mark.parametrize("column", ["base_partition", "log_partition", "quarantine"])
def test_dollar_in_a_path_fails_the_row(tmp_path, column):
    with pytest.raises(LogConfigError, match=f"column {column}:.*\\$"):
        validate_row(hive_row(**{column: "x/${env:HOME}"}), row_settings(tmp_path))
