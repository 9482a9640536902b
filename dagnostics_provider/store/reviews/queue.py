"""The review queue: filtered, sorted pages of analysed failed tries, fingerprint groups and neighbours."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, false, func, or_, select, true
from sqlalchemy.orm import Session, aliased

from dagnostics_provider.analysis.schema import Category, Severity
from dagnostics_provider.store.engine import session_scope
from dagnostics_provider.store.models import Analysis, FailedTask, Review, is_row_id
from dagnostics_provider.store.reviews.common import (
    CREDITED_MODEL,
    QueueSort,
    ReviewStatus,
    has_review,
    utc,
)
from dagnostics_provider.store.reviews.dag_access import DagScope


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
    dag_ids: DagScope = None  # the DAGs the user may read (set by the view from the auth manager, never by a URL)


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
        return ~has_review(failure_id)
    if status is ReviewStatus.reviewed:
        return has_review(failure_id)
    return _newest_review_accepted(status is ReviewStatus.accepted, failure_id)


def _fingerprint_condition(value: str) -> ColumnElement[bool]:
    if len(value) >= 64:
        return FailedTask.fingerprint == value
    # A prefix as a range, so both SQLite and PostgreSQL use the fingerprint index (LIKE would not).
    upper = value[:-1] + chr(ord(value[-1]) + 1)
    return and_(FailedTask.fingerprint >= value, FailedTask.fingerprint < upper)


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
    if filters.dag_ids is not None:
        conditions.append(FailedTask.dag_id.in_(sorted(filters.dag_ids)))
    if filters.dag_id:
        conditions.append(FailedTask.dag_id == filters.dag_id)
    if filters.task_id:
        conditions.append(FailedTask.task_id == filters.task_id)
    if filters.failed_since is not None:
        conditions.append(FailedTask.failed_at >= utc(filters.failed_since))
    if filters.failed_until is not None:
        conditions.append(FailedTask.failed_at < utc(filters.failed_until))
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
        failed_at=utc(row[6]),
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
                .where(~has_review(FailedTask.id))
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
            last_failed_at=utc(row.last_failed_at),
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
        key = _sort_key(session, failure_id, sort) if is_row_id(failure_id) else None
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


def distinct_dag_ids(limit: int = 500, url: str | None = None, *, dag_ids: DagScope = None) -> list[str]:
    """DAG ids in ``dag_ids`` that have failed tries (for the filter's suggestions); read from the (dag_id, task_id)
    index."""
    query = select(FailedTask.dag_id).distinct().order_by(FailedTask.dag_id).limit(limit)
    if dag_ids is not None:
        query = query.where(FailedTask.dag_id.in_(sorted(dag_ids)))
    with session_scope(url) as session:
        return list(session.scalars(query))
