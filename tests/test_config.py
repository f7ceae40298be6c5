"""Configuration: one schema, four layers, one clear sentence on any mistake."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from core.config import ENVIRONMENT, ConfigError, Settings, load_settings, read_yaml

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_config_yaml_lists_every_setting_with_the_schema_default():
    assert read_yaml(ROOT / "config.yaml") == Settings().model_dump()


def test_every_contract_environment_name_is_understood():
    contract = {
        "SECRET_KEY",
        "MONGODB_URI",
        "FRONTEND_URL",
        "EMAIL_BACKEND",
        "EMAIL_HOST",
        "EMAIL_PORT",
        "EMAIL_HOST_USER",
        "EMAIL_HOST_PASSWORD",
        "EMAIL_USE_TLS",
        "DEFAULT_FROM_EMAIL",
        "MEDIA_ROOT",
        "TRANSCODE_WORKERS",
        "MAX_UPLOAD_MB",
        "HOST",
        "PORT",
        "DEBUG",
        "ADMIN_EMAIL",
        "ADMIN_PASSWORD",
    }
    assert contract <= set(ENVIRONMENT)


def test_yaml_overrides_defaults_env_overrides_yaml_and_flags_override_env(tmp_path):
    path = write(tmp_path, "server:\n  port: 9001\n  host: 0.0.0.0\nmedia:\n  max_upload_mb: 10\n")
    settings = load_settings(
        path, environ={"PORT": "9002", "SECRET_KEY": "k"}, overrides={"server": {"port": 9003}}
    )
    assert settings.server.port == 9003
    assert settings.server.host == "0.0.0.0"
    assert settings.media.max_upload_mb == 10
    assert settings.server.secret_key == "k"
    assert settings.email.backend == "console"

    settings = load_settings(path, environ={"PORT": "9002"})
    assert settings.server.port == 9002


def test_environment_strings_become_typed_values(tmp_path):
    settings = load_settings(
        None,
        environ={"DEBUG": "0", "SECRET_KEY": "s", "EMAIL_USE_TLS": "true", "TRANSCODE_WORKERS": "3"},
    )
    assert settings.server.debug is False
    assert settings.email.use_tls is True
    assert settings.transcode.workers == 3


def test_an_unknown_key_stops_the_start_naming_it(tmp_path):
    path = write(tmp_path, "server:\n  prot: 9000\n")
    with pytest.raises(ConfigError, match=r"unknown setting 'server\.prot'"):
        load_settings(path, environ={})


def test_an_unknown_section_stops_the_start_naming_it(tmp_path):
    path = write(tmp_path, "servr:\n  port: 9000\n")
    with pytest.raises(ConfigError, match="unknown setting 'servr'"):
        load_settings(path, environ={})


def test_a_wrong_type_stops_the_start_naming_the_key(tmp_path):
    path = write(tmp_path, "server:\n  port: eighty\n")
    with pytest.raises(ConfigError, match=r"setting 'server\.port'.*integer.*'eighty'"):
        load_settings(path, environ={})


def test_a_wrong_type_from_the_environment_names_the_key():
    with pytest.raises(ConfigError, match=r"setting 'email\.backend'"):
        load_settings(None, environ={"EMAIL_BACKEND": "carrier-pigeon"})


def test_broken_yaml_is_one_sentence(tmp_path):
    path = write(tmp_path, "server: [unclosed\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_settings(path, environ={})


def test_a_yaml_file_that_is_not_a_mapping_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="mapping of sections"):
        load_settings(write(tmp_path, "- a\n- b\n"), environ={})


def test_a_missing_config_file_means_defaults(tmp_path):
    settings = load_settings(tmp_path / "absent.yaml", environ={"SECRET_KEY": "k"})
    assert settings.server.port == 8000


def test_debug_off_without_secret_key_stops_the_start():
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        load_settings(None, environ={"DEBUG": "0"})


def test_debug_without_secret_key_makes_a_random_one_and_warns(caplog):
    with caplog.at_level(logging.WARNING):
        first = load_settings(None, environ={})
        second = load_settings(None, environ={})
    assert first.server.secret_key and second.server.secret_key
    assert first.server.secret_key != second.server.secret_key
    assert "SECRET_KEY is not set" in caplog.text
    assert first.server.secret_key not in caplog.text


def test_admin_email_without_password_is_refused():
    with pytest.raises(ConfigError, match="ADMIN_EMAIL and ADMIN_PASSWORD go together"):
        load_settings(None, environ={"SECRET_KEY": "k", "ADMIN_EMAIL": "a@b.c"})


def test_role_comes_from_the_environment_and_a_flag_overrides_it():
    import server

    settings = load_settings(None, environ={"ROLE": "api", "MONGODB_URI": "mongodb://db:27017/v"})
    assert settings.server.role == "api"
    args = server.parse_args(["--role", "transcode"])
    flagged = load_settings(
        None,
        environ={"ROLE": "api", "MONGODB_URI": "mongodb://db:27017/v"},
        overrides=server.flag_overrides(args),
    )
    assert flagged.server.role == "transcode"


def test_a_split_role_on_the_in_memory_database_is_refused_with_a_sentence():
    with pytest.raises(
        ConfigError, match="ROLE=transcode works with other processes through a shared MongoDB"
    ):
        load_settings(None, environ={"ROLE": "transcode"})


def test_an_unknown_role_is_refused():
    with pytest.raises(ConfigError, match="role"):
        load_settings(None, environ={"ROLE": "everything", "MONGODB_URI": "mongodb://db:27017/v"})


def test_trusted_proxies_come_from_the_environment_comma_separated_and_must_be_ip_addresses():
    settings = load_settings(None, environ={"TRUSTED_PROXIES": "172.30.80.80, ::1"})
    assert settings.server.trusted_proxies == ["172.30.80.80", "::1"]
    with pytest.raises(ConfigError, match="'nginx' is not an IP address"):
        load_settings(None, environ={"TRUSTED_PROXIES": "nginx"})


def test_av1_off_written_unquoted_in_yaml_means_off(tmp_path):
    path = write(tmp_path, "transcode:\n  av1: off\n")  # YAML 1.1 reads an unquoted off as false
    assert load_settings(path, environ={"SECRET_KEY": "k"}).transcode.av1 == "off"
