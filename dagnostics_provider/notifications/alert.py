"""What a failure alert says: one diagnosis, however it was obtained, with the links to follow it up.

:class:`~dagnostics_provider.notifications.dagnostics.DagnosticsNotifier` puts an :class:`Alert` into the callback
context as ``dagnostics``, so wrapped notifiers' templates read ``{{ dagnostics.root_cause }}``,
``{{ dagnostics.html }}`` and the rest.  Every field is bounded and cleaned here, once, whatever built the alert: a
root-cause line can be as long as the log line it came from, it is written by whatever the task ran (so it may hold
markup, control characters or a whole JSON document), and alert channels cap or mangle long messages.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from dagnostics_provider.analysis.schema import CATEGORY_DEFINITIONS

if TYPE_CHECKING:
    from markupsafe import Markup

    from dagnostics_provider.analysis.outcome import AnalysisOutcome
    from dagnostics_provider.store.diagnosis import TaskInstanceRef
    from dagnostics_provider.store.reviews.item import ReviewItem

# Where the diagnosis came from.
STORED = "stored"  # the analysis DAGnostics stored for this try (LLM, or heuristic when no LLM answered)
ON_THE_SPOT = "on_the_spot"  # the heuristic analysis the notifier computed itself, the stored one not being ready
NONE = "none"  # no diagnosis at all: the callback context named no task instance

# Bounds of what an alert carries; a real diagnosis is well below them.
ROOT_CAUSE_CHARS = 500
REASONING_CHARS = 800
ACTION_CHARS = 200
MAX_ACTIONS = 5
NOTE_CHARS = 400
NAME_CHARS = 250  # DAG, task and run ids, analyzer, model, reviewer

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # keeps \t and \n
_BREAKS = re.compile(r"\s*[\r\n]+\s*")


def one_line(value: Any, limit: int) -> str:
    """``value`` as one clean line of at most ``limit`` characters (an ellipsis marks a cut)."""
    text = _CONTROL.sub("", _BREAKS.sub(" ", str(value))).strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _text(value: Any, limit: int) -> str:
    """Multi-line text (reasoning) without control characters, at most ``limit`` characters."""
    text = _CONTROL.sub("", str(value).replace("\r\n", "\n").replace("\r", "\n")).strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


@dataclass(frozen=True)
class AlertLinks:
    """Absolute links into Airflow: the try's log, its Diagnosis tab and, once recorded, its review page."""

    task_log: str
    diagnosis_tab: str
    review: str | None = None


@dataclass(frozen=True)
class Alert:
    """One failed try's diagnosis as an alert shows it; ``text``, ``plain``, ``html`` and ``subject`` render it."""

    dag_id: str | None = None
    task_id: str | None = None
    run_id: str | None = None
    map_index: int = -1
    try_number: int | None = None
    source: str = NONE
    root_cause: str = ""
    category: str = "unknown"
    severity: str = ""
    confidence: float | None = None
    reasoning: str = ""
    suggested_actions: tuple[str, ...] = ()
    analyzer: str | None = None  # heuristic, ollama, openai, llamacpp
    model: str | None = None
    fallback_reason: str | None = None  # a stored heuristic analysis: why the LLM's answer was not used
    review_status: str = "unreviewed"  # unreviewed, accepted (a reviewer confirmed it) or corrected
    reviewer: str | None = None
    note: str | None = None  # why the diagnosis is on the spot, or missing
    failure_id: int | None = None
    links: AlertLinks | None = None
    analyzed: bool = False  # the recorded try has a stored analysis, so its review page opens

    def __post_init__(self) -> None:
        for name in ("dag_id", "task_id", "run_id", "analyzer", "model", "reviewer"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, one_line(value, NAME_CHARS))
        object.__setattr__(self, "root_cause", one_line(self.root_cause, ROOT_CAUSE_CHARS))
        object.__setattr__(self, "category", one_line(self.category, NAME_CHARS))
        object.__setattr__(self, "severity", one_line(self.severity, NAME_CHARS))
        object.__setattr__(self, "reasoning", _text(self.reasoning, REASONING_CHARS))
        actions = tuple(one_line(action, ACTION_CHARS) for action in self.suggested_actions[:MAX_ACTIONS])
        object.__setattr__(self, "suggested_actions", tuple(action for action in actions if action))
        for name in ("note", "fallback_reason"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, one_line(value, NOTE_CHARS))

    @property
    def stored(self) -> bool:
        return self.source == STORED

    @property
    def on_the_spot(self) -> bool:
        return self.source == ON_THE_SPOT

    @property
    def category_definition(self) -> str:
        return CATEGORY_DEFINITIONS.get(self.category, "")

    @property
    def confidence_percent(self) -> str:
        return "n/a" if self.confidence is None else f"{round(self.confidence * 100)}%"

    @property
    def task_label(self) -> str:
        """``dag.task``, with ``[map index]`` for a mapped task."""
        label = f"{self.dag_id or '?'}.{self.task_id or '?'}"
        return f"{label}[{self.map_index}]" if self.map_index >= 0 else label

    # The renderings live in .message, which imports this module: hence the imports inside the properties.
    @property
    def plain(self) -> str:
        """Plain text, nothing escaped: for the task log and plain-text channels."""
        from dagnostics_provider.notifications import message

        return message.plain(self)

    @property
    def text(self) -> str:
        """Plain text that is safe in Slack's mrkdwn (``&``, ``<`` and ``>`` escaped, so no link or @-mention)."""
        from dagnostics_provider.notifications import message

        return message.slack_text(self)

    @property
    def html(self) -> Markup:
        """An HTML fragment with every value escaped, for e-mail bodies."""
        from dagnostics_provider.notifications import message

        return message.html(self)

    @property
    def subject(self) -> str:
        """One line for an e-mail subject or a notification title."""
        from dagnostics_provider.notifications import message

        return message.subject(self)

    def as_dict(self) -> dict[str, Any]:
        """The fields as plain values, for JSON webhooks (``{{ dagnostics.as_dict() | tojson }}``)."""
        values = asdict(self)
        values["suggested_actions"] = list(self.suggested_actions)
        values["category_definition"] = self.category_definition
        return values


