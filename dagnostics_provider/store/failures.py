"""Reading and writing failed tasks and their analyses in the store.

Kept apart from the listener and the operators so both, the CLI and the review UI share one set of queries.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from dagnostics_provider.analysis.outcome import AnalysisOutcome
from dagnostics_provider.analysis.schema import Category, Severity
from dagnostics_provider.store.engine import session_scope
from dagnostics_provider.store.models import Analysis, FailedTask, FailureStatus, utcnow


@dataclass(frozen=True)
class FailureRecord:
    """What is known about a failed try when it happens (from the listener or the REST API)."""

    dag_id: str
    task_id: str
    run_id: str
    try_number: int
    map_index: int = -1
    operator: str | None = None
    hostname: str | None = None
    task_state: str = "failed"
    marked_by_user: bool = False
    start_date: datetime | None = None
    end_date: datetime | None = None
    error_type: str | None = None
    error_text: str | None = None


def _find(session, dag_id: str, task_id: str, run_id: str, map_index: int, try_number: int) -> FailedTask | None:
    return session.scalars(
        select(FailedTask).where(
            FailedTask.dag_id == dag_id,
            FailedTask.task_id == task_id,
            FailedTask.run_id == run_id,
            FailedTask.map_index == map_index,
            FailedTask.try_number == try_number,
        )
    ).one_or_none()


def record_failure(record: FailureRecord, url: str | None = None) -> int:
    """Store a failed try once and return its id; recording the same try again returns the existing row.

    The same try can be reported twice (a retry-then-fail race, the listener and a REST backfill, a user
    marking an already failed task): the first report wins, except that a later final failure or a manual
    mark upgrades the state of a row first recorded as up_for_retry.
    """
    key = (record.dag_id, record.task_id, record.run_id, record.map_index, record.try_number)
    try:
        with session_scope(url) as session:
            existing = _find(session, *key)
            if existing is not None:
                if existing.task_state == "up_for_retry" and record.task_state != "up_for_retry":
                    existing.task_state = record.task_state
                    existing.marked_by_user = existing.marked_by_user or record.marked_by_user
                return existing.id
            row = FailedTask(**asdict(record), failed_at=record.end_date or utcnow())
            session.add(row)
            session.flush()
            return row.id
    except IntegrityError:
        # Another process inserted the same try between our read and write.
        with session_scope(url) as session:
            existing = _find(session, *key)
            assert existing is not None
            return existing.id


def pending_failure_ids(limit: int, url: str | None = None) -> list[int]:
    """Oldest failures first, so a backlog drains in the order it built up."""
    with session_scope(url) as session:
        return list(
            session.scalars(
                select(FailedTask.id)
                .where(FailedTask.status == FailureStatus.pending)
                .order_by(FailedTask.failed_at, FailedTask.id)
                .limit(limit)
            )
        )


def get_failure(failure_id: int, url: str | None = None) -> FailedTask:
    with session_scope(url) as session:
        failure = session.get(FailedTask, failure_id)
        if failure is None:
            raise LookupError(f"no failed task with id {failure_id} in the DAGnostics store")
        session.expunge(failure)
        return failure


def find_failure(
    dag_id: str, task_id: str, run_id: str, try_number: int, map_index: int = -1, url: str | None = None
) -> FailedTask | None:
    with session_scope(url) as session:
        failure = _find(session, dag_id, task_id, run_id, map_index, try_number)
        if failure is not None:
            session.expunge(failure)
        return failure


def save_analysis(
    failure_id: int,
    outcome: AnalysisOutcome,
    *,
    log_excerpt: str,
    log_reference: str | None,
    fingerprint: str | None,
    error_type: str | None,
    url: str | None = None,
) -> int:
    """Add an (immutable) analysis and mark the failure analysed, in one transaction."""
    result = outcome.result
    with session_scope(url) as session:
        failure = session.get(FailedTask, failure_id)
        if failure is None:
            raise LookupError(f"no failed task with id {failure_id} in the DAGnostics store")
        analysis = Analysis(
            failed_task_id=failure_id,
            analyzer=outcome.analyzer,
            model=outcome.model,
            prompt_version=outcome.prompt_version,
            error_message=result.error_message,
            category=Category(result.category),
            severity=Severity(result.severity),
            confidence=result.confidence,
            reasoning=result.reasoning,
            error_lines=list(result.error_lines),
            suggested_actions=list(result.suggested_actions),
            raw_response=outcome.raw_response,
            fallback_reason=outcome.fallback_reason,
            latency_ms=outcome.latency_ms,
        )
        session.add(analysis)
        failure.status = FailureStatus.analyzed
        failure.status_detail = outcome.fallback_reason
        failure.log_excerpt = log_excerpt
        failure.log_reference = log_reference or failure.log_reference
        failure.fingerprint = fingerprint
        failure.error_type = failure.error_type or error_type
        session.flush()
        return analysis.id


def mark_analysis_failed(failure_id: int, reason: str, url: str | None = None) -> None:
    """Keep a failure whose analysis raised, with the reason, instead of dropping it."""
    with session_scope(url) as session:
        failure = session.get(FailedTask, failure_id)
        if failure is not None:
            failure.status = FailureStatus.analysis_failed
            failure.status_detail = reason[:4000]


def request_reanalysis(failure_ids: list[int], url: str | None = None) -> int:
    """Put failures back in the queue; earlier analyses stay (they are immutable)."""
    with session_scope(url) as session:
        rows = session.scalars(select(FailedTask).where(FailedTask.id.in_(failure_ids))).all()
        for row in rows:
            row.status = FailureStatus.pending
            row.status_detail = "re-analysis requested"
        return len(rows)
