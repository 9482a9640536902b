"""The review queue, review submission, feedback statistics and feedback export.

One module for everything reviewers produce, because the "DAGnostics Feedback" view, its JSON endpoints and the
``dagnostics training feedback-stats`` / ``export-feedback`` commands must agree on what an item, a review and an
"agreement" are.  Everything here is a plain function over the store; nothing knows about Flask.

An *item* of the queue is one failed try shown with its newest analysis.  Its review status comes from its
reviews: none (``unreviewed``), or the newest one accepted the AI analysis unchanged (``accepted``) or changed at
least one field (``corrected``).  Reviews are append-only, so two reviewers of one item both keep theirs and a
reviewer who changes their mind adds a newer review.

The queries are shaped for a store of 100 000 analyses (``benchmarks/bench_review_ui.py``) on SQLite as well as
PostgreSQL, with the indexes of migration 0002: "newest analysis of a failure" is a ``NOT EXISTS`` probe on an
index; a page is picked from index-only columns first and only its 50 wide rows are read afterwards; counts skip
the newest-analysis probe when no analysis field is filtered; review summaries and fingerprint counts are fetched
for the page's rows only.  On SQLite every transaction takes the write lock (see
:mod:`dagnostics_provider.store.engine`), so the export reads in short batches instead of holding one transaction
open while a download streams.
"""

from __future__ import annotations

import csv
import enum
import io
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, false, func, literal_column, null, or_, select, true
from sqlalchemy.orm import Session, aliased

from dagnostics_provider.analysis.schema import AnalysisResult, Category, InvalidAnalysis, Severity, parse_analysis
from dagnostics_provider.store.engine import session_scope
from dagnostics_provider.store.models import Analysis, FailedTask, Review, ReviewEvent, utcnow

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


class ItemNotFound(LookupError):
    """No analysed failed task with that id."""


# --------------------------------------------------------------------------------------------------- the queue


@dataclass(frozen=True)
class QueueFilters:
    """What the queue shows; ``None`` means "any".  Times are compared in UTC, ``failed_until`` is exclusive."""

    status: ReviewStatus | None = None
    dag_id: str | None = None
    task_id: str | None = None
    category: Category | None = None
    severity: Severity | None = None
    min_confidence: float | None = None
    max_confidence: float | None = None
    failed_since: datetime | None = None
    failed_until: datetime | None = None
    fingerprint: str | None = None  # a full fingerprint or a prefix of one (the UI shows 12 characters)


@dataclass(frozen=True)
class QueueItem:
    """One row of the queue: a failed try, its newest analysis and a summary of its reviews."""

    failed_task_id: int
    dag_id: str
    task_id: str
    run_id: str
    map_index: int
    try_number: int
    failed_at: datetime
    fingerprint: str | None
    analysis_id: int
    analyzer: str
    model: str | None
    prompt_version: str
    category: str
    severity: str
    confidence: float
    error_message: str
    review_count: int = 0
    latest_rating: int | None = None
    latest_reviewer: str | None = None
    latest_accepted: bool | None = None
    fingerprint_count: int = 1  # failed tries sharing the fingerprint, this one included

    @property
    def status(self) -> ReviewStatus:
        if not self.review_count:
            return ReviewStatus.unreviewed
        return ReviewStatus.accepted if self.latest_accepted else ReviewStatus.corrected


class _Paged:
    """The page count of a page of results (``total`` rows, ``per_page`` a page); at least one page."""

    total: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


@dataclass(frozen=True)
class QueuePage(_Paged):
    items: list[QueueItem]
    total: int
    page: int
    per_page: int


@dataclass(frozen=True)
class FingerprintGroup:
    """Failed tries that share a fingerprint, summarised by their newest member."""

    fingerprint: str
    count: int
    open_count: int
    last_failed_at: datetime
    newest_failed_task_id: int
    dag_id: str
    task_id: str
    category: str
    error_message: str


@dataclass(frozen=True)
class GroupPage(_Paged):
    groups: list[FingerprintGroup]
    total: int
    page: int
    per_page: int


@dataclass(frozen=True)
class Neighbours:
    """Where to go from an item in the queue's order: previous, next and the next unreviewed item."""

    previous_id: int | None
    next_id: int | None
    next_unreviewed_id: int | None


def _newest_analysis() -> ColumnElement[bool]:
    newer = aliased(Analysis)
    return ~select(newer.id).where(newer.failed_task_id == Analysis.failed_task_id, newer.id > Analysis.id).exists()


def _has_review(failure_id: Any = Analysis.failed_task_id) -> ColumnElement[bool]:
    """Whether the failed try ``failure_id`` (a column) has any review."""
    return select(Review.id).where(Review.failed_task_id == failure_id).exists()


