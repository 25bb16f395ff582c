"""pseidon.edn: the seed's keys, typed errors naming the key, unknown-key warnings, JDBC subnames."""
from __future__ import annotations

import logging

import pytest

from pseidon_dagster.core import config
from pseidon_dagster.core.config import ConfigError, db_url, from_mapping, load
from tests import REPO_ROOT


def write(tmp_path, text):
    p = tmp_path / "pseidon.edn"
    p.write_text(text)
    return p


SEED_STYLE = """
{:etl-db-host "//localhost:3306/mydb?autoReconnect=true"
 :etl-db-user "pseidon"
 :etl-db-pwd "secret"
 :etl-group "etl"
 :consume-step 10
 :kafka-brokers [{:host "127.0.0.1" :port 9092} {:host "127.0.0.1" :port 9093}]
 :kafka-use-earliest false
 :redis-conf {:host "127.0.0.1:6379" :heart-beat 5}
 :kafka-msg-ch-buffer-size 50
 :pool {:queue-limit 100 :queue-type :array-queue}
 :metrics {:redis {:host "127.0.0.1" :port 6379 :db 0}}
 :etl-threads 10
 :io-threads 4
 :monitor-port 8080
 :repl-port 7122
 :data-dir "/tmp/pseidon"
 :writer {:codec :gzip :check-freq 2000 :rollover-size 115000000 :rollover-abs-timeout 600000
          :parallel-files 3 :rollover-timeout 60000 :out-buffer-size 500000 :use-buffer false
          :flush-on-write true :write-multiplier 1 :parquet-block-size 20971520}}
"""


def test_every_seed_key_is_accepted_and_the_inert_ones_say_why(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="pseidon_dagster")
    s = load(write(tmp_path, SEED_STYLE))
    assert s.etl_db_url == "mysql+pymysql://pseidon:secret@localhost:3306/mydb"
    assert s.kafka_brokers == ("127.0.0.1:9092", "127.0.0.1:9093")
    assert s.bootstrap_servers == "127.0.0.1:9092,127.0.0.1:9093"
    assert s.etl_group == "etl" and s.kafka_use_earliest is False
    assert s.writer.rollover_size == 115_000_000 and s.writer.rollover_timeout_ms == 60_000
    assert s.max_wait_ms == 60_000
    assert s.data_dir == "/tmp/pseidon"
    for key in ("consume-step", "kafka-msg-ch-buffer-size", "pool", "etl-threads", "io-threads",
                "repl-port", ":writer :check-freq", ":writer :parallel-files", ":writer :codec"):
        assert f":{key.lstrip(':')} has no effect here" in caplog.text, key
    # the seed's :metrics and :monitor-port are used (the /metrics page, core/metrics.py)
    assert s.metrics_redis.hosts == (("127.0.0.1", 6379),) and s.metrics_redis.db == 0
    assert s.ops.monitor_port == 8080
    assert "unknown key" not in caplog.text


def test_defaults_and_config_search_order(tmp_path, monkeypatch):
    p = write(tmp_path, "{}")
    monkeypatch.setenv("PSEIDON_CONF", str(p))
    s = load()
    assert s.source == str(p) and s.etl_group == "etl" and s.etl_db_url.startswith("sqlite:///")
    monkeypatch.delenv("PSEIDON_CONF")
    with pytest.raises(ConfigError, match="/opt/pseidon-etl/conf/pseidon.edn"):
        load()


@pytest.mark.parametrize("text,message", [
    ('{:kafka-use-earliest "yes"}', ":kafka-use-earliest must be a bool"),
    ('{:writer {:rollover-size "big"}}', ":writer :rollover-size must be a int"),
    ('{:writer {:rollover-size 0}}', ":writer :rollover-size must be >= 1"),
    ('{:kafka-brokers 42}', ":kafka-brokers must be"),
    ('{:kafka-brokers [{:port 1}]}', ":kafka-brokers entry 0 has no :host"),
    ('{:etl-group "a b"}', ":etl-group 'a b'"),
    ('{:etl-db-host "localhost"}', ":etl-db-host 'localhost'"),
    ('{:redis-conf {:db "x"}}', ":redis-conf :db must be a int"),
    ('{:writer {:parquet-codec :lzo}}', ":writer :parquet-codec 'lzo'"),
    ("[1 2]", "the top level must be a map"),
    ("{:a", "not valid EDN"),
])
def test_bad_values_name_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as e:
        load(write(tmp_path, text))
    assert message in str(e.value)


