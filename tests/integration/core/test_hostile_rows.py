"""Hostile pseidon_logs rows through the real pseidon_logs table on MariaDB: a row cannot make the ETL read Vault
outside :vault :row-prefixes, nor point hive_url at a host outside :hive :allowed-hosts; the bad row fails alone,
naming its column. The same checks without a server: tests/unit/core/test_hostile_rows.py."""
from __future__ import annotations

import dataclasses

import pytest

from pseidon_dagster.core.hive import CatalogError, catalog_for, registrar_for
from pseidon_dagster.core.logtable import LogTable
from tests.unit.core import test_secrets
from tests.unit.core.test_hostile_rows import hive_row, row_settings
from tests.unit.core.test_secrets import DB_PASSWORD, TOKEN

vault = test_secrets.vault  # the fake Vault's fixture


def test_row_references_are_refused_without_row_prefixes(vault, tmp_path, log_table):
    """Without :vault :row-prefixes a row cannot make the ETL read Vault for it (its credentials can read the DB and
    Redis passwords too); the refusal happens when the row is validated, before Vault is contacted."""
    s = row_settings(tmp_path, {"addr": vault.addr, "token": TOKEN})
    log_table.upsert([hive_row("steal", hive_password="vault:secret/data/pseidon#db_password"), hive_row("plain",
                      hive_password="plain-pw")])
    good, (err,) = LogTable(log_table.engine, s).logs("g")
    assert [g.log for g in good] == ["plain"]
    assert (err.log, err.column) == ("steal", "hive_password") and ":row-prefixes" in str(err)
    spec = dataclasses.replace(good[0], log="steal", hive_password="vault:secret/data/pseidon#db_password")
    with pytest.raises(CatalogError, match="row-prefixes") as e:  # the catalog refuses too (a frozen spec, ...)
        catalog_for(s, spec)
    assert vault.requests == [] and DB_PASSWORD not in str(e.value)


def test_hive_hosts_can_be_restricted(tmp_path, log_table):
    s = row_settings(tmp_path, hive={"allowed-hosts": ["127.0.0.1:10000", "hive1.example", "[::1]:10001"]})
    log_table.upsert([
        hive_row("a", hive_url="//127.0.0.1:10000/default"),
        hive_row("b", hive_url="jdbc:hive2://HIVE1.example:10002/logs"),
        hive_row("c", hive_url="//[::1]:10001/default"),
        hive_row("evil", hive_url="//evil.example:10000/default"),
        hive_row("port", hive_url="//127.0.0.1:10001/default"),
        hive_row("ha", hive_url="jdbc:hive2://evil.example:10000,127.0.0.1:10000/default"),
    ])
    good, bad = LogTable(log_table.engine, s).logs("g")
    assert [g.log for g in good] == ["a", "b", "c"]
    assert sorted((e.log, e.column) for e in bad) == [("evil", "hive_url"), ("ha", "hive_url"), ("port", "hive_url")]
    assert all(":allowed-hosts" in str(e) for e in bad)
    spec = dataclasses.replace(good[0], hive_url="//evil.example:10000/default")
    with pytest.raises(CatalogError, match="allowed-hosts"):
        catalog_for(s, spec)
    with pytest.raises(CatalogError, match="allowed-hosts"):
        registrar_for(s, spec)
    # without :allowed-hosts every host is accepted (the default)
    assert len(LogTable(log_table.engine, row_settings(tmp_path)).logs("g")[0]) == 6
