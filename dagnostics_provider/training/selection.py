"""Which reviews become training examples: read from the store page by page, resolved item by item.

The rules (documented for users in docs/dataset.md):

1. One reviewer, one failure: that reviewer's latest review wins (a resubmission is a newer row).
2. Several reviewers on one failure: the highest rating wins; on a tie, the later review.  Reviewers whose
   latest reviews disagree on the diagnosis (error message, category or severity) count as a conflict.
3. The winning review must be rated ``min_rating`` or better and come from an included source: a correction
   (``user_feedback``, with ``include_feedback``) or an analysis accepted unchanged (``accepted_analysis``, with
   ``include_accepted``).  Rules 1-2 run first, so an overruled review never sneaks in through rule 3.
4. The failure must not be marked ignored and must have the log context the analyzer was given; the reviewed
   analysis must validate against the analysis schema.
5. Exact duplicates (the same input and output) are dropped; the one from the oldest failure stays.

Reviews are append-only, so reading every review up to the newest id at the start gives a consistent snapshot
even though it is read in short keyset-paged transactions: memory stays flat however large the store grows, and
a long read never holds SQLite's write lock or a long PostgreSQL transaction.  Nothing is dropped silently: each
exclusion is counted in :class:`SelectionStats`.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
from collections import Counter
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from sqlalchemy import Row, func, select, tuple_

from dagnostics_provider.analysis.schema import InvalidAnalysis, parse_analysis
from dagnostics_provider.prompt_format import PROMPT_VERSION, training_example
from dagnostics_provider.store.engine import session_scope
from dagnostics_provider.store.models import Analysis, FailedTask, FailureStatus, Review

log = logging.getLogger(__name__)

SOURCE_FEEDBACK = "user_feedback"
SOURCE_ACCEPTED = "accepted_analysis"
PAGE_SIZE = 1_000  # rows per short read transaction; a page holds up to ~6 KB of log context per row
PROGRESS_EVERY = 10_000

COLUMNS = (  # what the selection reads per review (the benchmark streams the same for its baseline)
    Review.id,
    Review.failed_task_id,
    Review.analysis_id,
    Review.reviewer,
    Review.rating,
    Review.accepted_as_is,
    Review.error_message,
    Review.category,
    Review.severity,
    Review.confidence,
    Review.reasoning,
    Review.error_lines,
    Review.suggested_actions,
    Analysis.confidence.label("analysis_confidence"),
    FailedTask.dag_id,
    FailedTask.task_id,
    FailedTask.fingerprint,
    FailedTask.status.label("failure_status"),
    FailedTask.log_excerpt,
)


@dataclass
class SelectionStats:
    """What the selection read and why items did not become examples."""

    last_review_id: int | None = None
    reviews_read: int = 0
    items_reviewed: int = 0
    superseded_reviews: int = 0
    multi_reviewer_items: int = 0
    conflicts: int = 0
    excluded: Counter[str] = field(default_factory=Counter)
    selected: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "last_review_id": self.last_review_id,
            "reviews_read": self.reviews_read,
            "items_reviewed": self.items_reviewed,
            "superseded_reviews": self.superseded_reviews,
            "multi_reviewer_items": self.multi_reviewer_items,
            "conflicts": self.conflicts,
            "excluded": dict(sorted(self.excluded.items())),
            "selected": self.selected,
        }


@dataclass(frozen=True)
class Example:
    """A dataset row and what the split and the statistics need to know about it."""

    row: dict[str, Any]
    group: str  # failures sharing a fingerprint are one group and never straddle train and validation
    category: str
    severity: str
    source: str


def source_of(review: Row) -> str:
    return SOURCE_ACCEPTED if review.accepted_as_is else SOURCE_FEEDBACK


def resolve(reviews: list[Row]) -> tuple[Row, int, bool]:
    """The winning review of one item (rules 1 and 2), how many were superseded, and whether reviewers conflict.

    ``reviews`` are one failure's reviews in id order.
    """
    latest: dict[str, Row] = {}
    for review in reviews:
        latest[review.reviewer] = review
    winner = max(latest.values(), key=attrgetter("rating", "id"))
    diagnoses = {(r.error_message.strip(), r.category, r.severity) for r in latest.values()}
    return winner, len(reviews) - len(latest), len(diagnoses) > 1


def _answer(review: Row) -> dict[str, Any]:
    # A reviewer may leave confidence empty; the form starts from the AI's value, so empty means "kept it".
    confidence = review.confidence if review.confidence is not None else review.analysis_confidence
    return {
        "error_message": review.error_message,
        "category": review.category.value,
        "severity": review.severity.value,
        "confidence": confidence,
        "reasoning": review.reasoning or "",
        "error_lines": list(review.error_lines or []),
        "suggested_actions": list(review.suggested_actions or []),
    }


def _example(review: Row, source: str) -> Example:
    result = parse_analysis(_answer(review))
    row = training_example(review.log_excerpt, result)
    row["metadata"] = {
        "source": source,
        "reviewer": review.reviewer,
        "rating": review.rating,
        "fingerprint": review.fingerprint,
        "dag_id": review.dag_id,
        "task_id": review.task_id,
        "failed_task_id": review.failed_task_id,
        "analysis_id": review.analysis_id,
        "review_id": review.id,
        "prompt_version": PROMPT_VERSION,
    }
    group = review.fingerprint or f"failed_task:{review.failed_task_id}"
    return Example(row=row, group=group, category=result.category, severity=result.severity, source=source)


def _exclusion(winner: Row, min_rating: int, sources: Collection[str]) -> str | None:
    if winner.rating < min_rating:
        return "below_min_rating"
    if source_of(winner) not in sources:
        return "source_not_included"
    if winner.failure_status == FailureStatus.ignored:
        return "failure_ignored"
    if not (winner.log_excerpt or "").strip():
        return "no_log_context"
    return None


def _candidate(winner: Row, min_rating: int, sources: Collection[str], seen: set[bytes]) -> Example | str:
    """The winning review's example (rules 3-5), or the reason it is none."""
    reason = _exclusion(winner, min_rating, sources)
    if reason is not None:
        return reason
    try:
        example = _example(winner, source_of(winner))
    except InvalidAnalysis as exc:
        log.warning("Review %s is not a valid analysis (%s); skipped", winner.id, exc)
        return "invalid_analysis"
    key = hashlib.blake2b(f"{example.row['input']}\0{example.row['output']}".encode(), digest_size=16).digest()
    if key in seen:
        return "duplicate"
    seen.add(key)
    return example


