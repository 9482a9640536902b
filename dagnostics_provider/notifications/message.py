"""The renderings of an :class:`~dagnostics_provider.notifications.alert.Alert`: plain text, Slack text, HTML, subject.

The values come from task logs, so they are written by whatever the task ran: the HTML rendering escapes every one of
them (a ``<script>`` line stays text), and the Slack text escapes the three characters Slack's mrkdwn gives meaning
to, so a log line cannot add a link or an ``<!channel>`` mention.  Both are built from the same lines as the plain
text, so every channel says the same thing.
"""

from __future__ import annotations

from html import escape

from markupsafe import Markup

from dagnostics_provider.notifications.alert import NONE, ON_THE_SPOT, Alert, one_line

SUBJECT_CHARS = 150  # also the most a Slack header block takes
_REVIEWED = {"accepted": "confirmed", "corrected": "corrected"}


def headline(alert: Alert) -> str:
    if alert.task_id is None:
        return f"DAGnostics: DAG {alert.dag_id or '?'} failed (run {alert.run_id or '?'})"
    return f"DAGnostics: {alert.task_label} failed (try {alert.try_number}, run {alert.run_id})"


def provenance(alert: Alert) -> str:
    """Who made the analysis and whether a person has looked at it."""
    if alert.source == ON_THE_SPOT:
        return "heuristic analysis computed on the spot when the task failed"
    if alert.analyzer == "heuristic":
        made = "stored heuristic analysis"
        if alert.fallback_reason:
            made += f" (the LLM's answer was not used: {alert.fallback_reason})"
    else:
        made = f"stored analysis by {alert.analyzer}" + (f" ({alert.model})" if alert.model else "")
    if alert.review_status in _REVIEWED:
        return f"{made}; {_REVIEWED[alert.review_status]} by reviewer {alert.reviewer}"
    return f"{made}; not reviewed yet"


def _facts(alert: Alert) -> list[tuple[str, str]]:
    """The labelled one-line facts, in the order every rendering shows them."""
    if alert.source == NONE:
        return [("No diagnosis", alert.note or "")]
    category = alert.category + (f" ({alert.category_definition})" if alert.category_definition else "")
    facts = [
        ("Root cause", alert.root_cause),
        ("Category", category),
        ("Severity", alert.severity),
        ("Confidence", alert.confidence_percent),
        ("Analysis", provenance(alert)),
    ]
    if alert.note:
        facts.append(("Note", alert.note))
    return facts


def _links(alert: Alert) -> list[tuple[str, str]]:
    if alert.links is None:
        return []
    links = [("Task log", alert.links.task_log), ("Diagnosis", alert.links.diagnosis_tab)]
    if alert.links.review is not None:
        label = "Review" if alert.analyzed else "Review (opens once the analysis is stored)"
        links.append((label, alert.links.review))
    return links


def plain(alert: Alert) -> str:
    """Plain text, nothing escaped."""
    lines = [headline(alert)]
    lines += [f"{label}: {value}" for label, value in _facts(alert)]
    if alert.reasoning:
        lines.append("Why: " + alert.reasoning.replace("\n", "\n  "))
    if alert.suggested_actions:
        lines.append("Suggested actions:")
        lines += [f"  - {action}" for action in alert.suggested_actions]
    lines += [f"{label}: {url}" for label, url in _links(alert)]
    return "\n".join(lines)


def slack_text(alert: Alert) -> str:
    """:func:`plain` with ``&``, ``<`` and ``>`` escaped, as Slack asks of text that must not be formatting."""
    return plain(alert).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def html(alert: Alert) -> Markup:
    """An HTML fragment; ``Markup``, so a template environment with autoescape on does not escape it twice."""
    rows = "".join(
        f'<tr><th align="left" valign="top">{escape(label)}</th><td>{_html_value(label, value)}</td></tr>'
        for label, value in _facts(alert)
    )
    if alert.reasoning:
        rows += f'<tr><th align="left" valign="top">Why</th><td>{_html_lines(alert.reasoning)}</td></tr>'
    parts = [f"<p><strong>{escape(headline(alert))}</strong></p>", f'<table cellpadding="4">{rows}</table>']
    if alert.suggested_actions:
        items = "".join(f"<li>{escape(action)}</li>" for action in alert.suggested_actions)
        parts.append(f"<p>Suggested actions:</p><ul>{items}</ul>")
    links = " | ".join(f'<a href="{escape(url, quote=True)}">{escape(label)}</a>' for label, url in _links(alert))
    if links:
        parts.append(f"<p>{links}</p>")
    return Markup(f"<div>{''.join(parts)}</div>")  # noqa: S704 - every value above went through escape()


def _html_value(label: str, value: str) -> str:
    return f"<code>{escape(value)}</code>" if label == "Root cause" else escape(value)


def _html_lines(text: str) -> str:
    return "<br>".join(escape(line) for line in text.split("\n"))


def subject(alert: Alert) -> str:
    """One line: what failed, the category and confidence, and the start of the root cause."""
    if alert.source == NONE:
        return one_line(f"[DAGnostics] {headline(alert).removeprefix('DAGnostics: ')}", SUBJECT_CHARS)
    return one_line(
        f"[DAGnostics] {alert.task_label} failed: {alert.category} ({alert.confidence_percent}): {alert.root_cause}",
        SUBJECT_CHARS,
    )