def test_unknown_keys_are_warned_by_name(caplog):
    from_mapping({"kafka-brokrs": "x:1", "writer": {"rollover-sise": 1}})
    assert "unknown key :kafka-brokrs" in caplog.text
    assert "unknown key :writer :rollover-sise" in caplog.text


@pytest.mark.parametrize("host,url", [
    ("//localhost:3306/mydb?autoReconnect=true", "mysql+pymysql://u:p@localhost:3306/mydb"),
    ("jdbc:mysql://db1:3307/x", "mysql+pymysql://u:p@db1:3307/x"),
    ("//h1,h2:3306/x", "mysql+pymysql://u:p@h1:3306/x"),
    ("sqlite:///var/p.db", "sqlite:///var/p.db"),
    ("mysql+pymysql://root@127.0.0.1:3306/test", "mysql+pymysql://root@127.0.0.1:3306/test"),
])
def test_etl_db_host_forms(host, url):
    assert db_url(host, "u", "p") == url


def test_password_with_special_characters_is_escaped():
    assert db_url("//h:3306/d", "u", "p@ss/w:rd") == "mysql+pymysql://u:p%40ss%2Fw%3Ard@h:3306/d"


def test_redis_cluster_and_relative_paths():
    s = from_mapping({"redis-conf": {"host": ["127.0.0.1:7000", "127.0.0.1:7001"], "password": "pw"},
                      "data-dir": "/data"})
    assert s.redis.cluster and s.redis.hosts == (("127.0.0.1", 7000), ("127.0.0.1", 7001))
    assert s.resolve_path("lake") == "/data/lake"
    assert s.resolve_path("/abs") == "/abs" and s.resolve_path("hdfs://nn/x") == "hdfs://nn/x"


def test_sample_config_in_conf_loads():

    sample = REPO_ROOT / "conf" / "pseidon.edn"
    s = load(sample)
    assert all(b.startswith(("127.0.0.1:", "localhost:")) for b in s.kafka_brokers)
    assert all(h in ("127.0.0.1", "localhost") for h, _ in s.redis.hosts)


def test_keys_without_effect_cover_the_seed_readme():
    documented = {"consume-step", "kafka-msg-ch-buffer-size", "pool", "etl-threads", "io-threads", "repl-port"}
    assert documented <= set(config.KEYS_WITHOUT_EFFECT)
    assert {"metrics", "monitor-port"} <= set(config.OPS_KEYS)


def test_secrets_never_appear_in_settings_repr():
    s = from_mapping({"etl-db-host": "//h:3306/d", "etl-db-user": "u", "etl-db-pwd": "hunter2",
                      "redis-conf": {"host": "127.0.0.1:6379", "password": "redispw"}})
    assert "hunter2" in s.etl_db_url
    assert "hunter2" not in repr(s) and "redispw" not in repr(s)


def test_avro_schema_registry_config_holds_the_registry_clients_tls_and_auth_settings():
    conf = {"basic.auth.user.info": "etl:pw-1234", "ssl.ca.location": "/etc/ca.pem",
            "ssl.certificate.location": "/etc/c.pem", "ssl.key.location": "/etc/k.pem", "ssl.key.password": "kpw-5678",
            "proxy": "http://proxy:3128"}
    s = from_mapping({"avro-schema-registry-config": conf})
    assert s.avro_schema_registry_config == conf
    assert "pw-1234" not in repr(s) and "kpw-5678" not in repr(s)
    assert "'/etc/ca.pem'" in repr(s.avro_schema_registry_config)
    assert from_mapping({}).avro_schema_registry_config == {}


