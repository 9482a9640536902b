"""What every part of the review store shares: the reviewed fields, statuses, errors and small query helpers."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import ColumnElement, Select, case, literal_column, null, select
from sqlalchemy.orm import Session

from dagnostics_provider.analysis.schema import AnalysisResult, Category, Severity
from dagnostics_provider.store.models import Analysis, FailedTask, Review, ReviewEvent
from dagnostics_provider.store.reviews.dag_access import DagScope

REVIEW_FIELDS: tuple[str, ...] = tuple(AnalysisResult.model_fields)
"""The fields a reviewer corrects, in schema order (the same fields every analysis has)."""

AGREEMENT_FIELDS: tuple[str, ...] = ("category", "severity", "error_message")
# The model an analysis is credited to: none for a heuristic one.  Analyses stored before fallbacks stopped recording
# the model that failed still carry it, and must not count as that model's answers in the queue, stats or export.
HEURISTIC_ANALYZER = "heuristic"
# A literal, not a bound parameter, so that PostgreSQL sees the same expression in SELECT and GROUP BY.
CREDITED_MODEL = case((Analysis.analyzer == literal_column(f"'{HEURISTIC_ANALYZER}'"), null()), else_=Analysis.model)

MAX_COMMENT_CHARS = 4_000
MAX_REVIEWER_CHARS = 250
DEFAULT_MIN_RATING = 3  # the guide's "quality feedback" threshold
EXPORT_STATUSES: tuple[str, ...] = ("all", "accepted", "corrected")

# Review event names (the audit log's vocabulary).
EVENT_SUBMITTED = "submitted"
EVENT_ACCEPTED = "accepted"
EVENT_APPLIED_FROM_GROUP = "applied_from_group"


class ReviewStatus(str, enum.Enum):
    """An item's review status, as the queue filters it."""

    unreviewed = "unreviewed"
    reviewed = "reviewed"  # accepted or corrected
    accepted = "accepted"
    corrected = "corrected"


class QueueSort(str, enum.Enum):
    newest = "newest"  # most recent failure first
    confidence = "confidence"  # lowest AI confidence first: where review helps most


class ReviewRejected(ValueError):
    """A submission that cannot be stored; the message is meant for the reviewer."""


class ReviewForbidden(PermissionError):
    """The user may read the item but not review it (the auth manager denies editing its DAG)."""


class ItemNotFound(LookupError):
    """No analysed failed task with that id."""


def has_review(failure_id: Any = Analysis.failed_task_id) -> ColumnElement[bool]:
    """Whether the failed try ``failure_id`` (a column) has any review."""
    return select(Review.id).where(Review.failed_task_id == failure_id).exists()


def utc(moment: datetime) -> datetime:
    """Aware UTC (SQLite stores naive UTC text; comparing needs the same clock on both sides)."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def analysis_values(row: Analysis | Review) -> dict[str, Any]:
    """The reviewable fields of an analysis or a review as plain JSON-able values."""
    values = {name: getattr(row, name) for name in REVIEW_FIELDS}
    values["category"] = Category(values["category"]).value
    values["severity"] = Severity(values["severity"]).value
    values["error_lines"] = list(values["error_lines"] or [])
    values["suggested_actions"] = list(values["suggested_actions"] or [])
    return values


def _normalised(name: str, value: Any) -> Any:
    if name == "confidence":
        return None if value is None else round(float(value), 4)
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, list):
        return [str(v).strip() for v in value]
    return value


def changed_fields(suggestion: Mapping[str, Any], correction: Mapping[str, Any]) -> list[str]:
    """The fields a correction changed, in schema order (surrounding whitespace is not a change)."""
    return [
        name
        for name in REVIEW_FIELDS
        if _normalised(name, suggestion.get(name)) != _normalised(name, correction.get(name))
    ]


def applied_sources(session: Session, review_ids: list[int]) -> dict[int, int]:
    """review id -> the review it was applied from (for reviews made by "apply to the fingerprint group")."""
    if not review_ids:
        return {}
    rows = session.execute(
        select(ReviewEvent.review_id, ReviewEvent.payload).where(
            ReviewEvent.review_id.in_(review_ids), ReviewEvent.event == EVENT_APPLIED_FROM_GROUP
        )
    )
    return {review_id: int(payload["source_review_id"]) for review_id, payload in rows}


def open_group_members(fingerprint: str, exclude_id: int, dag_ids: DagScope = None) -> Select:
    """Other analysed, unreviewed failed tries with this fingerprint, in DAGs of ``dag_ids``."""
    in_scope = [] if dag_ids is None else [FailedTask.dag_id.in_(sorted(dag_ids))]
    return (
        select(FailedTask.id)
        .where(
            FailedTask.fingerprint == fingerprint,
            FailedTask.id != exclude_id,
            ~has_review(FailedTask.id),
            select(Analysis.id).where(Analysis.failed_task_id == FailedTask.id).exists(),
            *in_scope,
        )
        .order_by(FailedTask.id)
    )


def iso(moment: datetime | None) -> str | None:
    return utc(moment).isoformat() if moment is not None else None