def _newest_review_accepted(accepted: bool, failure_id: Any) -> ColumnElement[bool]:
    newer = aliased(Review)
    return (
        select(Review.id)
        .where(
            Review.failed_task_id == failure_id,
            Review.accepted_as_is.is_(true() if accepted else false()),
            ~select(newer.id).where(newer.failed_task_id == Review.failed_task_id, newer.id > Review.id).exists(),
        )
        .exists()
    )


def _status_condition(status: ReviewStatus, failure_id: Any = Analysis.failed_task_id) -> ColumnElement[bool]:
    if status is ReviewStatus.unreviewed:
        return ~_has_review(failure_id)
    if status is ReviewStatus.reviewed:
        return _has_review(failure_id)
    return _newest_review_accepted(status is ReviewStatus.accepted, failure_id)


def _fingerprint_condition(value: str) -> ColumnElement[bool]:
    if len(value) >= 64:
        return FailedTask.fingerprint == value
    # A prefix as a range, so both SQLite and PostgreSQL use the fingerprint index (LIKE would not).
    upper = value[:-1] + chr(ord(value[-1]) + 1)
    return and_(FailedTask.fingerprint >= value, FailedTask.fingerprint < upper)


def _utc(moment: datetime) -> datetime:
    """Aware UTC (SQLite stores naive UTC text; comparing needs the same clock on both sides)."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def _analysis_conditions(filters: QueueFilters) -> list[ColumnElement[bool]]:
    """Conditions on the analysis side only: a count with just these never reads ``failed_tasks``."""
    conditions: list[ColumnElement[bool]] = [_newest_analysis()]
    if filters.status is not None:
        conditions.append(_status_condition(filters.status))
    return conditions + _analysis_field_conditions(filters)


def _analysis_field_conditions(filters: QueueFilters) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if filters.category is not None:
        conditions.append(Analysis.category == filters.category)
    if filters.severity is not None:
        conditions.append(Analysis.severity == filters.severity)
    if filters.min_confidence is not None:
        conditions.append(Analysis.confidence >= filters.min_confidence)
    if filters.max_confidence is not None:
        conditions.append(Analysis.confidence <= filters.max_confidence)
    return conditions


def _failure_conditions(filters: QueueFilters) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if filters.dag_id:
        conditions.append(FailedTask.dag_id == filters.dag_id)
    if filters.task_id:
        conditions.append(FailedTask.task_id == filters.task_id)
    if filters.failed_since is not None:
        conditions.append(FailedTask.failed_at >= _utc(filters.failed_since))
    if filters.failed_until is not None:
        conditions.append(FailedTask.failed_at < _utc(filters.failed_until))
    if filters.fingerprint:
        conditions.append(_fingerprint_condition(filters.fingerprint))
    return conditions


_ITEM_COLUMNS = (
    FailedTask.id,
    FailedTask.dag_id,
    FailedTask.task_id,
    FailedTask.run_id,
    FailedTask.map_index,
    FailedTask.try_number,
    FailedTask.failed_at,
    FailedTask.fingerprint,
    Analysis.id,
    Analysis.analyzer,
    CREDITED_MODEL.label("model"),
    Analysis.prompt_version,
    Analysis.category,
    Analysis.severity,
    Analysis.confidence,
    Analysis.error_message,
)


def _items_query(filters: QueueFilters, *columns: Any, join_failures: bool = True) -> Select:
    """Newest analyses matching ``filters``, from ``analyses`` (joined to ``failed_tasks`` when needed)."""
    failure_conditions = _failure_conditions(filters)
    query = select(*(columns or _ITEM_COLUMNS)).select_from(Analysis)
    if join_failures or failure_conditions:
        query = query.join(FailedTask, FailedTask.id == Analysis.failed_task_id)
    return query.where(*_analysis_conditions(filters), *failure_conditions)


def _count_query(filters: QueueFilters) -> Select:
    """How many items match: without filters on analysis fields, counting the failed tries that have analyses is
    the same number and needs no "is it the newest analysis" probe per row."""
    if _analysis_field_conditions(filters):
        return _items_query(filters, func.count(), join_failures=False)
    query = select(func.count(func.distinct(Analysis.failed_task_id))).select_from(Analysis)
    failure_conditions = _failure_conditions(filters)
    if failure_conditions:
        query = query.join(FailedTask, FailedTask.id == Analysis.failed_task_id)
    status = [] if filters.status is None else [_status_condition(filters.status)]
    return query.where(*failure_conditions, *status)


def _order(sort: QueueSort, *, reverse: bool = False) -> list[tuple[Any, bool]]:
    """The queue's order as (column, ascending) pairs; ``reverse`` walks it backwards (for "previous").

    Ties in confidence go newest analysis first; both orders are served by an index (see migration 0002).
    """
    if sort is QueueSort.confidence:
        keys = [(Analysis.confidence, True), (Analysis.id, False)]
    else:
        keys = [(FailedTask.failed_at, False), (FailedTask.id, False)]
    return [(column, ascending != reverse) for column, ascending in keys]


def _order_by(keys: list[tuple[Any, bool]]) -> list[Any]:
    return [column.asc() if ascending else column.desc() for column, ascending in keys]


def _after(keys: list[tuple[Any, bool]], values: Sequence[Any]) -> ColumnElement[bool]:
    """Rows strictly after ``values`` in the order ``keys`` (keyset pagination, any mix of directions)."""
    alternatives = []
    for index, (column, ascending) in enumerate(keys):
        equal = [keys[i][0] == values[i] for i in range(index)]
        beyond = column > values[index] if ascending else column < values[index]
        alternatives.append(and_(*equal, beyond))
    return or_(*alternatives)


def _item(row: Any, reviews: Mapping[int, tuple[int, Review]], fingerprints: Mapping[str, int]) -> QueueItem:
    count, latest = reviews.get(row[0], (0, None))
    return QueueItem(
        failed_task_id=row[0],
        dag_id=row[1],
        task_id=row[2],
        run_id=row[3],
        map_index=row[4],
        try_number=row[5],
        failed_at=_utc(row[6]),
        fingerprint=row[7],
        analysis_id=row[8],
        analyzer=row[9],
        model=row[10],
        prompt_version=row[11],
        category=row[12].value,
        severity=row[13].value,
        confidence=row[14],
        error_message=row[15],
        review_count=count,
        latest_rating=latest.rating if latest else None,
        latest_reviewer=latest.reviewer if latest else None,
        latest_accepted=latest.accepted_as_is if latest else None,
        fingerprint_count=fingerprints.get(row[7], 1) if row[7] else 1,
    )


def _review_summaries(session: Session, failure_ids: list[int]) -> dict[int, tuple[int, Review]]:
    """Per failed task: how many reviews and the newest one (two small indexed queries for one page)."""
    if not failure_ids:
        return {}
    counts = session.execute(
        select(Review.failed_task_id, func.count(), func.max(Review.id))
        .where(Review.failed_task_id.in_(failure_ids))
        .group_by(Review.failed_task_id)
    ).all()
    newest = {r.id: r for r in session.scalars(select(Review).where(Review.id.in_([c[2] for c in counts])))}
    return {failure_id: (count, newest[newest_id]) for failure_id, count, newest_id in counts}


def _fingerprint_counts(session: Session, fingerprints: Iterable[str | None]) -> dict[str, int]:
    wanted = sorted({f for f in fingerprints if f})
    if not wanted:
        return {}
    rows = session.execute(
        select(FailedTask.fingerprint, func.count())
        .where(FailedTask.fingerprint.in_(wanted))
        .group_by(FailedTask.fingerprint)
    ).all()
    return dict(rows)


def _rows_by_analysis_id(session: Session, analysis_ids: list[int]) -> list[Any]:
    """Queue rows for these analyses, in the order given."""
    if not analysis_ids:
        return []
    found = {
        row[8]: row
        for row in session.execute(
            select(*_ITEM_COLUMNS)
            .join(FailedTask, FailedTask.id == Analysis.failed_task_id)
            .where(Analysis.id.in_(analysis_ids))
        )
    }
    return [found[analysis_id] for analysis_id in analysis_ids]


def list_queue(
    filters: QueueFilters = QueueFilters(),
    *,
    sort: QueueSort = QueueSort.newest,
    page: int = 1,
    per_page: int = 50,
    url: str | None = None,
) -> QueuePage:
    """One page of the review queue and the number of matching items."""
    page, per_page = max(1, page), max(1, min(per_page, 500))
    with session_scope(url) as session:
        total = session.scalar(_count_query(filters))
        # Two steps: pick the page from index-only columns, then read the (wide) rows of just that page.
        analysis_ids = list(
            session.scalars(
                _items_query(filters, Analysis.id)
                .order_by(*_order_by(_order(sort)))
                .offset((page - 1) * per_page)
                .limit(per_page)
            )
        )
        rows = _rows_by_analysis_id(session, analysis_ids)
        reviews = _review_summaries(session, [row[0] for row in rows])
        fingerprints = _fingerprint_counts(session, (row[7] for row in rows))
        items = [_item(row, reviews, fingerprints) for row in rows]
    return QueuePage(items=items, total=total or 0, page=page, per_page=per_page)


def list_fingerprint_groups(
    filters: QueueFilters = QueueFilters(), *, page: int = 1, per_page: int = 50, url: str | None = None
) -> GroupPage:
    """Matching items grouped by fingerprint, the biggest groups first, with how many of each are unreviewed.

    Grouping reads the (fingerprint, failed_at) index; a failed try's newest analysis is only looked at when a
    category, severity or confidence filter needs it.  A fingerprint is only ever stored together with an
    analysis (:func:`dagnostics_provider.store.failures.save_analysis`), so "has a fingerprint" stands for
    "analysed" here.  Open counts are computed for the shown page only.
    """
    page, per_page = max(1, page), max(1, min(per_page, 500))
    conditions = [FailedTask.fingerprint.is_not(None), *_failure_conditions(filters)]
    if filters.status is not None:
        conditions.append(_status_condition(filters.status, FailedTask.id))
    field_conditions = _analysis_field_conditions(filters)
    if field_conditions:
        newest_matching = select(Analysis.id).where(
            Analysis.failed_task_id == FailedTask.id, _newest_analysis(), *field_conditions
        )
        conditions.append(newest_matching.exists())
    count = func.count().label("count")
    last_failed_at = func.max(FailedTask.failed_at).label("last_failed_at")
    grouped = (
        select(
            FailedTask.fingerprint,
            count,
            last_failed_at,
            func.max(FailedTask.id).label("newest_id"),
            func.count().over().label("groups"),  # the number of groups, in the same pass
        )
        .where(*conditions)
        .group_by(FailedTask.fingerprint)
        .order_by(count.desc(), last_failed_at.desc(), FailedTask.fingerprint)
    )
    with session_scope(url) as session:
        rows = session.execute(grouped.offset((page - 1) * per_page).limit(per_page)).all()
        total = rows[0].groups if rows else 0
        open_counts = dict(
            session.execute(
                select(FailedTask.fingerprint, func.count())
                .where(FailedTask.fingerprint.in_([row.fingerprint for row in rows]), *conditions)
                .where(~_has_review(FailedTask.id))
                .group_by(FailedTask.fingerprint)
            ).all()
        )
        newest_ids = [row.newest_id for row in rows]
        samples = {
            row[0]: row
            for row in session.execute(
                select(FailedTask.id, FailedTask.dag_id, FailedTask.task_id, Analysis.category, Analysis.error_message)
                .join(Analysis, Analysis.failed_task_id == FailedTask.id)
                .where(FailedTask.id.in_(newest_ids), _newest_analysis())
            )
        }
    groups = [
        FingerprintGroup(
            fingerprint=row.fingerprint,
            count=row.count,
            open_count=open_counts.get(row.fingerprint, 0),
            last_failed_at=_utc(row.last_failed_at),
            newest_failed_task_id=row.newest_id,
            dag_id=samples[row.newest_id][1],
            task_id=samples[row.newest_id][2],
            category=samples[row.newest_id][3].value,
            error_message=samples[row.newest_id][4],
        )
        for row in rows
    ]
    return GroupPage(groups=groups, total=total, page=page, per_page=per_page)


def _sort_key(session: Session, failure_id: int, sort: QueueSort) -> list[Any] | None:
    """The item's own position in the queue order, whether or not it matches the filters."""
    row = session.execute(
        select(*(column for column, _ in _order(sort)))
        .select_from(Analysis)
        .join(FailedTask, FailedTask.id == Analysis.failed_task_id)
        .where(Analysis.failed_task_id == failure_id, _newest_analysis())
    ).first()
    return None if row is None else list(row)