def _reviews(snapshot: int, url: str | None) -> Iterator[Row]:
    """Every review up to ``snapshot`` with its failure and analysis, ordered by (failure, review id)."""
    after: tuple[int, int] | None = None
    while True:
        query = (
            select(*COLUMNS)
            .join(FailedTask, FailedTask.id == Review.failed_task_id)
            .join(Analysis, Analysis.id == Review.analysis_id)
            .where(Review.id <= snapshot)
            .order_by(Review.failed_task_id, Review.id)
            .limit(PAGE_SIZE)
        )
        if after is not None:
            query = query.where(tuple_(Review.failed_task_id, Review.id) > tuple_(*after))
        with session_scope(url) as session:
            page = session.execute(query).all()
        yield from page
        if len(page) < PAGE_SIZE:
            return
        after = (page[-1].failed_task_id, page[-1].id)


def _items(reviews: Iterable[Row], stats: SelectionStats) -> Iterator[list[Row]]:
    for _, group in itertools.groupby(reviews, key=attrgetter("failed_task_id")):
        item = list(group)
        before = stats.reviews_read
        stats.reviews_read += len(item)
        if stats.reviews_read // PROGRESS_EVERY > before // PROGRESS_EVERY:
            log.info("Dataset: %d reviews read, %d examples selected so far", stats.reviews_read, stats.selected)
        yield item


def select_examples(
    min_rating: int, sources: Collection[str], stats: SelectionStats, url: str | None = None
) -> Iterator[Example]:
    """Stream the examples the rules select, in store order (failure id), filling ``stats`` as it goes.

    ``sources`` are the kinds of review that may become examples: :data:`SOURCE_FEEDBACK`, :data:`SOURCE_ACCEPTED`.
    """
    with session_scope(url) as session:
        stats.last_review_id = session.scalar(select(func.max(Review.id)))
    if stats.last_review_id is None:
        return
    seen: set[bytes] = set()
    for item in _items(_reviews(stats.last_review_id, url), stats):
        winner, superseded, conflict = resolve(item)
        stats.items_reviewed += 1
        stats.superseded_reviews += superseded
        stats.multi_reviewer_items += len({r.reviewer for r in item}) > 1
        stats.conflicts += conflict
        candidate = _candidate(winner, min_rating, sources, seen)
        if isinstance(candidate, str):
            stats.excluded[candidate] += 1
            continue
        stats.selected += 1
        yield candidate
    log.info("Dataset: %d reviews read, %d examples selected", stats.reviews_read, stats.selected)
