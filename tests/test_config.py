from __future__ import annotations

import pytest

from dagnostics_provider import config
from dagnostics_provider.store import engine


def test_defaults_apply_without_provider_config(monkeypatch):
    monkeypatch.delenv("AIRFLOW__DAGNOSTICS__SQLITE_BUSY_TIMEOUT_MS", raising=False)
    assert config.get_int("sqlite_busy_timeout_ms") == 30000
    assert config.get("store_conn_id") == "dagnostics_default"


def test_environment_variables_override(monkeypatch):
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__SQLITE_BUSY_TIMEOUT_MS", "1234")
    assert config.get_int("sqlite_busy_timeout_ms") == 1234


def test_bad_values_name_the_option(monkeypatch):
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__SQLITE_BUSY_TIMEOUT_MS", "soon")
    with pytest.raises(ValueError, match="sqlite_busy_timeout_ms must be an integer"):
        config.get_int("sqlite_busy_timeout_ms")
    with pytest.raises(KeyError, match="no option 'nope'"):
        config.get("nope")


def test_store_defaults_to_sqlite_under_airflow_home(monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    monkeypatch.delenv("AIRFLOW__DAGNOSTICS__SQL_ALCHEMY_CONN", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_DAGNOSTICS_DEFAULT", raising=False)
    assert engine.resolve_url() == f"sqlite:///{tmp_path / 'dagnostics.db'}"


def test_store_from_airflow_connection(monkeypatch):
    monkeypatch.delenv("AIRFLOW__DAGNOSTICS__SQL_ALCHEMY_CONN", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_DAGNOSTICS_DEFAULT", "postgres://etl:s3cret@db.internal:5433/diag")
    assert engine.resolve_url() == "postgresql+psycopg2://etl:s3cret@db.internal:5433/diag"


def test_explicit_url_wins_over_connection(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_DAGNOSTICS_DEFAULT", "postgres://etl:s3cret@db.internal:5433/diag")
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__SQL_ALCHEMY_CONN", "sqlite:////tmp/explicit.db")
    assert engine.resolve_url() == "sqlite:////tmp/explicit.db"


def test_unsupported_connection_type_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("AIRFLOW__DAGNOSTICS__SQL_ALCHEMY_CONN", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_DAGNOSTICS_DEFAULT", "http://example.invalid")
    with pytest.raises(engine.StoreConfigurationError, match="supports postgres, mysql and sqlite"):
        engine.resolve_url()


def test_every_option_is_documented():
    from pathlib import Path

    documented = (Path(__file__).resolve().parents[1] / "docs" / "configuration.md").read_text()
    missing = [name for name in config.OPTIONS if f"| `{name}` |" not in documented]
    assert not missing, f"docs/configuration.md does not document: {missing}"