def _first(
    session: Session, filters: QueueFilters, sort: QueueSort, after: list[Any] | None, reverse: bool = False
) -> int | None:
    keys = _order(sort, reverse=reverse)
    query = _items_query(filters, FailedTask.id)
    if after is not None:
        query = query.where(_after(keys, after))
    return session.scalar(query.order_by(*_order_by(keys)).limit(1))


def neighbours(
    failure_id: int,
    filters: QueueFilters = QueueFilters(),
    *,
    sort: QueueSort = QueueSort.newest,
    url: str | None = None,
) -> Neighbours:
    """Previous/next item in the queue order, and the next unreviewed one (wrapping around to the top)."""
    unreviewed = replace(filters, status=ReviewStatus.unreviewed)
    with session_scope(url) as session:
        key = _sort_key(session, failure_id, sort)
        if key is None:
            return Neighbours(None, None, _first(session, unreviewed, sort, None))
        next_unreviewed = _first(session, unreviewed, sort, key)
        if next_unreviewed is None:
            next_unreviewed = _first(session, unreviewed, sort, None)
            next_unreviewed = None if next_unreviewed == failure_id else next_unreviewed
        return Neighbours(
            previous_id=_first(session, filters, sort, key, reverse=True),
            next_id=_first(session, filters, sort, key),
            next_unreviewed_id=next_unreviewed,
        )


