"""The declared table of pseidon.edn keys (core/config.py): it drives parsing, the unknown-key handling (nearest key,
strict mode), EDN syntax errors with their position, the typed :vault and :hive settings, and the README's table."""
from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import Path

import pytest

from pseidon_dagster.core import config, secrets
from pseidon_dagster.core.config import ConfigError, from_mapping, load
from tests import REPO_ROOT as REPO


def write(tmp_path, text: str) -> Path:
    p = tmp_path / "pseidon.edn"
    p.write_text(text)
    return p


# -- unknown keys ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw,unknown,nearest", [
    ({"kafka-use-earliset": True}, ":kafka-use-earliset", ":kafka-use-earliest"),
    ({"writer": {"rollover-sise": 1}}, ":writer :rollover-sise", ":writer :rollover-size"),
    ({"redis-conf": {"passwrd": "x"}}, ":redis-conf :passwrd", ":redis-conf :password"),
    ({"metrics": {"redis": {"hots": "h"}}}, ":metrics :redis :hots", ":metrics :redis :host"),
    ({"vault": {"adr": "http://127.0.0.1:1"}}, ":vault :adr", ":vault :addr"),
])
def test_an_unknown_key_suggests_the_nearest_known_one(caplog, raw, unknown, nearest):
    from_mapping(raw, source="p.edn")
    assert f"unknown key {unknown} in p.edn is ignored (did you mean {nearest}?)" in caplog.text


def test_an_unknown_key_far_from_every_known_one_suggests_nothing(caplog):
    from_mapping({"zzzzqqq": 1})
    assert "unknown key :zzzzqqq in config is ignored" in caplog.text and "did you mean" not in caplog.text


def test_strict_makes_unknown_keys_an_error(tmp_path):
    text = '{:kafka-use-earliset true :writer {:rollover-sise 1}}'
    with pytest.raises(ConfigError) as e:
        load(write(tmp_path, text), strict=True)
    msg = str(e.value)
    assert "unknown key :kafka-use-earliset (did you mean :kafka-use-earliest?)" in msg
    assert "unknown key :writer :rollover-sise (did you mean :writer :rollover-size?)" in msg
    with pytest.raises(ConfigError, match="unknown key :kafka-use-earliset"):
        load(write(tmp_path, '{:strict true :kafka-use-earliset true}'))
    # without strictness: warned, not refused; keys without effect are never an error
    assert load(write(tmp_path, text)).kafka_use_earliest is False
    assert load(write(tmp_path, '{:strict true :consume-step 10 :writer {:codec :gzip}}'), strict=True).strict


# -- EDN syntax errors -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,where", [
    ('{:a 1\n :b [1 2}\n', "line 2, column 9"),           # `}` closes a `[`
    ('{:etl-group "etl"\n :kafka-brokers "x:1"\n', "line 1, column 1"),  # never closed
    ('{:a 1\n :b "never closed}\n', "line 2, column 5"),
    ('{:a 1\n  :b}\n', "line 1, column 1"),                 # a map with a key and no value
    ('{:a 1}\n ]', "line 2, column 2"),
])
def test_edn_syntax_errors_give_line_and_column(tmp_path, text, where):
    with pytest.raises(ConfigError) as e:
        load(write(tmp_path, text))
    assert "not valid EDN" in str(e.value) and where in str(e.value), str(e.value)


def test_comments_strings_chars_and_discards_do_not_confuse_the_positions(tmp_path):
    text = '; {[ a comment\n{:etl-group "etl" ; }\n :etl-db-user "x\\"}[" :kafka-config {"c" \\}}\n #_ :discarded\n}'
    s = load(write(tmp_path, text))
    assert s.etl_db_user == 'x"}[' and s.kafka_config == {"c": "}"}
    with pytest.raises(ConfigError, match=r":etl-group 'a\]b'"):
        load(write(tmp_path, '{:etl-group "a]b"}'))


# -- typed :vault and :hive ---------------------------------------------------------------------------------------

def test_vault_is_parsed_once_into_typed_settings(monkeypatch):
    monkeypatch.delenv("VAULT_ADDR", raising=False)
    s = from_mapping({"vault": {"addr": "http://127.0.0.1:8200", "token": "s.tok", "mount": "secret",
                                "kv-version": 1, "timeout-ms": 2500, "cache-ttl-ms": 0,
                                "row-prefixes": ["pseidon/hive"]}})
    v = s.vault
    assert isinstance(v, secrets.VaultConfig)
    assert (v.addr, v.token, v.mount, v.kv_version, v.timeout_s, v.cache_ttl_s) == (
        "http://127.0.0.1:8200", "s.tok", "secret", 1, 2.5, 0.0)
    assert v.row_prefixes == ("secret/pseidon/hive",)  # read like a reference's path, with the :mount default
    assert "s.tok" not in repr(s) and "s.tok" not in repr(v)
    # the environment fills what the file leaves unset, when a resolver is made
    assert from_mapping({}).vault.addr is None
    env = {"VAULT_ADDR": "http://127.0.0.1:8201", "VAULT_TOKEN": "s.env"}
    merged = from_mapping({}).vault.with_env(env)
    assert (merged.addr, merged.token) == ("http://127.0.0.1:8201", "s.env")
    assert v.with_env(env).token == "s.tok"


