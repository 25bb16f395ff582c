"""HiveCatalog's SASL mechanisms against the real Thrift Server (Spark's runs with authentication NONE: SASL PLAIN,
any password); the choice of mechanism is in tests/unit/core/hive/test_hive_auth.py."""
from __future__ import annotations

import pytest

from pseidon_dagster.core.hive import CatalogError, HiveCatalog
from pseidon_dagster.core.hive.url import parse_hive_url


@pytest.mark.hive
@pytest.mark.parametrize("password", [None, "an-ldap-password"])
def test_plain_and_ldap_connect_to_the_thrift_server(hive_port, hive_db, password):
    cat = HiveCatalog(parse_hive_url(f"//127.0.0.1:{hive_port}/{hive_db}"), "etl", password, retries=0)
    cat.create_table(hive_db, "auth_probe", [("ts", "bigint")], ["dt"], "STORED AS TEXTFILE", external=False)
    assert cat.table_exists(hive_db, "auth_probe")
    assert password is None or password not in repr(cat)


@pytest.mark.hive
def test_nosasl_against_a_sasl_server_fails_naming_the_server(hive_port):
    cat = HiveCatalog(parse_hive_url(f"//127.0.0.1:{hive_port}/default;auth=noSasl"), "etl", retries=0,
                      timeout_s=10)
    with pytest.raises(CatalogError, match=rf"HiveServer2 .*127\.0\.0\.1:{hive_port}"):
        cat.show_partitions("default", "nope")
