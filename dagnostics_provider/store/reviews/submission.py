"""Submitting a review: validation, the append-only review row with its audit event, and "apply to the group"."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from dagnostics_provider.analysis.context_lines import parse_context
from dagnostics_provider.analysis.schema import Category, InvalidAnalysis, Severity, parse_analysis
from dagnostics_provider.store.engine import session_scope
from dagnostics_provider.store.models import Analysis, FailedTask, Review, ReviewEvent, is_row_id
from dagnostics_provider.store.reviews.common import (
    EVENT_ACCEPTED,
    EVENT_APPLIED_FROM_GROUP,
    EVENT_SUBMITTED,
    MAX_COMMENT_CHARS,
    MAX_REVIEWER_CHARS,
    REVIEW_FIELDS,
    ItemNotFound,
    ReviewForbidden,
    ReviewRejected,
    analysis_values,
    changed_fields,
    open_group_members,
)
from dagnostics_provider.store.reviews.dag_access import ALL_DAGS, DagAccess, DagScope


@dataclass(frozen=True)
class SubmittedReview:
    review_id: int
    failed_task_id: int
    accepted_as_is: bool
    changed_fields: tuple[str, ...]
    applied_review_ids: tuple[int, ...] = ()


def _clean_text(value: str | None, limit: int, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ReviewRejected(f"{what} must be text")
    text = value.replace("\x00", "").strip()
    if len(text) > limit:
        raise ReviewRejected(f"{what} is longer than {limit} characters")
    return text or None


def _validated(correction: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(correction) - set(REVIEW_FIELDS))
    if unknown:
        raise ReviewRejected(f"unknown field(s): {', '.join(unknown)}")
    try:
        return parse_analysis(dict(correction)).model_dump()
    except InvalidAnalysis as exc:
        raise ReviewRejected(str(exc)) from None


def _rating(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ReviewRejected("rating must be a whole number from 1 to 5")
    try:
        rating = int(value)
    except ValueError:
        raise ReviewRejected("rating must be a whole number from 1 to 5") from None
    if not 1 <= rating <= 5:
        raise ReviewRejected("rating must be a whole number from 1 to 5")
    return rating


def _review_row(
    failure_id: int, analysis: Analysis, reviewer: str, values: Mapping[str, Any], rating: int, comment: str | None
) -> tuple[Review, list[str]]:
    changes = changed_fields(analysis_values(analysis), values)
    review = Review(
        failed_task_id=failure_id,
        analysis_id=analysis.id,
        reviewer=reviewer,
        error_message=values["error_message"],
        category=Category(values["category"]),
        severity=Severity(values["severity"]),
        confidence=values["confidence"],
        reasoning=values["reasoning"],
        error_lines=list(values["error_lines"]),
        suggested_actions=list(values["suggested_actions"]),
        rating=rating,
        comment=comment,
        accepted_as_is=not changes,
    )
    return review, changes


def _lines_in_context(lines: list[str], context: str | None) -> list[str]:
    """The error lines that occur in another item's log context: a model must learn to quote, not to invent."""
    if not context:
        return lines
    present = {text.strip() for _, text in parse_context(context)}  # log text, without the line-number gutter
    return [line for line in lines if line.strip() in present]


