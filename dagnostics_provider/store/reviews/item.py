"""One item of the review queue as the review page shows it: the failure, its newest analysis and its reviews."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from dagnostics_provider.store.engine import session_scope
from dagnostics_provider.store.models import Analysis, FailedTask, Review, is_row_id
from dagnostics_provider.store.reviews.common import (
    HEURISTIC_ANALYZER,
    ItemNotFound,
    ReviewStatus,
    analysis_values,
    applied_sources,
    changed_fields,
    open_group_members,
    utc,
)
from dagnostics_provider.store.reviews.dag_access import DagScope


@dataclass(frozen=True)
class ReviewRecord:
    """A stored review, with the analysis it reviewed, for showing what the reviewer changed."""

    id: int
    reviewer: str
    created_at: datetime
    rating: int
    comment: str | None
    accepted_as_is: bool
    analysis_id: int
    values: dict[str, Any]
    suggestion: dict[str, Any]
    source_review_id: int | None = None  # set when the review was applied from another item's review

    @property
    def changed_fields(self) -> list[str]:
        return changed_fields(self.suggestion, self.values)


@dataclass(frozen=True)
class ReviewItem:
    """Everything the review page shows about one failed try."""

    failure: dict[str, Any]
    analysis: dict[str, Any]
    analysis_count: int
    reviews: list[ReviewRecord] = field(default_factory=list)  # newest first
    group_total: int = 1
    group_open_others: int = 0  # other unreviewed items with the same fingerprint: what "apply to group" would touch

    @property
    def status(self) -> ReviewStatus:
        if not self.reviews:
            return ReviewStatus.unreviewed
        return ReviewStatus.accepted if self.reviews[0].accepted_as_is else ReviewStatus.corrected


def _failure_values(failure: FailedTask) -> dict[str, Any]:
    return {
        "id": failure.id,
        "dag_id": failure.dag_id,
        "task_id": failure.task_id,
        "run_id": failure.run_id,
        "map_index": failure.map_index,
        "try_number": failure.try_number,
        "operator": failure.operator,
        "hostname": failure.hostname,
        "task_state": failure.task_state,
        "marked_by_user": failure.marked_by_user,
        "failed_at": utc(failure.failed_at),
        "error_type": failure.error_type,
        "error_text": failure.error_text,
        "log_reference": failure.log_reference,
        "log_excerpt": failure.log_excerpt,
        "fingerprint": failure.fingerprint,
        "status": failure.status.value,
        "status_detail": failure.status_detail,
    }


def _analysis_meta(analysis: Analysis) -> dict[str, Any]:
    return {
        "id": analysis.id,
        "analyzer": analysis.analyzer,
        "model": None if analysis.analyzer == HEURISTIC_ANALYZER else analysis.model,
        "prompt_version": analysis.prompt_version,
        "latency_ms": analysis.latency_ms,
        "fallback_reason": analysis.fallback_reason,
        "created_at": utc(analysis.created_at),
        **analysis_values(analysis),
    }


def get_review_item(failure_id: int, url: str | None = None, *, dag_ids: DagScope = None) -> ReviewItem:
    """A failed try with its newest analysis, its reviews (newest first) and its fingerprint group's size.

    A failed try of a DAG outside ``dag_ids`` is reported as not found, like one that does not exist, so an id
    tells a user nothing about DAGs they may not read; the group counts only members in ``dag_ids``.
    """
    if not is_row_id(failure_id):
        raise ItemNotFound(f"no analysed failed task with id {failure_id}")
    with session_scope(url) as session:
        failure = session.get(FailedTask, failure_id)
        if failure is not None and dag_ids is not None and failure.dag_id not in dag_ids:
            failure = None
        analysis = (
            session.scalars(
                select(Analysis).where(Analysis.failed_task_id == failure_id).order_by(Analysis.id.desc()).limit(1)
            ).first()
            if failure is not None
            else None
        )
        if failure is None or analysis is None:
            raise ItemNotFound(f"no analysed failed task with id {failure_id}")
        analysis_count = session.scalar(select(func.count()).where(Analysis.failed_task_id == failure_id))
        reviews = session.scalars(
            select(Review).where(Review.failed_task_id == failure_id).order_by(Review.id.desc())
        ).all()
        reviewed = {
            a.id: a for a in session.scalars(select(Analysis).where(Analysis.id.in_({r.analysis_id for r in reviews})))
        }
        sources = applied_sources(session, [r.id for r in reviews])
        group_total, group_open = 1, 0
        if failure.fingerprint:
            in_scope = [] if dag_ids is None else [FailedTask.dag_id.in_(sorted(dag_ids))]
            group_total = session.scalar(
                select(func.count()).where(FailedTask.fingerprint == failure.fingerprint, *in_scope)
            )
            group_open = session.scalar(
                select(func.count()).select_from(
                    open_group_members(failure.fingerprint, failure.id, dag_ids).subquery()
                )
            )
        return ReviewItem(
            failure=_failure_values(failure),
            analysis=_analysis_meta(analysis),
            analysis_count=analysis_count or 1,
            reviews=[
                ReviewRecord(
                    id=r.id,
                    reviewer=r.reviewer,
                    created_at=utc(r.created_at),
                    rating=r.rating,
                    comment=r.comment,
                    accepted_as_is=r.accepted_as_is,
                    analysis_id=r.analysis_id,
                    values=analysis_values(r),
                    suggestion=analysis_values(reviewed[r.analysis_id]),
                    source_review_id=sources.get(r.id),
                )
                for r in reviews
            ],
            group_total=group_total or 1,
            group_open_others=group_open or 0,
        )
