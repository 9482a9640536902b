"""DagnosticsNotifier's behaviour: recording before the listener, the bounded wait, the fallback on the spot, the
store being down or locked, wrapped notifiers failing, and DAG-level callbacks.  Alerts go to the fake Slack webhook
through Airflow's real SlackWebhookNotifier, so what is asserted is what a channel would receive."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time

import pytest
from airflow.providers.slack.notifications.slack import SlackNotifier
from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier
from airflow.sdk import BaseNotifier
from sqlalchemy import select

from dagnostics_provider.notifications import DagnosticsNotifier, diagnose
from dagnostics_provider.notifications.dagnostics import fill_default_message
from dagnostics_provider.plugins.listener import failure_listener, failure_record_from
from dagnostics_provider.store import failures
from dagnostics_provider.store.engine import session_scope
from dagnostics_provider.store.models import FailedTask
from dagnostics_provider.store.reviews import submit_review
from tests.notifications.conftest import (
    DAG_ID,
    ROOT_CAUSE,
    RUN_ID,
    STORED,
    TASK_ID,
    failure_context,
    raised,
    record,
    save_stored_analysis,
)

REFUSED = "port 5432 failed: Connection refused"


def _rows(url) -> list[FailedTask]:
    with session_scope(url) as session:
        return session.scalars(select(FailedTask).order_by(FailedTask.id)).all()


def _slack() -> SlackWebhookNotifier:
    return SlackWebhookNotifier(text="")


def _timed(notifier: DagnosticsNotifier, context) -> float:
    started = time.monotonic()
    notifier(context)
    return time.monotonic() - started


class Broken(BaseNotifier):
    def notify(self, context):
        raise RuntimeError("the pager service is down")


def test_the_failure_is_recorded_first_as_the_listener_would_record_it(store):
    """on_failure_callback runs before the listener: without this record, the analysis would never start."""
    exc = raised(ConnectionRefusedError(REFUSED))
    context = failure_context(exc)

    DagnosticsNotifier(wait_seconds=0)(context)

    (row,) = _rows(store)
    expected = failure_record_from("running", context["ti"], exc)
    assert (row.dag_id, row.task_id, row.run_id, row.try_number, row.map_index) == (DAG_ID, TASK_ID, RUN_ID, 1, -1)
    assert (row.error_type, row.error_text) == (expected.error_type, expected.error_text)
    assert row.operator == "PythonOperator"
    assert row.status.value == "pending"
    failure_listener.on_task_instance_failed("running", context["ti"], exc)  # the listener, right after
    assert len(_rows(store)) == 1


def test_an_analysis_stored_during_the_wait_is_the_one_sent(store, slack_webhook):
    def analyze_dag() -> None:  # the analyze DAG: picks the pending failure up and stores an LLM analysis
        deadline = time.monotonic() + 10
        while (failure := failures.find_failure(DAG_ID, TASK_ID, RUN_ID, 1)) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1)
        save_stored_analysis(failure.id)

    worker = threading.Thread(target=analyze_dag)
    worker.start()
    elapsed = _timed(DagnosticsNotifier(_slack(), wait_seconds=15), failure_context(raised(OSError(REFUSED))))
    worker.join()

    (posted,) = slack_webhook.posted()
    assert f"Root cause: {ROOT_CAUSE}" in posted["text"]
    assert "Analysis: stored analysis by ollama (llama3.2:3b); not reviewed yet" in posted["text"]
    assert "Confidence: 87%" in posted["text"]
    assert 1 <= elapsed < 8, "the notifier returns once the analysis is stored, not at the end of the wait"


def test_without_an_analysis_in_time_the_heuristic_is_sent_and_says_so(store, slack_webhook):
    elapsed = _timed(DagnosticsNotifier(_slack(), wait_seconds=1), failure_context(raised(OSError(REFUSED))))

    (posted,) = slack_webhook.posted()
    text = posted["text"]
    assert "Root cause: OSError: port 5432 failed: Connection refused" in text
    assert "Category: dependency_failure" in text
    assert "Analysis: heuristic analysis computed on the spot when the task failed" in text
    assert "Note: the stored analysis was not ready within 1 s" in text
    assert "Review (opens once the analysis is stored): https://" in text
    assert elapsed < 1 + diagnose.STORE_GRACE_SECONDS


def test_a_store_that_is_down_still_gets_the_alert_out(tmp_path, monkeypatch, slack_webhook, caplog):
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__SQL_ALCHEMY_CONN", f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}")

    with caplog.at_level(logging.WARNING):
        DagnosticsNotifier(_slack(), wait_seconds=5)(failure_context(raised(OSError(REFUSED))))

    (posted,) = slack_webhook.posted()
    assert "Root cause: OSError: port 5432 failed: Connection refused" in posted["text"]
    assert "Note: the DAGnostics store could not be reached (OperationalError: " in posted["text"]
    assert "Review" not in posted["text"]  # no failure id without a store
    assert "the store could not be read" in caplog.text


def test_a_locked_store_cannot_hold_the_alert_beyond_its_bound(store, slack_webhook, monkeypatch, tmp_path):
    monkeypatch.setattr(diagnose, "STORE_GRACE_SECONDS", 0.5)
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__SQLITE_BUSY_TIMEOUT_MS", "4000")
    lock = sqlite3.connect(tmp_path / "dagnostics.db", isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")  # another process holds the write lock; readers and writers wait
    try:
        elapsed = _timed(DagnosticsNotifier(_slack(), wait_seconds=0.5), failure_context(raised(OSError(REFUSED))))
    finally:
        lock.execute("ROLLBACK")
        lock.close()
        for thread in threading.enumerate():  # let the abandoned store work finish before the store goes away
            if thread.name == "dagnostics-alert-store":
                thread.join(10)

    (posted,) = slack_webhook.posted()
    assert "Note: the DAGnostics store could not be reached (StoreTimeout: " in posted["text"]
    assert "Analysis: heuristic analysis computed on the spot" in posted["text"]
    assert elapsed < 3


def test_a_failing_notifier_neither_stops_the_others_nor_reaches_the_task(store, slack_webhook, caplog):
    with caplog.at_level(logging.ERROR):
        DagnosticsNotifier([Broken(), _slack()], wait_seconds=0)(failure_context(raised(OSError(REFUSED))))

    assert len(slack_webhook.posted()) == 1
    assert "notifier Broken failed; the other notifiers still run" in caplog.text


def test_on_its_own_it_writes_the_diagnosis_to_the_task_log(store, caplog):
    save_stored_analysis(record())

    with caplog.at_level(logging.INFO):
        DagnosticsNotifier(wait_seconds=0)(failure_context(raised(OSError(REFUSED))))

    assert f"DAGnostics diagnosis of this failure:\nDAGnostics: {DAG_ID}.{TASK_ID} failed" in caplog.text
    assert f"Root cause: {ROOT_CAUSE}" in caplog.text


def test_a_reviewers_correction_is_what_the_alert_says(store, slack_webhook):
    failure_id = record()
    save_stored_analysis(failure_id)
    correction = STORED.model_dump() | {"category": "configuration_error", "confidence": 1.0}
    submit_review(failure_id, reviewer="rita", rating=4, correction=correction)

    DagnosticsNotifier(_slack(), wait_seconds=0)(failure_context(raised(OSError(REFUSED))))

    text = slack_webhook.posted()[0]["text"]
    assert "Category: configuration_error" in text
    assert "Confidence: 100%" in text
    assert "Analysis: stored analysis by ollama (llama3.2:3b); corrected by reviewer rita" in text


def test_an_unrecorded_retry_is_diagnosed_on_the_spot_without_waiting(store, slack_webhook):
    context = failure_context(raised(OSError(REFUSED)), state="up_for_retry")

    elapsed = _timed(DagnosticsNotifier(_slack(), wait_seconds=30), context)

    assert _rows(store) == []
    text = slack_webhook.posted()[0]["text"]
    assert "Note: DAGnostics has no record of this try (retries are recorded only with" in text
    assert elapsed < 5


def test_a_dag_callback_reads_what_the_tasks_listener_recorded(store, slack_webhook):
    """A DAG's on_failure_callback runs in the DAG processor: its context has the failed task but no exception."""
    save_stored_analysis(record())
    context = failure_context()
    del context["exception"]
    context["reason"] = "task_failure"

    DagnosticsNotifier(_slack(), wait_seconds=0)(context)

    assert len(_rows(store)) == 1
    assert f"Root cause: {ROOT_CAUSE}" in slack_webhook.posted()[0]["text"]


