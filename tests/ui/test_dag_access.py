"""Per-DAG access in the review UI: a user sees, exports and counts only failures of DAGs the auth manager lets
them read, and reviews only those of DAGs it lets them edit (issue 14, item 1).

The view runs on a bare Flask app with the stand-in auth manager (per-DAG grants like FAB's ``DAG:<dag_id>``
permissions); the real FAB and simple auth managers are exercised the same way in ``test_api_server.py``.
"""

from __future__ import annotations

import csv
import io

import pytest

from dagnostics_provider.analysis.service import analyze_log
from dagnostics_provider.store import reviews
from dagnostics_provider.store.failures import FailureRecord, record_failure, save_analysis
from tests.ui.conftest import DEFAULT_GRANTS
from tests.ui.fake_auth import FakeAuthManager

OWN_DAG = "etl_postgres_refused"  # two seeded failures sharing a fingerprint
READ_ONLY_DAG = "etl_execution_timeout"


@pytest.fixture
def dag_limited(monkeypatch, fake_auth, sqlite_store):
    """``lena`` may read and edit OWN_DAG and only read READ_ONLY_DAG; the others are someone else's.

    Installed after (instead of) the default stand-in, which the app fixture requests."""
    grants = {**DEFAULT_GRANTS, "lena": {"GET", "PUT"}}
    dag_grants = {"lena": {"GET": {OWN_DAG, READ_ONLY_DAG}, "PUT": {OWN_DAG}}}
    manager = FakeAuthManager(grants, dag_grants=dag_grants, airflow_dags={OWN_DAG, "etl_html_payload"})
    manager.install(monkeypatch)
    return manager


def _dag_of(seeded_id: int) -> str:
    return reviews.get_review_item(seeded_id).failure["dag_id"]


def test_the_queue_lists_only_readable_dags(dag_limited, client_for, seeded):
    lena = client_for("lena")
    items = lena.get("/api/queue").get_json()["items"]
    assert {item["dag_id"] for item in items} == {OWN_DAG, READ_ONLY_DAG}
    assert len(items) == 3
    # A filter cannot widen the scope.
    assert lena.get("/api/queue?dag_id=etl_html_payload").get_json()["total"] == 0
    groups = lena.get("/api/queue?group=fingerprint").get_json()["groups"]
    assert {group["dag_id"] for group in groups} == {OWN_DAG, READ_ONLY_DAG}
    assert sum(group["count"] for group in groups) == 3
    page = lena.get("/").get_data(as_text=True)
    assert OWN_DAG in page and "etl_html_payload" not in page and "etl_k8s_pod_oomkilled" not in page
    # Everyone else still sees every DAG.
    assert client_for("alice").get("/api/queue").get_json()["total"] == len(seeded.failure_ids)


def test_an_unreadable_item_is_not_found_and_next_skips_it(dag_limited, client_for, seeded):
    lena = client_for("lena")
    hidden = [i for i in seeded.failure_ids if _dag_of(i) not in (OWN_DAG, READ_ONLY_DAG)]
    for failure_id in hidden:
        assert lena.get(f"/review/{failure_id}").status_code == 404
    visited = set()
    response = lena.get("/next")
    for _ in range(len(seeded.failure_ids) + 1):  # "next" wraps around: a bounded walk
        if response.status_code != 302 or "/review/" not in response.location:
            break
        failure_id = int(response.location.split("/review/")[1].split("?")[0])
        visited.add(failure_id)
        response = lena.get(f"/next?after={failure_id}")
    assert visited and not visited & set(hidden)


def test_reviews_are_accepted_only_for_editable_dags(dag_limited, client_for, seeded):
    lena = client_for("lena")
    by_dag = {_dag_of(i): i for i in seeded.failure_ids}
    headers = {"X-CSRF-Token": lena.csrf()}

    hidden = lena.post(
        "/api/reviews", json={"failed_task_id": by_dag["etl_html_payload"], "accept": True}, headers=headers
    )
    assert hidden.status_code == 404 and "error" in hidden.get_json()

    read_only = by_dag[READ_ONLY_DAG]
    refused = lena.post("/api/reviews", json={"failed_task_id": read_only, "accept": True}, headers=headers)
    assert refused.status_code == 403 and READ_ONLY_DAG in refused.get_json()["error"]
    form = lena.post(f"/review/{read_only}", data={"action": "accept", "csrf_token": lena.csrf()})
    assert form.status_code == 403
    page = lena.get(f"/review/{read_only}").get_data(as_text=True)
    assert 'id="correction"' not in page and "not edit it" in page
    assert reviews.get_review_item(read_only).reviews == []
    assert reviews.get_review_item(by_dag["etl_html_payload"]).reviews == []

    stored = lena.post("/api/reviews", json={"failed_task_id": by_dag[OWN_DAG], "accept": True}, headers=headers)
    assert stored.status_code == 201
    assert 'id="correction"' in lena.get(f"/review/{by_dag[OWN_DAG]}").get_data(as_text=True)


