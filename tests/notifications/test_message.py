"""The alert's renderings: bounded whatever the log holds, escaped for HTML and Slack, and harmless in the task log
that the analysis later reads."""

from __future__ import annotations

import json

from dagnostics_provider.analysis.extraction import extract_text
from dagnostics_provider.notifications.alert import (
    ACTION_CHARS,
    MAX_ACTIONS,
    ON_THE_SPOT,
    ROOT_CAUSE_CHARS,
    STORED,
    Alert,
    AlertLinks,
)
from dagnostics_provider.notifications.message import SUBJECT_CHARS, provenance

LINKS = AlertLinks(
    task_log="https://airflow.example.com/dags/etl/runs/r1/tasks/load?try_number=1",
    diagnosis_tab="https://airflow.example.com/dags/etl/runs/r1/tasks/load/plugin/dagnostics-diagnosis",
    review="https://airflow.example.com/pluginsv2/dagnostics/review/7",
)


def _alert(**values) -> Alert:
    base = {
        "dag_id": "etl",
        "task_id": "load",
        "run_id": "r1",
        "try_number": 1,
        "source": STORED,
        "root_cause": "ConnectionRefusedError: [Errno 111] Connection refused",
        "category": "dependency_failure",
        "severity": "high",
        "confidence": 0.9,
        "analyzer": "ollama",
        "model": "llama3.2:3b",
        "links": LINKS,
        "failure_id": 7,
        "analyzed": True,
    }
    return Alert(**(base | values))


def test_a_huge_root_cause_is_bounded_everywhere():
    alert = _alert(
        root_cause="x" * 100_000,
        reasoning="y" * 100_000,
        suggested_actions=tuple("z" * 10_000 for _ in range(50)),
    )
    assert len(alert.root_cause) == ROOT_CAUSE_CHARS and alert.root_cause.endswith("…")
    assert len(alert.suggested_actions) == MAX_ACTIONS
    assert all(len(action) == ACTION_CHARS for action in alert.suggested_actions)
    assert len(alert.subject) == SUBJECT_CHARS
    assert len(alert.text) < 5_000
    assert len(alert.html) < 6_000


def test_control_characters_and_line_breaks_cannot_forge_lines():
    alert = _alert(root_cause="boom\r\nCategory: none\x1b[31m\x00", reasoning="first\r\nsecond\x07")
    assert alert.root_cause == "boom Category: none[31m"
    assert alert.reasoning == "first\nsecond"
    assert "\nCategory: none" not in alert.plain
    assert "\n" not in alert.subject


def test_html_escapes_every_value_and_link():
    alert = _alert(
        root_cause='<img src=x onerror="alert(1)">',
        reasoning="a <b>bold</b> claim",
        suggested_actions=("run <script>x()</script>",),
        reviewer="<i>eve</i>",
        review_status="accepted",
        links=AlertLinks(task_log='https://a.example/"><script>', diagnosis_tab="https://a.example/d"),
    )
    html = str(alert.html)
    assert "<img" not in html and "<script>" not in html and "<b>" not in html and "<i>" not in html
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html
    assert 'href="https://a.example/&quot;&gt;&lt;script&gt;"' in html
    assert "confirmed by reviewer &lt;i&gt;eve&lt;/i&gt;" in html


def test_plain_text_is_not_escaped_but_slack_text_is():
    alert = _alert(root_cause="a < b && <!here>")
    assert "Root cause: a < b && <!here>" in alert.plain
    assert "Root cause: a &lt; b &amp;&amp; &lt;!here&gt;" in alert.text


def test_provenance_says_who_analysed_and_who_reviewed():
    assert provenance(_alert()) == "stored analysis by ollama (llama3.2:3b); not reviewed yet"
    assert provenance(_alert(review_status="accepted", reviewer="rita")).endswith("; confirmed by reviewer rita")
    assert provenance(_alert(analyzer="heuristic", model=None, fallback_reason="LLM timed out after 60 s")) == (
        "stored heuristic analysis (the LLM's answer was not used: LLM timed out after 60 s); not reviewed yet"
    )
    assert provenance(_alert(source=ON_THE_SPOT, analyzer="heuristic")) == (
        "heuristic analysis computed on the spot when the task failed"
    )


def test_as_dict_is_json_for_webhooks():
    values = json.loads(json.dumps(_alert(suggested_actions=("Check the warehouse",)).as_dict()))
    assert values["root_cause"] == "ConnectionRefusedError: [Errno 111] Connection refused"
    assert values["links"]["review"] == LINKS.review
    assert values["suggested_actions"] == ["Check the warehouse"]
    assert values["category_definition"].startswith("a service, external job")


def test_the_alert_written_to_the_task_log_does_not_change_its_analysis():
    """The notifier logs the diagnosis into the failed try's own log, which the analysis DAG reads afterwards."""

    def line(level: str, event: str) -> str:
        return json.dumps({"timestamp": "2026-11-25T10:05:00Z", "level": level, "event": event, "logger": "task"})

    failure = [
        line("info", "Loading orders"),
        line("error", "psycopg2.OperationalError: connection to server at 10.0.0.5 failed: Connection refused"),
        line("error", "Task failed with exception"),
    ]
    alert = _alert(root_cause="psycopg2.OperationalError: connection to server at 10.0.0.5 failed: Connection refused")
    logged = line("info", f"DAGnostics diagnosis of this failure:\n{alert.plain}")

    before = extract_text("\n".join(failure) + "\n")
    after = extract_text("\n".join([*failure, logged]) + "\n")
    assert after.root_cause.text == before.root_cause.text
    assert after.best.count == before.best.count == 1
