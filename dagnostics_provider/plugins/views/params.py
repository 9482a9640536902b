"""Query-string parameters of the review UI: parsing them into store filters and writing them back into links.

Every page carries the queue's filters in its links (the review page's previous/next, "back to queue"), so a
reviewer never loses their place.  A value that does not parse is dropped and reported instead of failing the
page; the JSON endpoints answer 400 with the same message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

from dagnostics_provider.analysis.schema import Category, Severity
from dagnostics_provider.store.models import MAX_ROW_ID
from dagnostics_provider.store.reviews import (
    DEFAULT_MIN_RATING,
    EXPORT_STATUSES,
    QueueFilters,
    QueueSort,
    ReviewStatus,
)

EXPORT_FORMATS: tuple[str, ...] = ("jsonl", "csv")
GROUP_BY_FINGERPRINT = "fingerprint"
_FILTER_PARAMS: tuple[str, ...] = (
    "status",
    "dag_id",
    "task_id",
    "category",
    "severity",
    "min_confidence",
    "max_confidence",
    "since",
    "until",
    "fingerprint",
)


@dataclass(frozen=True)
class QueueQuery:
    """The queue as a request asked for it."""

    filters: QueueFilters = field(default_factory=QueueFilters)
    sort: QueueSort = QueueSort.newest
    page: int = 1
    grouped: bool = False
    params: dict[str, str] = field(default_factory=dict)  # the valid, non-empty parameters, for links
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExportQuery:
    format: str = "jsonl"
    min_rating: int = DEFAULT_MIN_RATING
    since: datetime | None = None
    until: datetime | None = None  # exclusive: the day after the last day asked for
    status: str = "all"
    latest_per_item: bool = False
    params: dict[str, str] = field(default_factory=dict)
    problems: tuple[str, ...] = ()


# Every parameter is bounded: a value beyond these is reported and ignored, never passed to the database.
MAX_TEXT_PARAM_CHARS = 250  # Airflow's own limit for DAG and task ids
MAX_PAGE = 1_000_000  # 500 million rows at the largest page size; beyond, OFFSET overflows 64 bits


def _day(value: str) -> datetime:
    return datetime.combine(date.fromisoformat(value), datetime.min.time(), timezone.utc)


def _until(value: str) -> datetime | None:
    """The day after ``value`` (the form's "to" day is inclusive); the calendar's last day means no limit."""
    day = date.fromisoformat(value)
    return None if day == date.max else _day(value) + timedelta(days=1)


def _text(value: str) -> str:
    if len(value) > MAX_TEXT_PARAM_CHARS or "\x00" in value:
        raise ValueError(f"must be at most {MAX_TEXT_PARAM_CHARS} characters of text")
    return value


def _confidence(value: str) -> float:
    number = float(value)
    if not 0.0 <= number <= 1.0:
        raise ValueError("must be between 0 and 1")
    return number


_PARSERS: dict[str, Any] = {
    "status": ReviewStatus,
    "category": Category,
    "severity": Severity,
    "min_confidence": _confidence,
    "max_confidence": _confidence,
    "since": _day,
    "until": _until,
    "dag_id": _text,
    "task_id": _text,
    "fingerprint": lambda value: _text(value).lower(),
}


def _parse(args: Mapping[str, str], names: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    values: dict[str, Any] = {}
    params: dict[str, str] = {}
    problems: list[str] = []
    for name in names:
        raw = (args.get(name) or "").strip()
        if not raw:
            continue
        try:
            values[name] = _PARSERS[name](raw)
        except ValueError:
            problems.append(f"ignored {name}={raw[:80]!r}")
            continue
        params[name] = raw
    return values, params, problems


def _page(args: Mapping[str, str], problems: list[str]) -> int:
    raw = (args.get("page") or "1").strip()
    try:
        page = int(raw) if len(raw) <= 20 else MAX_PAGE + 1
    except ValueError:
        problems.append(f"ignored page={raw[:20]!r}")
        return 1
    if page > MAX_PAGE:
        problems.append(f"page is at most {MAX_PAGE:,}")
        return MAX_PAGE
    return max(1, page)


def parse_queue_query(args: Mapping[str, str]) -> QueueQuery:
    values, params, problems = _parse(args, _FILTER_PARAMS)
    sort_raw = (args.get("sort") or QueueSort.newest.value).strip()
    try:
        sort = QueueSort(sort_raw)
    except ValueError:
        problems.append(f"ignored sort={sort_raw[:40]!r}")
        sort = QueueSort.newest
    if sort is not QueueSort.newest:
        params["sort"] = sort.value
    grouped = (args.get("group") or "").strip() == GROUP_BY_FINGERPRINT
    if grouped:
        params["group"] = GROUP_BY_FINGERPRINT
    page = _page(args, problems)
    filters = QueueFilters(
        status=values.get("status"),
        dag_id=values.get("dag_id"),
        task_id=values.get("task_id"),
        category=values.get("category"),
        severity=values.get("severity"),
        min_confidence=values.get("min_confidence"),
        max_confidence=values.get("max_confidence"),
        failed_since=values.get("since"),
        failed_until=values.get("until"),
        fingerprint=values.get("fingerprint"),
    )
    return QueueQuery(filters, sort, page, grouped, params, tuple(problems))


def item_link_params(query: QueueQuery) -> dict[str, str]:
    """What a review page needs to know of the queue: filters and order (not the page, not the grouping)."""
    return {name: value for name, value in query.params.items() if name not in ("page", "group")}


def parse_export_query(args: Mapping[str, str]) -> ExportQuery:
    values, params, problems = _parse(args, ("since", "until"))
    fmt = (args.get("format") or "jsonl").strip().lower()
    if fmt not in EXPORT_FORMATS:
        problems.append(f"format must be one of {', '.join(EXPORT_FORMATS)}")
        fmt = "jsonl"
    params["format"] = fmt
    status = (args.get("status") or "all").strip().lower()
    if status not in EXPORT_STATUSES:
        problems.append(f"status must be one of {', '.join(EXPORT_STATUSES)}")
        status = "all"
    params["status"] = status
    raw_rating = (args.get("min_rating") or str(DEFAULT_MIN_RATING)).strip()
    try:
        min_rating = int(raw_rating)
        if not 1 <= min_rating <= 5:
            raise ValueError
    except ValueError:
        problems.append("min_rating must be a whole number from 1 to 5")
        min_rating = DEFAULT_MIN_RATING
    params["min_rating"] = str(min_rating)
    latest = (args.get("latest") or "").strip().lower() in ("1", "true", "on", "yes")
    if latest:
        params["latest"] = "1"
    return ExportQuery(
        format=fmt,
        min_rating=min_rating,
        since=values.get("since"),
        until=values.get("until"),
        status=status,
        latest_per_item=latest,
        params=params,
        problems=tuple(problems),
    )


# -- JSON bodies of the API --------------------------------------------------------------------------------------------


def json_flag(body: Mapping[str, Any], name: str) -> bool:
    """A JSON boolean, False when absent.

    Only ``true``/``false`` count: ``"false"`` or ``"no"`` are truthy strings, and reading them as ``true`` once
    stored an acceptance and dropped the correction, or reviewed a whole fingerprint group.
    """
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise ValueError(f'"{name}" must be true or false (a JSON boolean), not {json_kind(value)}')
    return value


def json_row_id(body: Mapping[str, Any], name: str, *, required: bool = False) -> int | None:
    """A row id given as a JSON integer from 1 to :data:`MAX_ROW_ID` (``null`` or absent when not required)."""
    value = body.get(name)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ROW_ID:
        raise ValueError(f'"{name}" must be an integer from 1 to {MAX_ROW_ID}, not {json_kind(value)}')
    return value


def json_kind(value: Any) -> str:
    """How an error message names a JSON value without echoing a long or hostile one."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return "a number that is out of range" if not 1 <= value <= MAX_ROW_ID else "a number"
    return {str: "a string", float: "a decimal number", list: "a list", dict: "an object"}.get(type(value), "a value")