def next_unreviewed(
    filters: QueueFilters = QueueFilters(),
    *,
    sort: QueueSort = QueueSort.newest,
    after_id: int | None = None,
    url: str | None = None,
) -> int | None:
    """The first unreviewed item in the queue order (after ``after_id`` if given, wrapping around)."""
    if after_id is not None:
        return neighbours(after_id, filters, sort=sort, url=url).next_unreviewed_id
    with session_scope(url) as session:
        return _first(session, replace(filters, status=ReviewStatus.unreviewed), sort, None)


def distinct_dag_ids(limit: int = 500, url: str | None = None) -> list[str]:
    """DAG ids that have failed tries (for the filter's suggestions); read from the (dag_id, task_id) index."""
    with session_scope(url) as session:
        return list(session.scalars(select(FailedTask.dag_id).distinct().order_by(FailedTask.dag_id).limit(limit)))


# ------------------------------------------------------------------------------------------------ one item


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


def _analysis_values(row: Analysis | Review) -> dict[str, Any]:
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
        "failed_at": _utc(failure.failed_at),
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
        "created_at": _utc(analysis.created_at),
        **_analysis_values(analysis),
    }


def _sources(session: Session, review_ids: list[int]) -> dict[int, int]:
    """review id -> the review it was applied from (for reviews made by "apply to the fingerprint group")."""
    if not review_ids:
        return {}
    rows = session.execute(
        select(ReviewEvent.review_id, ReviewEvent.payload).where(
            ReviewEvent.review_id.in_(review_ids), ReviewEvent.event == EVENT_APPLIED_FROM_GROUP
        )
    )
    return {review_id: int(payload["source_review_id"]) for review_id, payload in rows}