def test_a_dag_callback_records_nothing_itself(store, slack_webhook):
    context = failure_context()
    del context["exception"]

    elapsed = _timed(DagnosticsNotifier(_slack(), wait_seconds=30), context)

    assert _rows(store) == []
    assert "Note: DAGnostics has no record of this try" in slack_webhook.posted()[0]["text"]
    assert elapsed < 5


def test_a_context_without_a_task_instance_says_what_it_needs(store, slack_webhook, caplog):
    from airflow.sdk import DAG

    context = {"dag": DAG(DAG_ID, schedule=None), "run_id": RUN_ID, "reason": "timed_out"}

    with caplog.at_level(logging.INFO):
        DagnosticsNotifier(_slack(), wait_seconds=0)(context)

    text = slack_webhook.posted()[0]["text"]
    assert text.startswith(f"DAGnostics: DAG {DAG_ID} failed (run {RUN_ID})\nNo diagnosis: the callback context")
    assert "names no task instance ('ti')" in caplog.text


def test_log_text_is_never_rendered_as_a_template(store, slack_webhook):
    """The default message is a template that *refers* to the text; log text never becomes template source."""
    DagnosticsNotifier(_slack(), wait_seconds=0)(
        failure_context(raised(ValueError("bad row {{ 7 * 7 }} {{ var.value.warehouse_password }}")))
    )

    assert "bad row {{ 7 * 7 }} {{ var.value.warehouse_password }}" in slack_webhook.posted()[0]["text"]


@pytest.mark.parametrize(
    ("notifier", "field", "filled"),
    [
        (SlackWebhookNotifier(text=""), "text", "{{ dagnostics.text }}"),
        (SlackWebhookNotifier(text="Orders failed: {{ dagnostics.root_cause }}"), "text", None),
        (SlackNotifier(), "text", "{{ dagnostics.text }}"),  # left at the provider's placeholder text
        (SlackNotifier(text="Orders failed"), "text", None),
    ],
)
def test_only_message_fields_left_empty_get_the_diagnosis(notifier, field, filled):
    before = getattr(notifier, field)
    fill_default_message(notifier)
    assert getattr(notifier, field) == (filled or before)