def submit_review(
    failure_id: int,
    *,
    reviewer: str,
    rating: Any,
    correction: Mapping[str, Any] | None = None,
    analysis_id: int | None = None,
    comment: str | None = None,
    apply_to_group: bool = False,
    access: DagAccess = ALL_DAGS,
    url: str | None = None,
) -> SubmittedReview:
    """Store one review (and its audit event) in one transaction; the AI analysis is never touched.

    ``correction`` holds every field of :data:`REVIEW_FIELDS` and is validated like an LLM answer; ``None``
    accepts the AI analysis as it is.  ``analysis_id`` is the analysis the reviewer saw (default: the newest),
    so a re-analysis that lands while someone reviews does not get credited with their judgement.  A review
    that changes nothing is stored as accepted.  With ``apply_to_group``, every other *unreviewed* analysed
    item with the same fingerprint gets the same correction as its own review (error lines are kept only where
    that item's log context contains them), each with an ``applied_from_group`` event naming the source review.

    ``access`` is what the reviewer may do per DAG: an item of a DAG they may not read is not found, one they may
    read but not edit is refused, and "apply to the group" only touches items of DAGs they may edit.
    """
    reviewer_name = _clean_text(reviewer, MAX_REVIEWER_CHARS, "reviewer")
    if not reviewer_name:
        raise ReviewRejected("a review needs a reviewer")
    rating_value = _rating(rating)
    comment_text = _clean_text(comment, MAX_COMMENT_CHARS, "comment")
    if not is_row_id(failure_id):
        raise ItemNotFound(f"no failed task with id {failure_id}")
    if analysis_id is not None and not is_row_id(analysis_id):
        raise ReviewRejected(f"analysis {analysis_id} does not belong to failed task {failure_id}")
    with session_scope(url) as session:
        failure = session.get(FailedTask, failure_id)
        if failure is None or not access.may_read(failure.dag_id):
            raise ItemNotFound(f"no failed task with id {failure_id}")
        if not access.may_edit(failure.dag_id):
            raise ReviewForbidden(
                f"Your Airflow role may read DAG {failure.dag_id!r} but not edit it; reviewing its failures needs edit."
            )
        query = select(Analysis).where(Analysis.failed_task_id == failure_id)
        if analysis_id is not None:
            query = query.where(Analysis.id == analysis_id)
        analysis = session.scalars(query.order_by(Analysis.id.desc()).limit(1)).first()
        if analysis is None:
            raise ReviewRejected(
                f"analysis {analysis_id} does not belong to failed task {failure_id}"
                if analysis_id is not None
                else f"failed task {failure_id} has no analysis to review"
            )
        values = analysis_values(analysis) if correction is None else _validated(correction)
        review, changes = _review_row(failure_id, analysis, reviewer_name, values, rating_value, comment_text)
        session.add(review)
        session.flush()
        session.add(
            ReviewEvent(
                failed_task_id=failure_id,
                review_id=review.id,
                actor=reviewer_name,
                event=EVENT_ACCEPTED if correction is None else EVENT_SUBMITTED,
                payload={"analysis_id": analysis.id, "rating": rating_value, "changed_fields": changes},
            )
        )
        applied = _apply_to_group(session, failure, review, values, apply_to_group, access.editable)
        return SubmittedReview(
            review_id=review.id,
            failed_task_id=failure_id,
            accepted_as_is=review.accepted_as_is,
            changed_fields=tuple(changes),
            applied_review_ids=tuple(applied),
        )


def _apply_to_group(
    session: Session,
    failure: FailedTask,
    source: Review,
    values: Mapping[str, Any],
    enabled: bool,
    dag_ids: DagScope,
) -> list[int]:
    if not enabled or not failure.fingerprint:
        return []
    member_ids = list(session.scalars(open_group_members(failure.fingerprint, failure.id, dag_ids)))
    if not member_ids:
        return []
    newest = aliased(Analysis)
    members = session.execute(
        select(FailedTask, newest)
        .join(newest, newest.failed_task_id == FailedTask.id)
        .where(
            FailedTask.id.in_(member_ids),
            ~select(Analysis.id)
            .where(Analysis.failed_task_id == newest.failed_task_id, Analysis.id > newest.id)
            .exists(),
        )
    ).all()
    created = []
    for member, analysis in members:
        own = {**values, "error_lines": _lines_in_context(list(values["error_lines"]), member.log_excerpt)}
        review, changes = _review_row(member.id, analysis, source.reviewer, own, source.rating, source.comment)
        session.add(review)
        session.flush()
        session.add(
            ReviewEvent(
                failed_task_id=member.id,
                review_id=review.id,
                actor=source.reviewer,
                event=EVENT_APPLIED_FROM_GROUP,
                payload={
                    "analysis_id": analysis.id,
                    "source_review_id": source.id,
                    "source_failed_task_id": failure.id,
                    "changed_fields": changes,
                },
            )
        )
        created.append(review.id)
    return created