def _open_group_members(fingerprint: str, exclude_id: int) -> Select:
    """Other analysed, unreviewed failed tries with this fingerprint."""
    return (
        select(FailedTask.id)
        .where(
            FailedTask.fingerprint == fingerprint,
            FailedTask.id != exclude_id,
            ~_has_review(FailedTask.id),
            select(Analysis.id).where(Analysis.failed_task_id == FailedTask.id).exists(),
        )
        .order_by(FailedTask.id)
    )


def get_review_item(failure_id: int, url: str | None = None) -> ReviewItem:
    """A failed try with its newest analysis, its reviews (newest first) and its fingerprint group's size."""
    with session_scope(url) as session:
        failure = session.get(FailedTask, failure_id)
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
        sources = _sources(session, [r.id for r in reviews])
        group_total, group_open = 1, 0
        if failure.fingerprint:
            group_total = session.scalar(select(func.count()).where(FailedTask.fingerprint == failure.fingerprint))
            group_open = session.scalar(
                select(func.count()).select_from(_open_group_members(failure.fingerprint, failure.id).subquery())
            )
        return ReviewItem(
            failure=_failure_values(failure),
            analysis=_analysis_meta(analysis),
            analysis_count=analysis_count or 1,
            reviews=[
                ReviewRecord(
                    id=r.id,
                    reviewer=r.reviewer,
                    created_at=_utc(r.created_at),
                    rating=r.rating,
                    comment=r.comment,
                    accepted_as_is=r.accepted_as_is,
                    analysis_id=r.analysis_id,
                    values=_analysis_values(r),
                    suggestion=_analysis_values(reviewed[r.analysis_id]),
                    source_review_id=sources.get(r.id),
                )
                for r in reviews
            ],
            group_total=group_total or 1,
            group_open_others=group_open or 0,
        )


# ------------------------------------------------------------------------------------------------ submitting


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
    changes = changed_fields(_analysis_values(analysis), values)
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
    present = {line.strip() for line in context.splitlines()}
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
    url: str | None = None,
) -> SubmittedReview:
    """Store one review (and its audit event) in one transaction; the AI analysis is never touched.

    ``correction`` holds every field of :data:`REVIEW_FIELDS` and is validated like an LLM answer; ``None``
    accepts the AI analysis as it is.  ``analysis_id`` is the analysis the reviewer saw (default: the newest),
    so a re-analysis that lands while someone reviews does not get credited with their judgement.  A review
    that changes nothing is stored as accepted.  With ``apply_to_group``, every other *unreviewed* analysed
    item with the same fingerprint gets the same correction as its own review (error lines are kept only where
    that item's log context contains them), each with an ``applied_from_group`` event naming the source review.
    """
    reviewer_name = _clean_text(reviewer, MAX_REVIEWER_CHARS, "reviewer")
    if not reviewer_name:
        raise ReviewRejected("a review needs a reviewer")
    rating_value = _rating(rating)
    comment_text = _clean_text(comment, MAX_COMMENT_CHARS, "comment")
    with session_scope(url) as session:
        failure = session.get(FailedTask, failure_id)
        if failure is None:
            raise ItemNotFound(f"no failed task with id {failure_id}")
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
        values = _analysis_values(analysis) if correction is None else _validated(correction)
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
        applied = _apply_to_group(session, failure, review, values, apply_to_group)
        return SubmittedReview(
            review_id=review.id,
            failed_task_id=failure_id,
            accepted_as_is=review.accepted_as_is,
            changed_fields=tuple(changes),
            applied_review_ids=tuple(applied),
        )


def _apply_to_group(
    session: Session, failure: FailedTask, source: Review, values: Mapping[str, Any], enabled: bool
) -> list[int]:
    if not enabled or not failure.fingerprint:
        return []
    member_ids = list(session.scalars(_open_group_members(failure.fingerprint, failure.id)))
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


# ------------------------------------------------------------------------------------------------ statistics


