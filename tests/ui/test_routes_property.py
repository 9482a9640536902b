"""Every route of the review UI, driven with generated input: never a 5xx, errors in the route's own format.

Issue 14 item 3 found 16 inputs that gave HTTP 500 (page numbers and ids beyond 64 bits, a year-9999 date,
comments that were not text...) and a JSON route answering with FAB's HTML error page.  Hypothesis generates query
strings, path ids, JSON bodies and forms from values of every kind (huge and negative numbers, dates at the ends of
the calendar, control characters, lists and objects where text belongs) against the real view on a seeded SQLite
store, with the stand-in auth manager: a reviewer limited to some DAGs and one who may see everything.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.ui.conftest import DEFAULT_GRANTS, Client
from tests.ui.fake_auth import FakeAuthManager, build_app
from tests.ui.seed import seed_store

QUERY_NAMES = (
    "page", "status", "dag_id", "task_id", "category", "severity", "min_confidence", "max_confidence", "since",
    "until", "fingerprint", "sort", "group", "after", "notice", "format", "min_rating", "latest_per_item",
    "submitted",
)  # fmt: skip
GET_ROUTES = ("/", "/next", "/stats", "/export", "/api/queue", "/api/feedback/stats", "/api/feedback/export")
FORM_NAMES = (
    "action", "rating", "comment", "analysis_id", "apply_to_group", "error_message", "category", "severity",
    "confidence", "reasoning", "error_lines", "suggested_actions",
)  # fmt: skip
JSON_NAMES = (
    "failed_task_id", "analysis_id", "accept", "apply_to_group", "rating", "comment", "correction", "reviewer",
)  # fmt: skip
CORRECTION_NAMES = (
    "error_message", "category", "severity", "confidence", "reasoning", "error_lines", "suggested_actions", "extra",
)  # fmt: skip

big_ints = st.one_of(
    st.integers(-5, 60),
    st.integers(-(2**70), 2**70),
    st.sampled_from([2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, 10**23, -(2**63) - 1]),
)
dates = st.one_of(
    st.dates().map(lambda d: d.isoformat()),
    st.sampled_from(["9999-12-31", "0001-01-01", "2026-02-30", "2026-13-01", "20261201", "yesterday"]),
)
texts = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", " ", "\x00", "%00", "' OR 1=1 --", "<script>x</script>", "fingerprint", "on", "true"]),
)
scalars = st.one_of(big_ints.map(str), dates, texts, st.floats(allow_nan=True).map(str))
queries = st.dictionaries(st.sampled_from(QUERY_NAMES), scalars, max_size=6)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), big_ints, st.floats(allow_nan=False), texts),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
corrections = st.dictionaries(st.sampled_from(CORRECTION_NAMES), json_values, max_size=8)
json_bodies = st.one_of(
    st.dictionaries(st.sampled_from(JSON_NAMES), json_values | corrections, max_size=6),
    json_values,
)
forms = st.dictionaries(st.sampled_from(FORM_NAMES), scalars, max_size=8)
failure_ids = st.one_of(st.integers(0, 12), big_ints.filter(lambda n: n >= 0))


@pytest.fixture(scope="module")
def clients(tmp_path_factory):
    """A seeded store and the view on a bare Flask app, shared by every generated example."""
    from dagnostics_provider.store.engine import dispose_engines
    from dagnostics_provider.store.migrate import upgrade

    url = f"sqlite:///{tmp_path_factory.mktemp('property') / 'dagnostics.db'}"
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("AIRFLOW__DAGNOSTICS__SQL_ALCHEMY_CONN", url)
        upgrade(url)
        seed_store(url)
        grants = {**DEFAULT_GRANTS, "lena": {"GET", "PUT"}}
        dag_grants = {"lena": {"GET": {"etl_postgres_refused", "etl_html_payload"}, "PUT": {"etl_postgres_refused"}}}
        FakeAuthManager(grants, dag_grants=dag_grants).install(monkeypatch)
        app = build_app()
        yield {user: Client(app, user) for user in ("alice", "lena", "viewer")}
        dispose_engines()


def _check(response, path: str) -> None:
    assert response.status_code < 500, f"{path}: {response.status_code} {response.get_data(as_text=True)[:500]}"
    if response.status_code >= 400:
        if path.startswith("/api/"):
            assert response.is_json and "error" in response.get_json(), f"{path}: an error that is not JSON"
        else:
            page = response.get_data(as_text=True)
            assert "dagnostics/feedback.css" in page, f"{path}: an error page not in the view's own style"


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(route=st.sampled_from(GET_ROUTES), query=queries, user=st.sampled_from(["alice", "lena", "viewer"]))
def test_get_routes_never_fail_with_a_server_error(clients, route, query, user):
    _check(clients[user].get(route, query_string=query), route)


@SETTINGS
@given(failure_id=failure_ids, query=queries, user=st.sampled_from(["alice", "lena"]))
def test_the_review_page_never_fails_with_a_server_error(clients, failure_id, query, user):
    _check(clients[user].get(f"/review/{failure_id}", query_string=query), "/review")


@SETTINGS
@given(failure_id=failure_ids, form=forms, user=st.sampled_from(["alice", "lena", "viewer"]))
def test_form_submissions_never_fail_with_a_server_error(clients, failure_id, form, user):
    client = clients[user]
    _check(client.post(f"/review/{failure_id}", data={**form, "csrf_token": client.csrf()}), "/review")


@SETTINGS
@given(body=json_bodies, user=st.sampled_from(["alice", "lena", "viewer"]))
def test_json_reviews_never_fail_with_a_server_error(clients, body, user):
    client = clients[user]
    _check(client.post("/api/reviews", json=body, headers={"X-CSRF-Token": client.csrf()}), "/api/reviews")


@pytest.mark.parametrize(
    "path",
    [
        "/?page=100000000000000000000000",
        f"/review/{2**63}",
        f"/next?after={2**64}",
        "/?until=9999-12-31",
        "/api/queue?until=9999-12-31",
        "/export?until=9999-12-31",
        "/api/feedback/export?until=9999-12-31",
        "/api/queue?page=100000000000000000000000",
    ],
)
def test_the_inputs_that_gave_500_answer_4xx_or_a_page(clients, path):
    """The probe's findings, each pinned (issue 14 item 3)."""
    _check(clients["alice"].get(path), path.split("?")[0])


def test_an_unexpected_error_answers_in_the_routes_own_format(clients, monkeypatch, caplog):
    """A bug of ours gives a 500 in JSON on JSON routes and the view's own page elsewhere, never FAB's "Ooops"."""
    from dagnostics_provider.store import reviews

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(reviews, "list_queue", broken)
    api = clients["alice"].get("/api/queue")
    assert api.status_code == 500 and api.is_json and "api-server log" in api.get_json()["error"]
    page = clients["alice"].get("/")
    assert page.status_code == 500 and "dagnostics/feedback.css" in page.get_data(as_text=True)
    assert "a bug" in caplog.text  # logged with its traceback for the operator
