"""Feedback export: reviewed analyses as JSON-able rows, JSONL and spreadsheet-safe CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, false, func, select, true
from sqlalchemy.orm import aliased

from dagnostics_provider.store.engine import session_scope
from dagnostics_provider.store.models import Analysis, FailedTask, Review
from dagnostics_provider.store.reviews.common import (
    CREDITED_MODEL,
    DEFAULT_MIN_RATING,
    EXPORT_STATUSES,
    REVIEW_FIELDS,
    applied_sources,
    changed_fields,
    iso,
    utc,
)
from dagnostics_provider.store.reviews.dag_access import DagScope, dag_scope_condition

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
    min_rating: int,
    since: datetime | None,
    until: datetime | None,
    status: str,
    latest_per_item: bool,
    dag_ids: DagScope,
) -> list[ColumnElement[bool]]:
    if status not in EXPORT_STATUSES:
        raise ValueError(f"status must be one of {', '.join(EXPORT_STATUSES)}, got {status!r}")
    conditions = [Review.rating >= min_rating, *dag_scope_condition(Review.failed_task_id, dag_ids)]
    if since is not None:
        conditions.append(Review.created_at >= utc(since))
    if until is not None:
        conditions.append(Review.created_at < utc(until))
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
    dag_ids: DagScope = None,
    url: str | None = None,
) -> int:
    """How many reviews :func:`iter_feedback` would yield with the same arguments."""
    with session_scope(url) as session:
        conditions = _export_conditions(min_rating, since, until, status, latest_per_item, dag_ids)
        return session.scalar(select(func.count()).select_from(Review).where(*conditions)) or 0


def count_feedback_by_rating(
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    status: str = "all",
    latest_per_item: bool = False,
    dag_ids: DagScope = None,
    url: str | None = None,
) -> dict[int, int]:
    """Reviews per rating (1-5, zeros included) under the export's other filters.

    An export that matches nothing says why: usually every review is rated below the minimum rating.
    """
    with session_scope(url) as session:
        conditions = _export_conditions(1, since, until, status, latest_per_item, dag_ids)
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
    dag_ids: DagScope = None,
    url: str | None = None,
) -> Iterator[dict[str, Any]]:
    """Reviewed feedback, oldest review first, one JSON-able dict per review (the unit of training data).

    Filters: ``rating >= min_rating``; review time in ``[since, until)``; ``status`` ``all``, ``accepted``
    (the AI analysis kept as is) or ``corrected``; ``latest_per_item`` keeps only each failed try's newest review
    (otherwise two reviewers of one item give two rows); ``dag_ids`` keeps reviews of those DAGs' failures.
    Each row carries the log context the analysis was made from, the AI's suggestion (``ai``) and the reviewer's
    values (``correction``).  Rows are read in batches of short transactions up to the newest review that existed
    when iteration began, so a long download neither blocks writers nor mixes in reviews submitted meanwhile.
    """
    conditions = _export_conditions(min_rating, since, until, status, latest_per_item, dag_ids)
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
            sources = applied_sources(session, [row.review_id for row in rows])
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
        "failed_at": iso(row["failed_at"]),
        "fingerprint": row["fingerprint"],
        "reviewer": row["reviewer"],
        "reviewed_at": iso(row["reviewed_at"]),
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
