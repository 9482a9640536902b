"""The Slack alert end to end: Airflow's SlackWebhookNotifier, wrapped in DagnosticsNotifier, posts to a fake Slack
incoming webhook (a local HTTP server), which is where these tests read the message."""

from __future__ import annotations

from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

from dagnostics_provider.notifications import DagnosticsNotifier
from tests.notifications.conftest import (
    BASE_URL,
    ROOT_CAUSE,
    failure_context,
    raised,
    record,
    save_stored_analysis,
)


def test_the_slack_message_carries_the_stored_diagnosis_and_its_links(store, slack_webhook):
    failure_id = record()
    save_stored_analysis(failure_id)

    DagnosticsNotifier(SlackWebhookNotifier(text=""), wait_seconds=5)(failure_context(raised(OSError("refused"))))

    (posted,) = slack_webhook.posted()
    lines = posted["text"].splitlines()
    print("\n--- posted to the Slack webhook ---\n" + posted["text"] + "\n---")
    assert lines[0] == "DAGnostics: orders_etl.load_orders failed (try 1, run manual__2026-11-25T10:00:00+00:00)"
    assert f"Root cause: {ROOT_CAUSE}" in lines
    assert "Confidence: 87%" in lines
    assert lines[-3].startswith(f"Task log: {BASE_URL}/dags/orders_etl/runs/")
    assert lines[-3].endswith("/tasks/load_orders?try_number=1")
    assert lines[-2].endswith("/tasks/load_orders/plugin/dagnostics-diagnosis")
    assert lines[-1] == f"Review: {BASE_URL}/pluginsv2/dagnostics/review/{failure_id}"


def test_a_log_line_cannot_ping_the_channel_or_add_a_link(store, slack_webhook):
    hostile = "<!channel> disk full & <https://evil.example|open the runbook>"

    DagnosticsNotifier(SlackWebhookNotifier(text=""), wait_seconds=0)(failure_context(raised(OSError(hostile))))

    text = slack_webhook.posted()[0]["text"]
    assert "Root cause: OSError: &lt;!channel&gt; disk full &amp; &lt;https://evil.example|open the runbook&gt;" in text
    assert "<" not in text and ">" not in text


def test_a_json_webhook_can_take_the_fields(store, slack_webhook):
    """Any notifier with templated fields can carry the diagnosis as data, e.g. Slack blocks."""
    save_stored_analysis(record())
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": "{{ dagnostics.subject }}"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "{{ dagnostics.text }}"}},
    ]

    DagnosticsNotifier(SlackWebhookNotifier(text="fallback", blocks=blocks), wait_seconds=0)(
        failure_context(raised(OSError("refused")))
    )

    (posted,) = slack_webhook.posted()
    assert posted["text"] == "fallback"
    assert posted["blocks"][0]["text"]["text"].startswith("[DAGnostics] orders_etl.load_orders failed: ")
    assert f"Root cause: {ROOT_CAUSE}" in posted["blocks"][1]["text"]["text"]
