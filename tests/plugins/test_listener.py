from __future__ import annotations

import logging
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from dagnostics_provider.plugins.dagnostics_plugin import DagnosticsPlugin
from dagnostics_provider.plugins.listener import failure_listener
from dagnostics_provider.store.engine import session_scope
from dagnostics_provider.store.migrate import upgrade
from dagnostics_provider.store.models import FailedTask


@pytest.fixture
def store(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'dagnostics.db'}"
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__SQL_ALCHEMY_CONN", url)
    upgrade(url)
    return url


def _ti(state="failed", try_number=1, **extra):
    return SimpleNamespace(
        dag_id="etl",
        task_id="load",
        run_id="manual__1",
        map_index=-1,
        try_number=try_number,
        state=state,
        hostname="worker-7",
        start_date=datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc),
        end_date=datetime(2026, 11, 25, 10, 5, tzinfo=timezone.utc),
        task=SimpleNamespace(task_type="PythonOperator"),
        **extra,
    )


def _raised(message: str) -> BaseException:
    try:
        raise ConnectionRefusedError(message)
    except ConnectionRefusedError as exc:
        return exc


def _rows(url):
    with session_scope(url) as session:
        return session.scalars(select(FailedTask).order_by(FailedTask.id)).all()


def test_plugin_registers_the_listener():
    assert failure_listener in DagnosticsPlugin.listeners


def test_final_failure_is_recorded_with_its_traceback(store):
    failure_listener.on_task_instance_failed("running", _ti(), _raised("port 5432 failed: Connection refused"))
    (row,) = _rows(store)
    assert (row.dag_id, row.task_id, row.run_id, row.try_number, row.map_index) == ("etl", "load", "manual__1", 1, -1)
    assert (row.operator, row.hostname, row.task_state, row.marked_by_user) == (
        "PythonOperator",
        "worker-7",
        "failed",
        False,
    )
    assert row.error_type == "ConnectionRefusedError"
    assert row.error_text.startswith("Traceback (most recent call last):")
    assert row.error_text.rstrip().endswith("ConnectionRefusedError: port 5432 failed: Connection refused")
    assert row.status.value == "pending"


def test_retries_are_skipped_unless_configured(store, monkeypatch):
    failure_listener.on_task_instance_failed("running", _ti(state="up_for_retry"), _raised("boom"))
    assert _rows(store) == []
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__RECORD_RETRIES", "True")
    failure_listener.on_task_instance_failed("running", _ti(state="up_for_retry"), _raised("boom"))
    failure_listener.on_task_instance_failed("running", _ti(try_number=2), _raised("boom"))
    assert [(r.try_number, r.task_state) for r in _rows(store)] == [(1, "up_for_retry"), (2, "failed")]


def test_marked_failed_by_hand(store):
    message = "TaskInstance's state was manually set to `failed`."
    failure_listener.on_task_instance_failed(None, _ti(), message)
    (row,) = _rows(store)
    assert row.marked_by_user is True
    assert row.error_type is None
    assert row.error_text == message


def test_recording_twice_keeps_one_row(store):
    failure_listener.on_task_instance_failed("running", _ti(), _raised("boom"))
    failure_listener.on_task_instance_failed(None, _ti(), "marked by hand")
    assert len(_rows(store)) == 1


def test_huge_tracebacks_are_bounded_keeping_the_final_exception(store, monkeypatch):
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__MAX_ERROR_CHARS", "2000")
    failure_listener.on_task_instance_failed("running", _ti(), _raised("x" * 100_000 + " THE END"))
    (row,) = _rows(store)
    assert len(row.error_text) < 2200
    assert "characters cut by DAGnostics" in row.error_text
    assert row.error_text.rstrip().endswith("THE END")


def test_store_errors_never_reach_the_task(monkeypatch, caplog, tmp_path):
    # A store that was never migrated: the insert fails, the listener logs and returns normally.
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__SQL_ALCHEMY_CONN", f"sqlite:///{tmp_path / 'empty.db'}")
    with caplog.at_level(logging.ERROR):
        failure_listener.on_task_instance_failed("running", _ti(), _raised("boom"))
    assert "could not record the failed task" in caplog.text


def test_broken_task_instance_never_reaches_the_task(store, caplog):
    with caplog.at_level(logging.ERROR):
        failure_listener.on_task_instance_failed("running", object(), _raised("boom"))
    assert "could not record the failed task" in caplog.text
