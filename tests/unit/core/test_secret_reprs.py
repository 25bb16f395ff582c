"""Every object that holds a secret masks it: repr, str and the errors built from it never show the value."""
from __future__ import annotations

import traceback
import uuid

import pytest

from pseidon_dagster.core import config as config_mod
from pseidon_dagster.core.hive import CatalogError, HiveCatalog, catalog_for, parse_hive_url
from pseidon_dagster.core.logtable import LogConfigError, validate_row
from pseidon_dagster.core.secrets import SecretError, resolver_for

SECRETS = {name: f"{name}-{uuid.uuid4().hex[:12]}" for name in (
    "db_pwd", "redis_pwd", "vault_token", "vault_secret_id", "vault_role_id", "sasl_password", "jaas",
    "ssl_key_password", "registry_pwd", "registry_auth_pwd", "registry_key_pwd", "hive_pwd", "url_db_pwd")}


def everything_shown(*objects) -> str:
    """Everything an object or error shows: repr, str, and for an error its formatted traceback."""
    out = []
    for o in objects:
        out += [repr(o), str(o)]
        if isinstance(o, BaseException):
            out.append("".join(traceback.format_exception(o)))
    return "\n".join(out)


def _assert_clean(text: str) -> None:
    for name, value in SECRETS.items():
        assert value not in text, f"{name} leaked"


def _settings():
    s = SECRETS
    return config_mod.from_mapping({
        "etl-db-host": "//127.0.0.1:3306/pseidon", "etl-db-user": "pseidon", "etl-db-pwd": s["db_pwd"],
        "redis-conf": {"host": ["127.0.0.1:7000", "127.0.0.1:7001"], "password": s["redis_pwd"]},
        "kafka-config": {"security.protocol": "SASL_SSL", "sasl.username": "etl", "sasl.password": s["sasl_password"],
                         "sasl.jaas.config": f'x required password="{s["jaas"]}";',
                         "ssl.key.password": s["ssl_key_password"]},
        "avro-schema-registry-url": f"http://etl:{s['registry_pwd']}@127.0.0.1:8081",
        "vault": {"addr": "http://127.0.0.1:1", "token": s["vault_token"], "role-id": s["vault_role_id"],
                  "secret-id": s["vault_secret_id"], "row-prefixes": ["secret/pseidon/hive"]},
    })


def test_settings_and_their_parts_mask_secrets():
    settings = _settings()
    assert settings.etl_db_pwd == SECRETS["db_pwd"] and settings.redis.password == SECRETS["redis_pwd"]
    assert settings.kafka_config["sasl.password"] == SECRETS["sasl_password"]  # still usable as a plain dict
    assert settings.vault.token == SECRETS["vault_token"]
    shown = everything_shown(settings, settings.redis, settings.kafka_config, settings.vault, settings.writer,
                        settings.hive, settings.vault.with_env({}), resolver_for(settings.vault, env={}))
    _assert_clean(shown)
    assert "'sasl.username': 'etl'" in shown and "addr='http://127.0.0.1:1'" in shown  # the rest is shown


def test_a_url_form_etl_db_host_is_masked():
    s = config_mod.from_mapping({"etl-db-host": f"mysql+pymysql://u:{SECRETS['url_db_pwd']}@127.0.0.1/db"})
    _assert_clean(everything_shown(s))


def test_a_bad_etl_db_host_does_not_show_its_password():
    with pytest.raises(config_mod.ConfigError) as e:
        config_mod.from_mapping({"etl-db-host": f"//u:{SECRETS['url_db_pwd']}@127.0.0.1:3306/db"})
    _assert_clean(everything_shown(e.value))


def test_log_spec_catalog_and_target_mask_the_hive_password(tmp_path):
    settings = config_mod.from_mapping({"data-dir": str(tmp_path)})
    spec = validate_row(dict(log="clicks", format="txt:ts=0", output_format="gzip", base_partition="lake",
                             log_partition="raw/clicks", hive_url="jdbc:hive2://127.0.0.1:10000/logs;auth=noSasl",
                             hive_user="etl", hive_password=SECRETS["hive_pwd"]), settings)
    cat, db, table = catalog_for(settings, spec)
    assert cat._password == SECRETS["hive_pwd"]
    _assert_clean(everything_shown(spec, cat, cat.target, HiveCatalog(parse_hive_url(spec.hive_url), "etl",
                                                                 SECRETS["hive_pwd"])))


def test_errors_about_rows_with_secrets_do_not_show_them(tmp_path):
    settings = config_mod.from_mapping({"data-dir": str(tmp_path)})
    pw = SECRETS["hive_pwd"]
    errors = []
    for bad in (dict(hive_url=f"//etl:{pw}@127.0.0.1:10000/default"),
                dict(hive_url=f"jdbc:hive2://127.0.0.1:10000/default;password={pw}"),
                dict(hive_url="//127.0.0.1:10000/default", hive_password=f"vault:secret/x#{pw}"),
                dict(base_partition=f"s3://etl:{pw}@bucket/lake"),
                dict(output_format="snappy", hive_password=pw)):
        row = {**dict(log="clicks", format="txt:ts=0", output_format="gzip", base_partition="lake",
                      log_partition="raw/clicks"), **bad}
        with pytest.raises((LogConfigError, CatalogError, SecretError)) as e:
            validate_row(row, settings)
        errors.append(e.value)
    _assert_clean(everything_shown(*errors))


def test_the_schema_registry_client_and_its_errors_mask_the_credentials():
    """From the URL's user-info or from :avro-schema-registry-config: never in a repr, a reason or an error."""
    from pseidon_dagster.core.formats import MessageError, RegistryUnavailable, build_parser

    s = SECRETS
    by_url = _settings()
    by_conf = config_mod.from_mapping({
        "avro-schema-registry-url": "http://127.0.0.1:1",
        "avro-schema-registry-config": {"basic.auth.user.info": f"etl:{s['registry_auth_pwd']}",
                                        "ssl.certificate.location": "/etc/pseidon/registry-client.pem",
                                        "ssl.key.password": s["registry_key_pwd"]}})
    shown = [by_conf, by_conf.avro_schema_registry_config]
    for settings in (by_url, by_conf):
        p = build_parser("avro-txt:ts=0;msg=1", schema_registry_url=settings.avro_schema_registry_url,
                         schema_registry_config=settings.avro_schema_registry_config)
        shown += [p, p.registry]
    p = build_parser("avro-txt:ts=0;msg=1", schema_registry_url=by_url.avro_schema_registry_url.replace(":8081", ":1"))
    with pytest.raises(RegistryUnavailable) as e:  # nothing listens on port 1
        p.line(b"\x00\x00\x00\x00\x01\x02")
    shown += [e.value, p.registry]
    with pytest.raises(MessageError) as e:
        p.line(b"\x01")
    shown.append(e.value)
    _assert_clean(everything_shown(*shown))
