"""hive_url parsing (core/hive/url.py): host, port, database, session parameters; malformed URLs are refused with
their password masked."""
from __future__ import annotations

import pytest

from pseidon_dagster.core.hive import CatalogError, HiveCatalog, parse_hive_url


@pytest.mark.parametrize("url,host,port,db,params", [
    ("//hive1:10000/logs", "hive1", 10000, "logs", {}),
    ("//hive1/logs", "hive1", 10000, "logs", {}),
    ("//hive1:10001", "hive1", 10001, "default", {}),
    ("//hive1:10001/", "hive1", 10001, "default", {}),
    ("jdbc:hive2://hive1:10002/logs", "hive1", 10002, "logs", {}),
    ("JDBC:HIVE2://hive1/logs", "hive1", 10000, "logs", {}),
    # the original turned this into the database name "_HOST@REALM" (section 5.2)
    ("//hive1:10000/logs;principal=hive/_HOST@REALM", "hive1", 10000, "logs", {"principal": "hive/_HOST@REALM"}),
    ("jdbc:hive2://hive1:10000/logs;principal=hive/_HOST@EXAMPLE.COM;ssl=false", "hive1", 10000, "logs",
     {"principal": "hive/_HOST@EXAMPLE.COM", "ssl": "false"}),
    ("//hive1:10000;principal=hive/_HOST@REALM", "hive1", 10000, "default", {"principal": "hive/_HOST@REALM"}),
    ("jdbc:hive2://h1:10000,h2:10000/logs;serviceDiscoveryMode=zooKeeper", "h1", 10000, "logs",
     {"serviceDiscoveryMode": "zooKeeper"}),
    ("//[::1]:10003/logs", "::1", 10003, "logs", {}),
    ("  //hive1:10000/logs  ", "hive1", 10000, "logs", {}),
])
def test_parse_hive_url(url, host, port, db, params):
    t = parse_hive_url(url)
    assert (t.host, t.port, t.database, t.params) == (host, port, db, params)


def test_parse_hive_url_hiveconf_and_hivevars():
    t = parse_hive_url("jdbc:hive2://h:10000/logs;auth=noSasl?hive.exec.dynamic.partition=true;a=b#x=1")
    assert t.database == "logs" and t.params == {"auth": "noSasl"}
    assert t.conf == {"hive.exec.dynamic.partition": "true", "a": "b"}


@pytest.mark.parametrize("url,match", [
    ("", "empty"),
    ("hive1:10000/logs", "neither"),
    ("jdbc:mysql://h:3306/db", "neither"),
    ("//:10000/logs", "no host"),
    ("//h:abc/logs", "not a number"),
    ("//h:70000/logs", "out of range"),
    ("//h:10000/bad-db", "not a valid Hive identifier"),
    ("//h:10000/db;oops", "not key=value"),
    ("//h:10000/x;DROP TABLE y", "not key=value"),
])
def test_parse_hive_url_rejects(url, match):
    with pytest.raises(CatalogError, match=match):
        parse_hive_url(url)


def test_password_in_url_is_masked_in_errors():
    with pytest.raises(CatalogError) as e:
        parse_hive_url("//h:10000/bad-db;password=hunter2")
    assert "hunter2" not in str(e.value)


def test_transport_modes_other_than_binary_are_refused():
    with pytest.raises(CatalogError, match="transportMode=http"):
        HiveCatalog(parse_hive_url("//h:10001/db;transportMode=http;httpPath=cliservice"))