def _ratio(part: int | None, whole: int | None) -> float | None:
    return round(part / whole, 4) if whole and part is not None else None


def feedback_stats(
    *,
    since: datetime | None = None,
    now: datetime | None = None,
    chart_days: int = 30,
    recent_days: int = 7,
    url: str | None = None,
) -> dict[str, Any]:
    """Feedback statistics as one JSON-able dict (the guide's ``feedback/stats`` keys plus the review UI's).

    ``since`` limits the review-based figures (counts, ratings, categories, agreement) to reviews made from then
    on; the default is all time.  Item figures (failed, analysed, reviewed) are always all time.
    ``feedback_per_day`` covers the ``chart_days`` days up to ``now`` (zeros included), ``recent_feedback_count``
    the last ``recent_days`` days.  Agreement is the share of reviews that kept the AI's value of a field, per
    analyzer and model; messages count as kept when equal after trimming and lower-casing.
    """
    now = _utc(now or utcnow())
    window: list[ColumnElement[bool]] = [] if since is None else [Review.created_at >= _utc(since)]
    first_day = (now - timedelta(days=chart_days - 1)).date()
    day = func.date(Review.created_at)
    with session_scope(url) as session:
        failed = session.scalar(select(func.count()).select_from(FailedTask)) or 0
        analysed = session.scalar(select(func.count(func.distinct(Analysis.failed_task_id)))) or 0
        reviewed = session.scalar(select(func.count(func.distinct(Review.failed_task_id)))) or 0
        # One pass over the reviews for totals, ratings and categories...
        review_groups = session.execute(
            select(Review.rating, Review.category, Review.accepted_as_is, func.count())
            .where(*window)
            .group_by(Review.rating, Review.category, Review.accepted_as_is)
        ).all()
        # ...and one over reviews joined to what they reviewed, for agreement and the AI's categories.
        model_groups = _model_groups(session, window)
        per_day = dict(
            session.execute(
                select(day, func.count())
                .where(Review.created_at >= datetime.combine(first_day, datetime.min.time(), timezone.utc))
                .group_by(day)
            ).all()
        )
        recent = session.scalar(select(func.count()).where(Review.created_at >= now - timedelta(days=recent_days)))
    total = sum(n for *_, n in review_groups)
    histogram = {str(r): 0 for r in range(1, 6)}
    corrected_categories: dict[str, int] = {}
    accepted = rating_sum = 0
    for rating, category, accepted_as_is, n in review_groups:
        histogram[str(rating)] += n
        corrected_categories[category.value] = corrected_categories.get(category.value, 0) + n
        accepted += n if accepted_as_is else 0
        rating_sum += rating * n
    suggested_categories: dict[str, int] = {}
    for group in model_groups:
        suggested_categories[group["category"]] = suggested_categories.get(group["category"], 0) + group["reviews"]
    per_day_by_text = {str(d): n for d, n in per_day.items()}
    return {
        # The original tool's feedback/stats keys.
        "total_feedback_count": total,
        "avg_user_rating": round(rating_sum / total, 2) if total else 0.0,
        "category_distribution": _by_count(corrected_categories),
        "recent_feedback_count": recent or 0,
        # The review UI's.
        "failed_tasks": failed,
        "analysed_items": analysed,
        "reviewed_items": reviewed,
        "unreviewed_items": max(analysed - reviewed, 0),
        "reviewed_share": _ratio(reviewed, analysed),
        "accepted_count": accepted,
        "corrected_count": total - accepted,
        "rating_histogram": histogram,
        "suggested_category_distribution": _by_count(suggested_categories),
        "feedback_per_day": [
            {"date": (d := (first_day + timedelta(days=i)).isoformat()), "count": per_day_by_text.get(d, 0)}
            for i in range(chart_days)
        ],
        "agreement_by_model": _agreement(model_groups),
        "since": _iso(since),
        "recent_days": recent_days,
        "generated_at": now.isoformat(),
    }


def _by_count(counts: Mapping[str, int]) -> dict[str, int]:
    return dict(sorted(((k, v) for k, v in counts.items() if v), key=lambda item: (-item[1], item[0])))


def _model_groups(session: Session, window: list[ColumnElement[bool]]) -> list[dict[str, Any]]:
    """Reviews per (analyzer, model, AI category) with how many kept each agreement field and their ratings."""

    def kept(condition: ColumnElement[bool]) -> Any:
        return func.sum(case((condition, 1), else_=0))

    rows = session.execute(
        select(
            Analysis.analyzer,
            CREDITED_MODEL.label("model"),
            Analysis.category,
            func.count(),
            kept(Review.category == Analysis.category),
            kept(Review.severity == Analysis.severity),
            kept(func.lower(func.trim(Review.error_message)) == func.lower(func.trim(Analysis.error_message))),
            func.sum(Review.rating),
        )
        .join(Review, Review.analysis_id == Analysis.id)
        .where(*window)
        .group_by(Analysis.analyzer, CREDITED_MODEL, Analysis.category)
    ).all()
    return [
        {
            "analyzer": analyzer,
            "model": model,
            "category": category.value,
            "reviews": count,
            "kept": dict(zip(AGREEMENT_FIELDS, (int(c or 0), int(s or 0), int(m or 0)), strict=True)),
            "rating_sum": int(rating_sum or 0),
        }
        for analyzer, model, category, count, c, s, m, rating_sum in rows
    ]