def links_for(ref: TaskInstanceRef, try_number: int, failure_id: int | None) -> AlertLinks:
    """Absolute links, because an alert is read outside Airflow (``[api] base_url`` supplies scheme and host)."""
    from dagnostics_provider import links

    where = (ref.dag_id, ref.run_id, ref.task_id, ref.map_index)
    return AlertLinks(
        task_log=links.task_log_url(*where, try_number, absolute=True),
        diagnosis_tab=links.diagnosis_tab_url(*where, absolute=True),
        review=None if failure_id is None else links.review_url(failure_id, absolute=True),
    )


def _identity(ref: TaskInstanceRef, try_number: int) -> dict[str, Any]:
    return {
        "dag_id": ref.dag_id,
        "task_id": ref.task_id,
        "run_id": ref.run_id,
        "map_index": ref.map_index,
        "try_number": try_number,
    }


def stored_alert(ref: TaskInstanceRef, try_number: int, item: ReviewItem) -> Alert:
    """The alert of a stored analysis; a reviewer's correction, when there is one, is what it says."""
    review = item.reviews[0] if item.reviews else None
    status = item.status.value
    values = review.values if review is not None and status == "corrected" else item.analysis
    return Alert(
        **_identity(ref, try_number),
        source=STORED,
        root_cause=values["error_message"],
        category=values["category"],
        severity=values["severity"],
        confidence=values["confidence"],
        reasoning=values.get("reasoning") or "",
        suggested_actions=tuple(values.get("suggested_actions") or ()),
        analyzer=item.analysis.get("analyzer"),
        model=item.analysis.get("model"),
        fallback_reason=item.analysis.get("fallback_reason"),
        review_status=status,
        reviewer=review.reviewer if review is not None else None,
        failure_id=item.failure["id"],
        links=links_for(ref, try_number, item.failure["id"]),
        analyzed=True,
    )


def on_the_spot_alert(
    ref: TaskInstanceRef, try_number: int, outcome: AnalysisOutcome, *, failure_id: int | None, note: str
) -> Alert:
    """The alert of a heuristic analysis computed by the notifier; ``note`` says why it is not the stored one."""
    result = outcome.result
    return Alert(
        **_identity(ref, try_number),
        source=ON_THE_SPOT,
        root_cause=result.error_message,
        category=result.category,
        severity=result.severity,
        confidence=result.confidence,
        reasoning=result.reasoning,
        suggested_actions=tuple(result.suggested_actions),
        analyzer=outcome.analyzer,
        note=note,
        failure_id=failure_id,
        links=links_for(ref, try_number, failure_id),
    )