@pytest.mark.parametrize("vault,message", [
    ({"kv-version": 3}, ":vault :kv-version must be 1 or 2"),
    ({"timeout-ms": -1}, ":vault :timeout-ms must be >= 0"),
    ({"row-prefixes": "secret/x"}, ":vault :row-prefixes must be a vector"),
    ({"row-prefixes": ["secret/../x"]}, ":vault :row-prefixes entry 'secret/../x'"),
    ({"addr": 5}, ":vault :addr must be a str"),
])
def test_bad_vault_settings_fail_the_config(vault, message):
    with pytest.raises(ConfigError) as e:
        from_mapping({"vault": vault})
    assert message in str(e.value)


def test_hive_settings_are_typed_and_their_columns_checked_once():
    s = from_mapping({"hive": {"date-column": "d", "hour-column": "h", "retry-backoff-ms": 500,
                               "allowed-hosts": ["Hive1.example:10000", "[::1]"]}})
    assert (s.hive.date_column, s.hive.hour_column, s.hive.retry_backoff_s) == ("d", "h", 0.5)
    assert s.hive.allowed_hosts == (("hive1.example", 10000), ("::1", None))
    with pytest.raises(ConfigError, match=r":hive :hour-column 'h r' is not a valid column name"):
        from_mapping({"hive": {"hour-column": "h r"}})


# -- the table itself ------------------------------------------------------------------------------------------

def _nest(name: str, value):
    """':writer :rollover-size', 5 -> {"writer": {"rollover-size": 5}}"""
    out = value
    for part in reversed(name.split(" ")):
        out = {part.lstrip(":"): out}
    return out


def _field(settings, path: str):
    """The value at PATH ('writer.rollover_size'); None for a field a map's finish step consumes (:redis-conf :port)."""
    for attr in path.split("."):
        settings = getattr(settings, attr, None)
    return settings


def test_every_key_has_help_and_its_default_is_the_settings_default():
    keys = list(config.walk())
    assert len(keys) > 60
    assert [name for name, _, key in keys if not key.help.strip()] == []
    defaults = from_mapping({})
    checked = 0
    for name, path, key in keys:
        if key.default is None or path is None or isinstance(key.convert, config.Section) or \
                name.startswith(":metrics"):  # its Redis defaults to :redis-conf's, not to a Redis of its own
            continue
        want = _field(defaults, path)
        if want is not None:
            assert _field(from_mapping(_nest(name, key.default)), path) == want, name
            checked += 1
    assert checked > 40


def test_the_sample_config_sets_no_unknown_key(caplog):
    load(REPO / "conf" / "pseidon.edn", strict=True)
    assert "unknown key" not in caplog.text


def _readme_config_section() -> str:
    text = (REPO / "README.md").read_text()
    start = text.index("## Configuration: `pseidon.edn`")
    return text[start:text.index("\n## ", start + 10)]


def test_the_readme_table_is_the_declared_table():
    section = _readme_config_section()
    rows = [line for line in section.splitlines() if line.startswith("| `:")]
    documented = {re.match(r"\| `([^`]+)`", row).group(1) for row in rows}
    inert_line = next(line for line in section.split("\n\n") if line.startswith("Accepted but without effect"))
    documented_inert = {" ".join(n.split()) for n in re.findall(r"`(:[^`]+)`", inert_line)}
    declared = {name for name, _, key in config.walk() if key.field is not None}
    declared_inert = {name for name, _, key in config.walk() if key.field is None}
    assert documented == declared, (f"in the code, not in the README: {sorted(declared - documented)}; "
                                    f"in the README, not in the code: {sorted(documented - declared)}")
    assert documented_inert == declared_inert, (sorted(declared_inert - documented_inert),
                                                sorted(documented_inert - declared_inert))
    # and they say the same (`pseidon-dagster config keys` prints what belongs in the README)
    assert "\n".join(rows) + "\n" in config.markdown()
    assert " ".join(inert_line.split()) == " ".join(config.markdown_inert().split())


def test_settings_defaults_match_an_empty_config():
    assert dataclasses.replace(from_mapping({}), source=None) == config.Settings()


def test_keys_without_effect_say_why(caplog):
    caplog.set_level(logging.INFO, logger="pseidon_dagster")
    from_mapping({"jaas": "x", "redis-conf": {"heart-beat": 5}, "avro-schema-registry-max-schemas": 10})
    assert ":jaas has no effect here: use :kafka-config" in caplog.text
    assert ":redis-conf :heart-beat has no effect here" in caplog.text
    with pytest.raises(ConfigError, match=":avro-schema-registry-max-schemas must be >= 1"):
        from_mapping({"avro-schema-registry-max-schemas": 0})
