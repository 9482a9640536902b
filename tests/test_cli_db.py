from __future__ import annotations

from dagnostics_provider.cli.main import main
from dagnostics_provider.store.migrate import head_revision


def test_db_migrate_then_check(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'store' / 'dagnostics.db'}"
    assert main(["db", "check", "--url", url]) == 1
    assert "needs `dagnostics db migrate`" in capsys.readouterr().out
    assert main(["db", "migrate", "--url", url]) == 0
    assert main(["db", "check", "--url", url]) == 0
    assert f"current revision: {head_revision()}" in capsys.readouterr().out


def test_db_downgrade_requires_confirmation(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'dagnostics.db'}"
    main(["db", "migrate", "--url", url])
    assert main(["db", "downgrade", "--url", url]) == 2
    assert "without --yes" in capsys.readouterr().out
    assert main(["db", "check", "--url", url]) == 0


def test_unreachable_store_is_a_clear_error_without_the_password(capsys, monkeypatch):
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__SQL_ALCHEMY_CONN", "postgresql+psycopg2://u:hunter2@127.0.0.1:1/db")
    assert main(["db", "check"]) == 1
    captured = capsys.readouterr()
    assert "dagnostics: store error:" in captured.err
    assert "hunter2" not in captured.out + captured.err
    assert "postgresql+psycopg2://u:***@127.0.0.1:1/db" in captured.out
