"""pseidon.edn values of the wrong kind or range: the ConfigError names the key and what was given."""
from __future__ import annotations

import pytest

from pseidon_dagster.core.config import ConfigError, from_mapping


@pytest.mark.parametrize("raw,message", [
    ({"writer": {"rollover-size": True}}, ":writer :rollover-size must be a int, got True"),
    ({"monitor-port": 70000}, ":monitor-port must be <= 65535, got 70000"),
    ({"kafka-brokers": [1]}, ':kafka-brokers entry 0 must be {:host .. :port ..} or "host:port"'),
    ({"kafka-brokers": " , "}, ":kafka-brokers is empty"),
    ({"redis-conf": {"host": "h:abc"}}, ":redis-conf :host 'h:abc': port 'abc' is not a number"),
    ({"fatal-errors-file": " "}, ":fatal-errors-file must be a file path"),
    ({"etl-db-host": "//db:x/pseidon"}, ":etl-db-host port 'x' is not a number"),
])
def test_a_bad_value_fails_naming_the_key_and_the_value(raw, message):
    with pytest.raises(ConfigError) as e:
        from_mapping(raw)
    assert message in str(e.value)


def test_kafka_brokers_mix_host_port_strings_and_maps():
    s = from_mapping({"kafka-brokers": ["127.0.0.1:9092", {"host": "k2", "port": 9093}, {"host": "k3"}]})
    assert s.bootstrap_servers == "127.0.0.1:9092,k2:9093,k3:9092"