def test_apply_to_group_touches_only_editable_dags(dag_limited, client_for, seeded, sqlite_store):
    source, own_member = seeded.group_ids
    fingerprint = reviews.get_review_item(source).failure["fingerprint"]
    outsider_id = record_failure(
        FailureRecord(dag_id="etl_html_payload", task_id="load", run_id="manual__x", try_number=1), sqlite_store
    )
    item = reviews.get_review_item(source)
    analysis = analyze_log([b"psycopg2.OperationalError: connection refused\n"], None)
    save_analysis(
        outsider_id,
        analysis.outcome,
        log_excerpt=item.failure["log_excerpt"],
        log_reference=None,
        fingerprint=fingerprint,
        error_type=None,
        url=sqlite_store,
    )

    lena = client_for("lena")
    body = {"failed_task_id": source, "accept": True, "apply_to_group": True}
    response = lena.post("/api/reviews", json=body, headers={"X-CSRF-Token": lena.csrf()})
    assert response.status_code == 201
    applied = response.get_json()["applied_review_ids"]
    assert len(applied) == 1
    assert len(reviews.get_review_item(own_member).reviews) == 1
    assert reviews.get_review_item(outsider_id).reviews == []


def test_statistics_and_export_count_only_readable_dags(dag_limited, client_for, seeded):
    by_dag = {_dag_of(i): i for i in seeded.failure_ids}
    for failure_id in seeded.failure_ids:  # everyone's failures get a review
        reviews.submit_review(failure_id, reviewer="admin", rating=4)

    lena = client_for("lena")
    stats = lena.get("/api/feedback/stats").get_json()
    assert (stats["failed_tasks"], stats["analysed_items"], stats["total_feedback_count"]) == (3, 3, 3)
    assert client_for("alice").get("/api/feedback/stats").get_json()["total_feedback_count"] == len(seeded.failure_ids)

    exported = lena.get("/api/feedback/export?format=jsonl").get_data(as_text=True).splitlines()
    assert len(exported) == 3 and all(READ_ONLY_DAG in row or OWN_DAG in row for row in exported)
    csv_text = lena.get("/api/feedback/export?format=csv").get_data(as_text=True)
    assert {row["dag_id"] for row in csv.DictReader(io.StringIO(csv_text))} == {OWN_DAG, READ_ONLY_DAG}
    assert '<strong id="export-count">3</strong>' in lena.get("/export").get_data(as_text=True)
    assert "etl_html_payload" not in lena.get("/stats").get_data(as_text=True)
    assert by_dag  # every seeded DAG has a failure


def test_a_user_with_no_dag_sees_an_empty_queue(monkeypatch, fake_auth, client_for, seeded):
    FakeAuthManager({"nobody": {"GET", "PUT"}}, dag_grants={"nobody": {}}).install(monkeypatch)
    nobody = client_for("nobody")
    assert nobody.get("/api/queue").get_json()["total"] == 0
    assert nobody.get("/api/feedback/stats").get_json()["failed_tasks"] == 0
    assert nobody.get(f"/review/{seeded.failure_ids[0]}").status_code == 404


def test_access_is_expressed_over_the_stores_dags(sqlite_store, seeded, monkeypatch):
    from dagnostics_provider.plugins.views.auth import Principal, dag_access
    from tests.ui.fake_auth import FakeUser

    present = reviews.store_dag_ids()
    manager = FakeAuthManager({"lena": {"GET"}}, dag_grants={"lena": {"GET": {OWN_DAG}, "PUT": set()}})
    manager.install(monkeypatch)
    principal = Principal("lena", True, False, "t", True, user=FakeUser("lena"))
    access = dag_access(principal, present)
    assert (access.readable, access.editable) == (frozenset({OWN_DAG}), frozenset())
    unlimited = Principal("alice", True, True, "t", True, user=FakeUser("alice"))
    assert dag_access(unlimited, present) == reviews.ALL_DAGS  # no DAG list in any query