@pytest.mark.parametrize("raw, message", [
    ({"avro-schema-registry-config": {"url": "http://r:8081"}},
     ":avro-schema-registry-config 'url' cannot be set: the URL is :avro-schema-registry-url"),
    ({"avro-schema-registry-config": {"max.retries": 9}}, ":avro-schema-registry-config 'max.retries' cannot be set"),
    ({"avro-schema-registry-config": {"timeout": 9}}, ":avro-schema-registry-config 'timeout' cannot be set"),
    ({"avro-schema-registry-config": {"ssl.ca.locaton": "x"}},
     ":avro-schema-registry-config 'ssl.ca.locaton' is not a schema registry client setting"),
    ({"avro-schema-registry-config": {"ssl.ca.location": False}},
     ":avro-schema-registry-config 'ssl.ca.location' must be a non-empty string"),
    ({"avro-schema-registry-config": {"basic.auth.user.info": "no-colon"}},
     ":avro-schema-registry-config 'basic.auth.user.info' must be user:password"),
    ({"avro-schema-registry-config": ["x"]}, ":avro-schema-registry-config must be a dict"),
    ({"avro-schema-registry-url": "http://etl:pw-1234@r:8081",
      "avro-schema-registry-config": {"basic.auth.user.info": "etl:pw-1234"}},
     ":avro-schema-registry-config 'basic.auth.user.info' cannot be set when the registry URL has user-info"),
    ({"avro-schema-registry-url": "etl:pw-1234@r",  # no scheme: normalised first
      "avro-schema-registry-config": {"basic.auth.user.info": "etl:pw-1234"}},
     ":avro-schema-registry-config 'basic.auth.user.info' cannot be set when the registry URL has user-info"),
    ({"avro-schema-registry-config": {"ssl.key.location": "/etc/k.pem"}},
     ":avro-schema-registry-config 'ssl.key.location' needs 'ssl.certificate.location'"),
])
def test_bad_avro_schema_registry_config_names_the_key(raw, message):
    with pytest.raises(ConfigError) as e:
        from_mapping(raw)
    assert message in str(e.value) and "pw-1234" not in str(e.value)


@pytest.mark.parametrize("key", ["enable.auto.commit", "auto.offset.reset", "enable.partition.eof", "group.id",
                                 "enable.auto.offset.store"])
def test_kafka_config_cannot_override_what_exactly_once_relies_on(key):
    with pytest.raises(config.ConfigError, match=f":kafka-config '{key}' cannot be set"):
        config.from_mapping({"kafka-config": {key: "whatever"}})


def test_ops_keys_are_read_and_checked():
    s = config.from_mapping({
        "metrics": {"redis": {"host": "127.0.0.1:6390", "db": 2, "password": "hush"}},
        "monitor-port": 9101, "fatal-errors-file": "/var/log/pseidon/fatal",
        "alerts": {"webhook": "http://127.0.0.1:9/hooks/T0K3N", "timeout-ms": 1500},
        "freshness": {"default-minutes": 90, "logs": {"clicks": 30}},
    })
    assert s.metrics_redis.hosts == (("127.0.0.1", 6390),) and s.metrics_redis.db == 2
    assert s.ops.monitor_port == 9101 and s.ops.fatal_errors_file == "/var/log/pseidon/fatal"
    assert s.ops.alert_webhook == "http://127.0.0.1:9/hooks/T0K3N" and s.ops.alert_timeout_s == 1.5
    assert s.ops.freshness_for("clicks") == 30 and s.ops.freshness_for("views") == 90
    assert "T0K3N" not in repr(s) and "hush" not in repr(s)
    d = config.from_mapping({})
    assert d.metrics_redis == d.redis and d.ops.monitor_port == 8282 and d.ops.fatal_errors_file == "/tmp/fatalerrors"
    assert d.ops.freshness_for("x") == 120 and d.ops.alert_webhook is None
    assert "metrics" not in config.KEYS_WITHOUT_EFFECT and "monitor-port" not in config.KEYS_WITHOUT_EFFECT
    for bad, key in [({"monitor-port": "80"}, ":monitor-port"),
                     ({"alerts": {"webhook": "ftp://x"}}, ":alerts :webhook"),
                     ({"freshness": {"logs": {"a": 0}}}, ":freshness :logs"),
                     ({"metrics": {"redis": {"db": "x"}}}, ":metrics :redis :db")]:
        with pytest.raises(config.ConfigError, match=key):
            config.from_mapping(bad)
