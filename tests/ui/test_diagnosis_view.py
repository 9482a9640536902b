"""The Diagnosis tab (``/diagnosis``) and its JSON twin through Flask's test client (issue 15, item 1).

Every state a task instance can be in, the analysis with its definition, actions, highlighted log and review
state, per-DAG access like the review pages, and escaping of attacker-controlled log text.
"""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from markupsafe import escape

from dagnostics_provider.analysis.schema import CATEGORY_DEFINITIONS
from dagnostics_provider.store import reviews
from dagnostics_provider.store.failures import FailureRecord, mark_analysis_failed, record_failure
from tests.ui.conftest import DEFAULT_GRANTS
from tests.ui.fake_auth import FakeAuthManager
from tests.ui.seed import XSS_LINE


def _query(failure: dict, **extra) -> str:
    keys = {k: failure[k] for k in ("dag_id", "run_id", "task_id", "map_index")}
    return urlencode({**keys, **extra})


def _failure(failure_id: int) -> dict:
    return reviews.get_review_item(failure_id).failure


def test_an_analysed_try_shows_root_cause_definition_actions_log_and_review_link(client_for, seeded):
    failure_id = seeded.failure_ids[0]
    item = reviews.get_review_item(failure_id)
    page = client_for("viewer").get(f"/diagnosis?{_query(item.failure)}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    analysis = item.analysis
    assert 'data-state="analyzed"' in html
    assert str(escape(analysis["error_message"])) in html
    assert str(escape(CATEGORY_DEFINITIONS[analysis["category"]])) in html
    for action in analysis["suggested_actions"]:
        assert str(escape(action)) in html
    assert f"sev-{analysis['severity']}" in html and f"{analysis['confidence']:.2f}" in html
    # The AI's error lines are marked in the log excerpt.
    assert html.count('class=" ai"') + html.count('class="ai"') >= 1
    assert f'href="/dagnostics/review/{failure_id}"' in html
    assert "Not reviewed yet." in html
    # Compact: the review UI's tabs are not there.
    assert "Review queue</a>" not in html


def test_the_tab_says_who_confirmed_or_corrected_the_analysis(client_for, seeded):
    failure_id = seeded.failure_ids[0]
    failure = _failure(failure_id)
    alice = client_for("alice")
    reviews.submit_review(failure_id, reviewer="alice", rating=5, correction=None)
    assert "Confirmed by <strong>alice</strong>" in alice.get(f"/diagnosis?{_query(failure)}").get_data(as_text=True)
    item = reviews.get_review_item(failure_id)
    corrected = {name: item.analysis[name] for name in reviews.REVIEW_FIELDS} | {"category": "timeout_error"}
    if item.analysis["category"] == "timeout_error":
        corrected["category"] = "configuration_error"
    reviews.submit_review(failure_id, reviewer="bob", rating=2, correction=corrected)
    html = alice.get(f"/diagnosis?{_query(failure)}").get_data(as_text=True)
    assert "Corrected by <strong>bob</strong>" in html
    assert 'data-field="category"' in html  # the changed field, with the AI's and the reviewer's value
    body = alice.get(f"/api/diagnosis?{_query(failure)}").get_json()
    assert body["review_status"] == "corrected"
    assert body["review"]["reviewer"] == "bob" and body["review"]["category"] == corrected["category"]


def test_pending_refreshes_itself_and_says_since_when(client_for, sqlite_store):
    record_failure(FailureRecord(dag_id="etl", task_id="load", run_id="r1", try_number=1, error_text="boom"))
    failure = {"dag_id": "etl", "task_id": "load", "run_id": "r1", "map_index": -1}
    html = client_for("viewer").get(f"/diagnosis?{_query(failure)}").get_data(as_text=True)
    assert 'data-state="pending"' in html
    assert "Analysis pending" in html and "s ago" in html
    assert '<meta http-equiv="refresh" content="5">' in html
    body = client_for("viewer").get(f"/api/diagnosis?{_query(failure)}").get_json()
    assert body["state"] == "pending" and body["try_number"] == 1 and body["failed_at"]


def test_an_analysis_that_failed_says_why(client_for, sqlite_store):
    failure_id = record_failure(FailureRecord(dag_id="etl", task_id="load", run_id="r1", try_number=2))
    mark_analysis_failed(failure_id, "LogUnavailableError: <b>gone</b>")
    failure = {"dag_id": "etl", "task_id": "load", "run_id": "r1", "map_index": -1}
    html = client_for("viewer").get(f"/diagnosis?{_query(failure)}").get_data(as_text=True)
    assert 'data-state="analysis_failed"' in html
    assert "LogUnavailableError: &lt;b&gt;gone&lt;/b&gt;" in html
    assert "dagnostics analyze etl load r1 2" in html
    assert '<meta http-equiv="refresh"' not in html


def test_an_unfilled_map_index_placeholder_means_not_mapped(client_for, seeded):
    """Airflow's UI fills {MAP_INDEX} into the tab's href only for mapped tasks (seen in Airflow 3.3.2)."""
    failure = _failure(seeded.failure_ids[0])
    query = _query(failure).replace("map_index=-1", "map_index=%7BMAP_INDEX%7D")
    assert "MAP_INDEX" in query
    assert client_for("viewer").get(f"/api/diagnosis?{query}").get_json()["state"] == "analyzed"


def test_a_task_instance_that_did_not_fail_says_so(client_for, seeded):
    failure = {"dag_id": "etl", "task_id": "never_failed", "run_id": "r1", "map_index": -1}
    html = client_for("viewer").get(f"/diagnosis?{_query(failure)}").get_data(as_text=True)
    assert 'data-state="not_recorded"' in html and "No failure recorded" in html


def test_tries_are_listed_and_one_can_be_chosen(client_for, sqlite_store):
    for try_number in (1, 2):
        record_failure(FailureRecord(dag_id="etl", task_id="load", run_id="r1", try_number=try_number, map_index=3))
    mark_analysis_failed(
        record_failure(FailureRecord(dag_id="etl", task_id="load", run_id="r1", try_number=1, map_index=3)), "x"
    )
    failure = {"dag_id": "etl", "task_id": "load", "run_id": "r1", "map_index": 3}
    viewer = client_for("viewer")
    newest = viewer.get(f"/api/diagnosis?{_query(failure)}").get_json()
    assert (newest["try_number"], newest["state"]) == (2, "pending")
    assert [t["try_number"] for t in newest["tries"]] == [2, 1]
    first = viewer.get(f"/api/diagnosis?{_query(failure, try_number=1)}").get_json()
    assert (first["try_number"], first["state"]) == (1, "analysis_failed")
    html = viewer.get(f"/diagnosis?{_query(failure)}").get_data(as_text=True)
    assert "try_number=1" in html and ">try 2</a>" in html
    # A try that was not recorded is "not recorded", not another try.
    assert viewer.get(f"/api/diagnosis?{_query(failure, try_number=7)}").get_json()["state"] == "not_recorded"


@pytest.mark.parametrize(
    "query",
    [
        "dag_id=etl&task_id=load",
        "dag_id=etl&run_id=r&task_id=t&map_index=x",
        "dag_id=etl&run_id=r&task_id=t&map_index={RUN_ID}",
        "dag_id=etl&run_id=r&task_id=t&try_number=0",
    ],
)
def test_a_bad_task_instance_is_a_clear_400(client_for, seeded, query):
    response = client_for("viewer").get(f"/api/diagnosis?{query}")
    assert response.status_code == 400 and "error" in response.get_json()
    assert client_for("viewer").get(f"/diagnosis?{query}").status_code == 400


def test_access_is_that_of_the_review_pages(client_for, seeded, monkeypatch, fake_auth):
    failure = _failure(seeded.failure_ids[0])
    assert client_for(None).get(f"/diagnosis?{_query(failure)}").status_code == 302  # to Airflow's login
    assert client_for(None).get(f"/api/diagnosis?{_query(failure)}").status_code == 401
    assert client_for("outsider").get(f"/diagnosis?{_query(failure)}").status_code == 403
    # A user who may not read the DAG learns nothing about its failures.
    grants = {**DEFAULT_GRANTS, "lena": {"GET", "PUT"}}
    FakeAuthManager(grants, dag_grants={"lena": {"GET": {"some_other_dag"}}}).install(monkeypatch)
    body = client_for("lena").get(f"/api/diagnosis?{_query(failure)}").get_json()
    assert body["state"] == "not_recorded" and body["tries"] == [] and "analysis" not in body


def test_log_and_analysis_text_is_escaped(client_for, seeded):
    failure = _failure(seeded.xss_id)
    html = client_for("viewer").get(f"/diagnosis?{_query(failure)}").get_data(as_text=True)
    assert XSS_LINE not in html
    assert "&lt;script&gt;" in html


def test_every_failure_status_is_a_diagnosis_state():
    from dagnostics_provider.store.diagnosis import DiagnosisState
    from dagnostics_provider.store.models import FailureStatus

    assert {status.value for status in FailureStatus} <= {state.value for state in DiagnosisState}
