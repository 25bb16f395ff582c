"""How HiveCatalog authenticates (impyla): the hive_url and the password choose the SASL mechanism. Kerberos (GSSAPI)
needs a KDC, which this machine has not: only the choice of mechanism and service is checked for it; PLAIN, LDAP and
NOSASL also run against the real Thrift Server (tests/integration/core/test_hive_auth_server.py)."""
from __future__ import annotations

import pytest

from pseidon_dagster.core.hive import HiveCatalog
from pseidon_dagster.core.hive.url import parse_hive_url


@pytest.mark.parametrize("url,password,mechanism,service", [
    ("//127.0.0.1:10000/logs", None, "PLAIN", None),            # an open server (authentication NONE)
    ("//127.0.0.1:10000/logs", "pw", "LDAP", None),              # LDAP / custom: SASL PLAIN with the password
    ("//127.0.0.1:10000/logs;auth=noSasl", None, "NOSASL", None),
    ("jdbc:hive2://h:10000/logs;principal=hive/_HOST@EXAMPLE.COM", None, "GSSAPI", "hive"),
    ("//h:10000/logs;principal=impala/h.example.com@EXAMPLE.COM", "ignored", "GSSAPI", "impala"),
])
def test_the_url_and_password_choose_the_sasl_mechanism(url, password, mechanism, service):
    assert HiveCatalog(parse_hive_url(url), "etl", password)._auth() == (mechanism, service)