def _agreement(model_groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    models: dict[tuple[str, str | None], dict[str, Any]] = {}
    for group in model_groups:
        entry = models.setdefault(
            (group["analyzer"], group["model"]),
            {"reviews": 0, "rating_sum": 0, "kept": dict.fromkeys(AGREEMENT_FIELDS, 0)},
        )
        entry["reviews"] += group["reviews"]
        entry["rating_sum"] += group["rating_sum"]
        for name in AGREEMENT_FIELDS:
            entry["kept"][name] += group["kept"][name]
    ordered = sorted(models.items(), key=lambda item: (-item[1]["reviews"], item[0][0], item[0][1] or ""))
    return [
        {
            "analyzer": analyzer,
            "model": model,
            "reviews": entry["reviews"],
            "avg_rating": round(entry["rating_sum"] / entry["reviews"], 2),
            "agreement": {name: _ratio(entry["kept"][name], entry["reviews"]) for name in AGREEMENT_FIELDS},
        }
        for (analyzer, model), entry in ordered
    ]


# ------------------------------------------------------------------------------------------------ export

CSV_COLUMNS: tuple[str, ...] = (
    "review_id",
    "failed_task_id",
    "analysis_id",
    "dag_id",
    "task_id",
    "run_id",
    "map_index",
    "try_number",
    "failed_at",
    "fingerprint",
    "reviewer",
    "reviewed_at",
    "rating",
    "comment",
    "accepted_as_is",
    "source_review_id",
    "changed_fields",
    "analyzer",
    "model",
    "prompt_version",
    *(f"ai_{name}" for name in REVIEW_FIELDS),
    *(f"correction_{name}" for name in REVIEW_FIELDS),
    "log_context",
)


def _export_conditions(
    min_rating: int, since: datetime | None, until: datetime | None, status: str, latest_per_item: bool
) -> list[ColumnElement[bool]]:
    if status not in EXPORT_STATUSES:
        raise ValueError(f"status must be one of {', '.join(EXPORT_STATUSES)}, got {status!r}")
    conditions: list[ColumnElement[bool]] = [Review.rating >= min_rating]
    if since is not None:
        conditions.append(Review.created_at >= _utc(since))
    if until is not None:
        conditions.append(Review.created_at < _utc(until))
    if status != "all":
        conditions.append(Review.accepted_as_is.is_(true() if status == "accepted" else false()))
    if latest_per_item:
        newer = aliased(Review)
        conditions.append(
            ~select(newer.id).where(newer.failed_task_id == Review.failed_task_id, newer.id > Review.id).exists()
        )
    return conditions


def count_feedback(
    *,
    min_rating: int = DEFAULT_MIN_RATING,
    since: datetime | None = None,
    until: datetime | None = None,
    status: str = "all",
    latest_per_item: bool = False,
    url: str | None = None,
) -> int:
    """How many reviews :func:`iter_feedback` would yield with the same arguments."""
    with session_scope(url) as session:
        conditions = _export_conditions(min_rating, since, until, status, latest_per_item)
        return session.scalar(select(func.count()).select_from(Review).where(*conditions)) or 0


def count_feedback_by_rating(
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    status: str = "all",
    latest_per_item: bool = False,
    url: str | None = None,
) -> dict[int, int]:
    """Reviews per rating (1-5, zeros included) under the export's other filters.

    An export that matches nothing says why: usually every review is rated below the minimum rating.
    """
    with session_scope(url) as session:
        conditions = _export_conditions(1, since, until, status, latest_per_item)
        rows = session.execute(select(Review.rating, func.count()).where(*conditions).group_by(Review.rating)).all()
    counts = dict.fromkeys(range(1, 6), 0)
    counts.update({int(rating): int(n) for rating, n in rows})
    return counts


def iter_feedback(
    *,
    min_rating: int = DEFAULT_MIN_RATING,
    since: datetime | None = None,
    until: datetime | None = None,
    status: str = "all",
    latest_per_item: bool = False,
    batch_size: int = 1_000,
    url: str | None = None,
) -> Iterator[dict[str, Any]]:
    """Reviewed feedback, oldest review first, one JSON-able dict per review (the unit of training data).

    Filters: ``rating >= min_rating``; review time in ``[since, until)``; ``status`` ``all``, ``accepted``
    (the AI analysis kept as is) or ``corrected``; ``latest_per_item`` keeps only each failed try's newest review
    (otherwise two reviewers of one item give two rows).  Each row carries the log context the analysis was made
    from, the AI's suggestion (``ai``) and the reviewer's values (``correction``).  Rows are read in batches of
    short transactions up to the newest review that existed when iteration began, so a long download neither
    blocks writers nor mixes in reviews submitted meanwhile.
    """
    conditions = _export_conditions(min_rating, since, until, status, latest_per_item)
    with session_scope(url) as session:
        last_id = session.scalar(select(func.max(Review.id)))
    after = 0
    while last_id is not None and after < last_id:
        with session_scope(url) as session:
            rows = session.execute(
                select(*_EXPORT_COLUMNS)
                .join(Analysis, Analysis.id == Review.analysis_id)
                .join(FailedTask, FailedTask.id == Review.failed_task_id)
                .where(Review.id > after, Review.id <= last_id, *conditions)
                .order_by(Review.id)
                .limit(batch_size)
            ).all()
            sources = _sources(session, [row.review_id for row in rows])
        if not rows:
            return
        for row in rows:
            yield _export_row(row._mapping, sources.get(row.review_id))
        after = rows[-1].review_id


_EXPORT_COLUMNS = (
    Review.id.label("review_id"),
    Review.failed_task_id,
    Review.analysis_id,
    FailedTask.dag_id,
    FailedTask.task_id,
    FailedTask.run_id,
    FailedTask.map_index,
    FailedTask.try_number,
    FailedTask.failed_at,
    FailedTask.fingerprint,
    FailedTask.log_excerpt,
    FailedTask.error_text,
    Review.reviewer,
    Review.created_at.label("reviewed_at"),
    Review.rating,
    Review.comment,
    Review.accepted_as_is,
    Analysis.analyzer,
    CREDITED_MODEL.label("model"),
    Analysis.prompt_version,
    *(getattr(Analysis, name).label(f"ai_{name}") for name in REVIEW_FIELDS),
    *(getattr(Review, name).label(f"correction_{name}") for name in REVIEW_FIELDS),
)


def _iso(moment: datetime | None) -> str | None:
    return _utc(moment).isoformat() if moment is not None else None


def _prefixed_values(row: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    values = {name: row[prefix + name] for name in REVIEW_FIELDS}
    values["category"] = values["category"].value
    values["severity"] = values["severity"].value
    values["error_lines"] = list(values["error_lines"] or [])
    values["suggested_actions"] = list(values["suggested_actions"] or [])
    return values


def _export_row(row: Mapping[str, Any], source_review_id: int | None) -> dict[str, Any]:
    suggestion, correction = _prefixed_values(row, "ai_"), _prefixed_values(row, "correction_")
    return {
        "review_id": row["review_id"],
        "failed_task_id": row["failed_task_id"],
        "analysis_id": row["analysis_id"],
        "dag_id": row["dag_id"],
        "task_id": row["task_id"],
        "run_id": row["run_id"],
        "map_index": row["map_index"],
        "try_number": row["try_number"],
        "failed_at": _iso(row["failed_at"]),
        "fingerprint": row["fingerprint"],
        "reviewer": row["reviewer"],
        "reviewed_at": _iso(row["reviewed_at"]),
        "rating": row["rating"],
        "comment": row["comment"],
        "accepted_as_is": row["accepted_as_is"],
        "source_review_id": source_review_id,
        "changed_fields": changed_fields(suggestion, correction),
        "log_context": row["log_excerpt"] if row["log_excerpt"] is not None else row["error_text"],
        "ai": {
            "analyzer": row["analyzer"],
            "model": row["model"],
            "prompt_version": row["prompt_version"],
            **suggestion,
        },
        "correction": correction,
    }


def to_jsonl(rows: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    """One compact JSON object per line, UTF-8 text as is."""
    for row in rows:
        yield json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n"


# A spreadsheet runs a cell that starts with one of these as a formula; log text and reviewers' text are
# attacker-controlled, so such a cell gets a leading apostrophe (OWASP's CSV injection advice).  JSONL stays verbatim.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_value(value: Any) -> Any:
    if isinstance(value, (list, dict)):
        value = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, bool):
        return "true" if value else "false"
    elif value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def _csv_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """An export row flattened to :data:`CSV_COLUMNS` (lists as JSON text)."""
    flat: dict[str, Any] = {name: row.get(name) for name in CSV_COLUMNS}
    for name in REVIEW_FIELDS:
        flat[f"ai_{name}"] = row["ai"][name]
        flat[f"correction_{name}"] = row["correction"][name]
    for name in ("analyzer", "model", "prompt_version"):
        flat[name] = row["ai"][name]
    flat["changed_fields"] = ",".join(row["changed_fields"])
    return {name: _csv_value(value) for name, value in flat.items()}


def to_csv(rows: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    """A header line, then one CSV line per row (RFC 4180 quoting; multi-line cells are quoted; text cells that a
    spreadsheet would run as a formula start with an apostrophe)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(_csv_record(row))
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue()
