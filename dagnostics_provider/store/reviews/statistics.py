"""Feedback statistics: totals, ratings, categories, reviews per day and agreement by model."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session

from dagnostics_provider.store.engine import session_scope
from dagnostics_provider.store.models import Analysis, FailedTask, Review, utcnow
from dagnostics_provider.store.reviews.common import (
    AGREEMENT_FIELDS,
    CREDITED_MODEL,
    iso,
    utc,
)
from dagnostics_provider.store.reviews.dag_access import DagScope, dag_scope_condition


def _ratio(part: int | None, whole: int | None) -> float | None:
    return round(part / whole, 4) if whole and part is not None else None


def feedback_stats(
    *,
    since: datetime | None = None,
    now: datetime | None = None,
    chart_days: int = 30,
    recent_days: int = 7,
    dag_ids: DagScope = None,
    url: str | None = None,
) -> dict[str, Any]:
    """Feedback statistics as one JSON-able dict (the guide's ``feedback/stats`` keys plus the review UI's).

    ``since`` limits the review-based figures (counts, ratings, categories, agreement) to reviews made from then
    on; the default is all time.  Item figures (failed, analysed, reviewed) are always all time.
    ``feedback_per_day`` covers the ``chart_days`` days up to ``now`` (zeros included), ``recent_feedback_count``
    the last ``recent_days`` days.  Agreement is the share of reviews that kept the AI's value of a field, per
    analyzer and model; messages count as kept when equal after trimming and lower-casing.  Every figure counts
    only failed tries of DAGs in ``dag_ids``.
    """
    now = utc(now or utcnow())
    scoped_reviews = dag_scope_condition(Review.failed_task_id, dag_ids)
    window = scoped_reviews + ([] if since is None else [Review.created_at >= utc(since)])
    first_day = (now - timedelta(days=chart_days - 1)).date()
    day = func.date(Review.created_at)
    with session_scope(url) as session:
        scoped_failures = dag_scope_condition(FailedTask.id, dag_ids)
        failed = session.scalar(select(func.count()).select_from(FailedTask).where(*scoped_failures)) or 0
        analysed = (
            session.scalar(
                select(func.count(func.distinct(Analysis.failed_task_id))).where(
                    *dag_scope_condition(Analysis.failed_task_id, dag_ids)
                )
            )
            or 0
        )
        reviewed = session.scalar(select(func.count(func.distinct(Review.failed_task_id))).where(*scoped_reviews)) or 0
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
                .where(
                    Review.created_at >= datetime.combine(first_day, datetime.min.time(), timezone.utc),
                    *scoped_reviews,
                )
                .group_by(day)
            ).all()
        )
        recent = session.scalar(
            select(func.count()).where(Review.created_at >= now - timedelta(days=recent_days), *scoped_reviews)
        )
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
        "since": iso(since),
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
