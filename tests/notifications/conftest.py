"""What the alert tests share: a migrated SQLite store, a task's failure callback context, a real SMTP server
on localhost (aiosmtpd) and a fake Slack incoming webhook.

The context is the one Airflow's task runner hands ``on_failure_callback``: a real ``RuntimeTaskInstance``'s
``get_template_context()`` plus ``exception``, which the runner adds before it calls the callbacks.
"""

from __future__ import annotations

import email
import email.policy
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from dagnostics_provider.analysis.outcome import AnalysisOutcome
from dagnostics_provider.analysis.schema import AnalysisResult
from dagnostics_provider.prompt_format import PROMPT_VERSION
from dagnostics_provider.store import failures
from dagnostics_provider.store.failures import FailureRecord
from tests.airflow_env import free_port
from tests.fakes.http_fake import FakeHTTPServer, Reply, Request

BASE_URL = "https://airflow.example.com"
DAG_ID, TASK_ID, RUN_ID = "orders_etl", "load_orders", "manual__2026-11-25T10:00:00+00:00"
ROOT_CAUSE = "psycopg2.OperationalError: connection to server at 10.0.0.5, port 5432 failed: Connection refused"
STORED = AnalysisResult(
    error_message=ROOT_CAUSE,
    category="dependency_failure",
    severity="high",
    confidence=0.87,
    reasoning="The warehouse database refused the connection: nothing listens on port 5432.",
    error_lines=[ROOT_CAUSE],
    suggested_actions=["Check that the warehouse database is up", "Retry the task once it accepts connections"],
)


@pytest.fixture
def store(sqlite_store) -> str:
    return sqlite_store


@pytest.fixture(autouse=True)
def airflow_settings(tmp_path, monkeypatch) -> Path:
    """Absolute links need ``[api] base_url``; task logs are read from this test's own log folder."""
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", BASE_URL)
    logs = tmp_path / "logs"
    logs.mkdir()
    monkeypatch.setenv("AIRFLOW__LOGGING__BASE_LOG_FOLDER", str(logs))
    return logs


def raised(exc: BaseException) -> BaseException:
    """The exception with a real traceback, as the task runner hands it to the callback."""
    try:
        raise exc
    except BaseException as caught:
        return caught


def failure_context(
    exception: BaseException | None = None, *, try_number: int = 1, state: str = "failed", map_index: int = -1
) -> dict[str, Any]:
    """The context of a task's ``on_failure_callback``: a real RuntimeTaskInstance's template context."""
    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.sdk import DAG
    from airflow.sdk.api.datamodels._generated import DagRun, DagRunState, DagRunType, TIRunContext
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    now = datetime(2026, 11, 25, 10, 5, tzinfo=timezone.utc)
    with DAG(DAG_ID, schedule=None, start_date=datetime(2026, 1, 1)):
        task = PythonOperator(task_id=TASK_ID, python_callable=lambda: None)
    dag_run = DagRun.model_construct(
        dag_id=DAG_ID, run_id=RUN_ID, logical_date=now, data_interval_start=now, data_interval_end=now,
        run_after=now, start_date=now, run_type=DagRunType.MANUAL, state=DagRunState.RUNNING, conf={},
        consumed_asset_events=[], partition_key=None, partition_date=None, clear_number=0, triggered_by=None,
    )  # fmt: skip
    ti = RuntimeTaskInstance.model_construct(
        id=uuid.uuid4(), dag_version_id=uuid.uuid4(), dag_id=DAG_ID, task_id=TASK_ID, run_id=RUN_ID,
        try_number=try_number, map_index=map_index, task=task, state=state, hostname="worker-7",
        start_date=now, end_date=now, max_tries=0,
        _ti_context_from_server=TIRunContext.model_construct(dag_run=dag_run, max_tries=0),
    )  # fmt: skip
    context = ti.get_template_context()
    context["exception"] = exception
    return context


def write_task_log(logs: Path, events: list[dict[str, Any]], *, try_number: int = 1) -> Path:
    """An Airflow 3 task log (JSON lines) where the local log reader looks for it."""
    path = logs / f"dag_id={DAG_ID}" / f"run_id={RUN_ID}" / f"task_id={TASK_ID}" / f"attempt={try_number}.log"
    path.parent.mkdir(parents=True)
    lines = [{"timestamp": "2026-11-25T10:04:59.000000Z", "level": "info", "logger": "task", **e} for e in events]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def record(try_number: int = 1) -> int:
    """The failed try as the listener records it; returns its id."""
    return failures.record_failure(
        FailureRecord(dag_id=DAG_ID, task_id=TASK_ID, run_id=RUN_ID, try_number=try_number, operator="PythonOperator")
    )


def save_stored_analysis(failure_id: int, result: AnalysisResult = STORED) -> None:
    """What the analyze DAG stores after an LLM answered."""
    outcome = AnalysisOutcome(result=result, analyzer="ollama", prompt_version=PROMPT_VERSION, model="llama3.2:3b")
    failures.save_analysis(
        failure_id, outcome, log_excerpt=ROOT_CAUSE, log_reference=None, fingerprint="fp", error_type=None
    )


# ------------------------------------------------------------------------------------------------------ SMTP server


@dataclass
class Mailbox:
    """An aiosmtpd handler that keeps every message it accepts."""

    messages: list[EmailMessage] = field(default_factory=list)
    recipients: list[list[str]] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope) -> str:
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server(monkeypatch) -> Iterator[Mailbox]:
    """A real SMTP server on localhost and the ``smtp_default`` connection pointing at it."""
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    extra = {"disable_ssl": True, "disable_tls": True, "from_email": "airflow@example.com", "retry_limit": 0}
    connection = {"conn_type": "smtp", "host": "127.0.0.1", "port": port, "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps(connection))
    try:
        yield mailbox
    finally:
        controller.stop()


def html_body(message: EmailMessage) -> str:
    return message.get_body(("html",)).get_content()


# -------------------------------------------------------------------------------------------- Slack incoming webhook

WEBHOOK_PATH = "/services/T0000/B0000/XXXXXXXX"


class FakeSlackWebhook(FakeHTTPServer):
    """Answers like a Slack incoming webhook: 200 and ``ok``."""

    def handle(self, request: Request) -> Reply:
        return Reply(200, b"ok", content_type="text/plain")

    def posted(self) -> list[dict[str, Any]]:
        return [r.json for r in self.requests_to(WEBHOOK_PATH) if r.method == "POST"]


@pytest.fixture
def slack_webhook(monkeypatch) -> Iterator[FakeSlackWebhook]:
    """The fake webhook and ``slack_default`` (SlackWebhookNotifier's connection): the webhook URL as password."""
    with FakeSlackWebhook() as fake:
        connection = {"conn_type": "slackwebhook", "password": fake.url + WEBHOOK_PATH}
        monkeypatch.setenv("AIRFLOW_CONN_SLACK_DEFAULT", json.dumps(connection))
        yield fake
