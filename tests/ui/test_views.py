"""The review UI's pages and endpoints through Flask's test client: access, CSRF, escaping, the review flow."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from markupsafe import escape
from sqlalchemy import func, select

from dagnostics_provider.analysis.schema import CATEGORY_DEFINITIONS, CATEGORY_EXAMPLES
from dagnostics_provider.prompt_format import PROMPT_VERSION
from dagnostics_provider.store import reviews
from dagnostics_provider.store.engine import session_scope
from dagnostics_provider.store.models import Review
from tests.ui.seed import XSS_LINE


def _form(client, failure_id: int, **changes) -> dict:
    """What the review form posts: the AI's values it is prefilled with, the page's CSRF token, plus ``changes``."""
    item = reviews.get_review_item(failure_id)
    values = {"csrf_token": client.csrf(), "analysis_id": str(item.analysis["id"]), "action": "submit"}
    for name in reviews.REVIEW_FIELDS:
        value = item.analysis[name]
        values[name] = "\n".join(value) if isinstance(value, list) else str(value)
    values.update(changes)
    return values


def _review_count() -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(Review))


# ----------------------------------------------------------------------------------------------- access


def test_anonymous_pages_redirect_to_the_airflow_login_and_endpoints_refuse(client_for, seeded):
    anonymous = client_for(None)
    page = anonymous.get("/?status=unreviewed")
    assert page.status_code == 302
    assert page.headers["Location"] == "/auth/login/?next=/dagnostics/?status=unreviewed"
    for path in ("/api/feedback/stats", "/api/queue", "/api/feedback/export"):
        response = anonymous.get(path)
        assert response.status_code == 401 and "Log in" in response.json["error"]
    assert anonymous.post(f"/review/{seeded.failure_ids[0]}", data={"rating": "5"}).status_code == 401
    assert anonymous.post("/api/reviews", json={"failed_task_id": seeded.failure_ids[0]}).status_code == 401
    forged = client_for(None)
    forged.http.set_cookie("_token", "not-a-jwt")
    assert forged.get("/").status_code == 302
    assert _review_count() == 0


def test_a_user_without_the_permission_is_refused(client_for, seeded):
    outsider = client_for("outsider")
    response = outsider.get("/")
    assert response.status_code == 403
    assert "can_read on DAGnostics Feedback" in response.get_data(as_text=True)
    assert outsider.get("/api/feedback/stats").status_code == 403


def test_a_viewer_reads_but_cannot_submit(client_for, seeded):
    viewer = client_for("viewer")
    failure_id = seeded.failure_ids[0]
    assert viewer.get("/").status_code == 200
    page = viewer.get(f"/review/{failure_id}").get_data(as_text=True)
    assert 'id="correction"' not in page and "DAGnostics Reviewer" in page
    form = _form(viewer, failure_id, rating="5")
    assert viewer.post(f"/review/{failure_id}", data=form).status_code == 403
    api = viewer.http.post(
        "/dagnostics/api/reviews",
        json={"failed_task_id": failure_id, "accept": True},
        headers={"Authorization": "Bearer token-viewer"},
    )
    assert api.status_code == 403 and "can_edit" in api.json["error"]
    assert _review_count() == 0


def test_posts_without_a_valid_csrf_token_are_refused(client_for, seeded):
    alice = client_for("alice")
    failure_id = seeded.failure_ids[0]
    form = _form(alice, failure_id, rating="4")
    assert f'name="csrf_token" value="{alice.csrf()}"' in alice.get(f"/review/{failure_id}").get_data(as_text=True)
    for token in ("", "forged", client_for("bob").csrf()):  # missing, made up, another user's
        response = alice.post(f"/review/{failure_id}", data={**form, "csrf_token": token})
        assert response.status_code == 403
        assert "security token" in response.get_data(as_text=True)
    # The JSON endpoint: a browser session needs the header, a Bearer token (a script) does not.
    body = {"failed_task_id": failure_id, "accept": True}
    assert alice.post("/api/reviews", json=body).status_code == 403
    assert alice.post("/api/reviews", json=body, headers={"X-CSRF-Token": alice.csrf()}).status_code == 201
    script = client_for(None).http.post(
        "/dagnostics/api/reviews", json=body, headers={"Authorization": "Bearer token-bob"}
    )
    assert script.status_code == 201
    assert [r.reviewer for r in reviews.get_review_item(failure_id).reviews] == ["bob", "alice"]


def test_the_view_never_writes_the_flask_session_cookie(client_for, seeded):
    alice = client_for("alice")
    failure_id = seeded.failure_ids[0]
    responses = [
        alice.get("/"),
        alice.get(f"/review/{failure_id}"),
        alice.post(f"/review/{failure_id}", data=_form(alice, failure_id, rating="3")),
        alice.get("/stats"),
    ]
    for response in responses:
        assert not any(cookie.startswith("session=") for cookie in response.headers.getlist("Set-Cookie"))


# ----------------------------------------------------------------------------------------------- escaping


def test_log_and_analysis_text_is_escaped_everywhere(client_for, seeded):
    alice = client_for("alice")
    for path in ("/", f"/review/{seeded.xss_id}", "/?group=fingerprint"):
        response = alice.get(path)
        html = response.get_data(as_text=True)
        assert "<script>document.title" not in html and "<img src=x" not in html
        assert "&lt;script&gt;document.title=" in html
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    # A review that quotes the payload shows it escaped in the diff too.
    form = _form(alice, seeded.xss_id, rating="2", error_message=f"{XSS_LINE} (edited)")
    followed = alice.post(f"/review/{seeded.xss_id}", data=form, follow_redirects=True)
    assert "Review #" in followed.get_data(as_text=True)
    assert "<script>document.title" not in followed.get_data(as_text=True)


# ----------------------------------------------------------------------------------------------- reviewing


def test_submit_shows_the_diff_and_stores_the_logged_in_user(client_for, seeded):
    alice = client_for("alice")
    failure_id = seeded.failure_ids[1]
    form = _form(
        alice,
        failure_id,
        category="configuration_error",
        error_message="HttpResponseError: the role lacks write permission",
        rating="4",
        reviewer="mallory",  # ignored: the reviewer is whoever is logged in
        comment="wrong role assignment",
    )
    response = alice.post(f"/review/{failure_id}?status=unreviewed&sort=confidence", data=form)
    assert response.status_code == 303
    location = response.headers["Location"]
    assert location.startswith(f"/dagnostics/review/{failure_id}?submitted=")
    assert "status=unreviewed" in location and "sort=confidence" in location
    page = alice.http.get(location).get_data(as_text=True)
    saved = page[page.index('id="saved"') : page.index("</section>", page.index('id="saved"'))]
    assert "2 fields corrected" in saved
    assert "<ins>configuration_error</ins>" in saved and "<del>permission_error</del>" in saved
    assert "<ins>the role lacks write permission</ins>" in saved
    (review,) = reviews.get_review_item(failure_id).reviews
    assert (review.reviewer, review.rating, review.comment) == ("alice", 4, "wrong role assignment")
    # The form under the saved diff holds what was saved, not the AI's values again (issue 14, item 7).
    form_html = page[page.index('id="correction"') :]
    assert re.search(r'<option value="configuration_error"[^>]* selected>', form_html)
    assert "the role lacks write permission</textarea>" in form_html
    assert 'id="rating-4" value="4" checked' in form_html and "wrong role assignment</textarea>" in form_html


def test_two_reviewers_of_one_item_both_show(client_for, seeded):
    failure_id = seeded.failure_ids[2]
    for user, category in (("alice", "resource_error"), ("bob", "configuration_error")):
        client = client_for(user)
        response = client.post(f"/review/{failure_id}", data=_form(client, failure_id, category=category, rating="3"))
        assert response.status_code == 303
    page = client_for("viewer").get(f"/review/{failure_id}").get_data(as_text=True)
    history = page[page.index("Reviews of this item") :]
    assert "(2)" in history[:80]
    assert history.index("<strong>bob</strong>") < history.index("<strong>alice</strong>")  # newest first


def test_accept_as_is_defaults_to_five_stars(client_for, seeded):
    alice = client_for("alice")
    failure_id = seeded.failure_ids[3]
    form = _form(alice, failure_id, action="accept", category="unknown")  # edits are ignored when accepting
    alice.post(f"/review/{failure_id}", data=form)
    (review,) = reviews.get_review_item(failure_id).reviews
    assert review.accepted_as_is and review.rating == 5 and review.values["category"] != "unknown"


def test_an_invalid_correction_is_shown_again_with_the_reason(client_for, seeded):
    alice = client_for("alice")
    failure_id = seeded.failure_ids[0]
    form = _form(alice, failure_id, rating="4", confidence="very", error_message="my edit")
    response = alice.post(f"/review/{failure_id}", data=form)
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Not saved: confidence must be a number from 0 to 1" in page
    assert ">my edit</textarea>" in page  # what the reviewer typed is kept
    response = alice.post(f"/review/{failure_id}", data={**form, "confidence": "0.5", "rating": ""})
    assert response.status_code == 400 and "rating must be" in response.get_data(as_text=True)
    assert _review_count() == 0


def test_apply_to_group_from_the_form(client_for, seeded):
    alice = client_for("alice")
    source, member = seeded.group_ids
    page = alice.get(f"/review/{source}").get_data(as_text=True)
    assert "the <strong>1</strong> other unreviewed item with the same fingerprint" in page
    alice.post(f"/review/{source}", data=_form(alice, source, rating="4", severity="critical", apply_to_group="on"))
    (applied,) = reviews.get_review_item(member).reviews
    assert applied.values["severity"] == "critical" and applied.reviewer == "alice"
    assert f"from #{applied.source_review_id}" in alice.get(f"/review/{member}").get_data(as_text=True)


# ----------------------------------------------------------------------------------------------- the queue


def test_queue_filters_grouping_and_next_unreviewed(client_for, seeded):
    alice = client_for("alice")
    page = alice.get("/?category=resource_error&min_confidence=oops").get_data(as_text=True)
    assert "ignored min_confidence=&#39;oops&#39;" in page
    assert page.count('data-href="/dagnostics/review/') == 1 and "etl_k8s_pod_oomkilled" in page
    grouped = alice.get("/?group=fingerprint").get_data(as_text=True)
    assert "fingerprint groups" in grouped and "2 similar</a>" not in grouped
    assert "2 similar</a>" in alice.get("/").get_data(as_text=True)

    first = alice.get("/next")
    assert first.status_code == 302 and first.headers["Location"] == f"/dagnostics/review/{seeded.failure_ids[-1]}"
    after = alice.get(f"/next?after={seeded.failure_ids[-1]}&dag_id=etl_postgres_refused")
    assert after.headers["Location"] == f"/dagnostics/review/{seeded.group_ids[1]}?dag_id=etl_postgres_refused"
    none_left = alice.get("/next?dag_id=nope")
    assert none_left.headers["Location"] == "/dagnostics/?dag_id=nope&notice=none-left"
    assert "Nothing left to review" in alice.get("/?dag_id=nope&notice=none-left").get_data(as_text=True)


def test_review_page_numbers_log_lines_and_marks_the_ai_error_lines(client_for, seeded):
    page = client_for("viewer").get(f"/review/{seeded.failure_ids[0]}").get_data(as_text=True)
    # Rows carry the log's own line numbers (the context's gutter); gap rows have none.
    rows = re.findall(r'<li class="([^"]*)"(?: data-line="(\d+)")?><span class="ln">(\d*)</span>', page)
    assert rows and all(n == shown for _, n, shown in rows)
    assert all(("gap" in classes.split()) == (n == "") for classes, n, _ in rows)
    numbers = [int(n) for _, n, _ in rows if n]
    assert numbers == sorted(numbers) and numbers[0] >= 1
    marked = [int(n) for classes, n, _ in rows if "ai" in classes.split()]
    assert marked, "the AI's error lines are highlighted"
    assert "etl_postgres_refused" in page and "llama3.2:3b" in page and PROMPT_VERSION in page


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"accept": "false", "correction": None}, '"accept" must be true or false'),
        ({"accept": "no"}, '"accept" must be true or false'),
        ({"accept": True, "apply_to_group": "false"}, '"apply_to_group" must be true or false'),
        ({"accept": True, "apply_to_group": 1}, '"apply_to_group" must be true or false'),
        ({"accept": True, "failed_task_id": 2**63}, '"failed_task_id" must be an integer'),
        ({"accept": True, "failed_task_id": "1"}, '"failed_task_id" must be an integer'),
        ({"accept": True, "analysis_id": [1, 2]}, '"analysis_id" must be an integer'),
        ({"accept": True, "analysis_id": 2**64}, '"analysis_id" must be an integer'),
        ({"accept": True, "comment": 42}, "comment must be text"),
        ({"accept": True, "comment": ["a"]}, "comment must be text"),
        ({"accept": True, "comment": {"a": 1}}, "comment must be text"),
    ],
)
def test_api_takes_json_types_strictly_and_stores_nothing_else(client_for, seeded, changes, message):
    """Quoted booleans once stored an acceptance instead of the correction, or reviewed a whole group."""
    alice = client_for("alice")
    body = {"failed_task_id": seeded.failure_ids[0], "rating": 3, **changes}
    response = alice.post("/api/reviews", json=body, headers={"X-CSRF-Token": alice.csrf()})
    assert response.status_code == 400 and message in response.json["error"]
    assert _review_count() == 0


def test_review_form_shows_each_category_definition(client_for, seeded):
    """The reviewer sees what a category means where it is picked (docs/categories.md)."""
    page = client_for("alice").get(f"/review/{seeded.failure_ids[0]}").get_data(as_text=True)
    chosen = re.search(r'<span class="hint category-definition" id="category-definition">([^<]*)</span>', page)
    assert chosen and chosen.group(1).strip(), "the selected category's definition is shown under the select"
    for name, definition in CATEGORY_DEFINITIONS.items():
        assert f'value="{name}" title="{escape(definition)}' in page
        assert f"<dd>{escape(definition)}; e.g. {escape(CATEGORY_EXAMPLES[name])}</dd>" in page


def test_api_queue(client_for, seeded):
    body = client_for("viewer").get("/api/queue?status=unreviewed&sort=confidence").json
    assert body["total"] == len(seeded.failure_ids)
    confidences = [item["confidence"] for item in body["items"]]
    assert confidences == sorted(confidences)
    assert {"failed_task_id", "dag_id", "category", "status", "failed_at"} <= set(body["items"][0])
    assert client_for("viewer").get("/api/queue?sort=random").status_code == 400


# ----------------------------------------------------------------------------------------------- stats and export


def test_stats_page_and_endpoint(client_for, seeded):
    alice = client_for("alice")
    failure_id = seeded.failure_ids[0]
    alice.post(f"/review/{failure_id}", data=_form(alice, failure_id, rating="4", category="configuration_error"))
    stats = alice.get("/api/feedback/stats").json
    for key in ("total_feedback_count", "avg_user_rating", "category_distribution", "recent_feedback_count"):
        assert key in stats  # the original tool's feedback/stats
    assert stats["category_distribution"] == {"configuration_error": 1}
    assert stats["total_feedback_count"] == 1 and stats["recent_feedback_count"] == 1
    page = alice.get("/stats").get_data(as_text=True)
    assert '<tr data-category="configuration_error">' in page
    assert page.count('<rect class="bar"') == 5 + 30  # rating histogram + reviews per day
    assert "ollama" in page and "https://" not in page  # no CDN: every asset is served by the view


def test_export_download(client_for, seeded):
    alice = client_for("alice")
    low, good = seeded.failure_ids[:2]
    alice.post(f"/review/{low}", data=_form(alice, low, rating="2"))
    alice.post(f"/review/{good}", data=_form(alice, good, rating="4", severity="low"))
    jsonl = alice.get("/api/feedback/export")
    assert jsonl.headers["Content-Type"].startswith("application/x-ndjson")
    assert re.match(
        r'attachment; filename="dagnostics-feedback-\d{8}-\d{6}\.jsonl"', jsonl.headers["Content-Disposition"]
    )
    rows = [json.loads(line) for line in jsonl.get_data(as_text=True).splitlines()]
    assert [row["failed_task_id"] for row in rows] == [good]  # default minimum rating 3
    assert rows[0]["correction"]["severity"] == "low" and rows[0]["reviewer"] == "alice"
    everything = alice.get("/api/feedback/export?format=csv&min_rating=1&status=corrected")
    parsed = list(csv.DictReader(io.StringIO(everything.get_data(as_text=True))))
    assert [int(r["failed_task_id"]) for r in parsed] == [good]
    assert alice.get("/api/feedback/export?format=xml").status_code == 400
    page = alice.get("/export?min_rating=1").get_data(as_text=True)
    assert '<strong id="export-count">2</strong>' in page and 'id="export-empty"' not in page


def test_an_empty_export_says_why(client_for, seeded):
    """Every review rated below the default minimum once downloaded 0 bytes without a word (issue 14, item 8)."""
    alice = client_for("alice")
    for failure_id in seeded.failure_ids[:2]:
        alice.post(f"/review/{failure_id}", data=_form(alice, failure_id, rating="2"))
    page = alice.get("/export").get_data(as_text=True)
    assert '<strong id="export-count">0</strong>' in page
    empty = page[page.index('id="export-empty"') : page.index("</p>", page.index('id="export-empty"'))]
    assert "2 reviews are rated below 3 ★: lower the minimum rating" in empty
    assert "1 ★ 0, 2 ★ 2, 3 ★ 0, 4 ★ 0, 5 ★ 0" in empty
    assert re.search(r'id="download" disabled', page)
    nothing = alice.get("/export?since=2001-01-01&until=2001-01-02").get_data(as_text=True)
    assert "No review matches the dates and status either" in nothing


@pytest.mark.parametrize("path", ["/", "/stats", "/export", "/api/feedback/stats"])
def test_an_unmigrated_store_gives_a_clear_message(client_for, tmp_path, monkeypatch, path):
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__SQL_ALCHEMY_CONN", f"sqlite:///{tmp_path / 'empty.db'}")
    response = client_for("alice").get(path)
    assert response.status_code == 503
    assert "dagnostics db migrate" in response.get_data(as_text=True)
