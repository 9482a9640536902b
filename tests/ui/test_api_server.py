"""The review UI in real api-servers: the plugin, Airflow's login under FAB and the simple auth manager, CSRF.

The FAB server is the session's shared one (``airflow_api_server``) with a Viewer and a "DAGnostics Reviewer"
user added; the simple auth manager gets its own server over the same installation, with one user per role.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.airflow_env import AirflowEnv
from tests.ui.conftest import REVIEWER, UI_PREFIX, VIEWER

pytest_plugins = ["tests.airflow_fixtures"]
pytestmark = pytest.mark.slow


def _csrf(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def _review_form(page: str, **changes: str) -> dict[str, str]:
    """The correction form exactly as the browser would post it, with the page's prefilled values."""
    form = {
        "csrf_token": _csrf(page),
        "analysis_id": re.search(r'name="analysis_id" value="(\d+)"', page).group(1),
        "action": "submit",
        "error_message": html.unescape(re.search(r'id="error_message"[^>]*>([^<]*)</textarea>', page).group(1)),
        "category": re.search(r'<option value="(\w+)"[^>]* selected>', page).group(1),
        "severity": re.search(r'name="severity" value="(\w+)" checked', page).group(1),
        "confidence": re.search(r'name="confidence" id="confidence"[^>]* value="([\d.]+)"', page).group(1),
        "reasoning": "",
        "error_lines": "",
        "suggested_actions": "",
    }
    form.update(changes)
    return form


def test_the_plugin_adds_a_navigation_item_a_task_instance_tab_and_the_fab_views(ui_server):
    token = ui_server.token("admin")
    plugins = requests.get(
        f"{ui_server.base_url}/api/v2/plugins", headers={"Authorization": f"Bearer {token}"}, timeout=30
    ).json()["plugins"]
    (plugin,) = [p for p in plugins if p["name"] == "dagnostics"]
    nav, tab = plugin["external_views"]
    assert (nav["name"], nav["href"], nav["destination"], nav["nav_top_level"]) == (
        "DAGnostics Feedback",
        f"{UI_PREFIX}/",
        "nav",
        True,
    )
    assert (tab["name"], tab["destination"], tab["url_route"]) == ("Diagnosis", "task_instance", "dagnostics-diagnosis")
    assert tab["href"] == (
        f"{UI_PREFIX}/diagnosis?dag_id={{DAG_ID}}&run_id={{RUN_ID}}&task_id={{TASK_ID}}&map_index={{MAP_INDEX}}"
    )
    assert {v["category"] for v in plugin["appbuilder_views"]} == {"DAGnostics Feedback"}
    assert (
        requests.get(f"{ui_server.base_url}{nav['icon']}", timeout=30).headers["Content-Type"].startswith("image/svg")
    )


def test_anonymous_requests_are_sent_to_the_login_page_or_refused(ui_server):
    page = requests.get(ui_server.url("/?status=unreviewed"), allow_redirects=False, timeout=30)
    assert page.status_code == 302
    assert page.headers["Location"].startswith(f"{ui_server.base_url}/auth/login/?next=")
    assert "pluginsv2%2Fdagnostics%2F%3Fstatus%3Dunreviewed" in page.headers["Location"]
    assert requests.get(ui_server.url("/api/feedback/stats"), timeout=30).status_code == 401
    failure_id = ui_server.seeded.failure_ids[0]
    assert requests.post(ui_server.url(f"/review/{failure_id}"), data={"rating": "5"}, timeout=30).status_code == 401
    expired = requests.Session()
    expired.cookies.set("_token", "eyJhbGciOiJIUzUxMiJ9.e30.invalid", domain="127.0.0.1", path="/")
    assert expired.get(ui_server.url("/"), allow_redirects=False, timeout=30).status_code == 302


def test_fab_viewer_reads_but_cannot_submit(ui_server):
    viewer = ui_server.browser_session(VIEWER[0])
    failure_id = ui_server.seeded.failure_ids[0]
    queue = viewer.get(ui_server.url("/"), timeout=30)
    assert queue.status_code == 200 and "Read only" in queue.text
    review = viewer.get(ui_server.url(f"/review/{failure_id}"), timeout=30)
    assert review.status_code == 200 and 'id="correction"' not in review.text
    refused = viewer.post(ui_server.url(f"/review/{failure_id}"), data={"rating": "5", "action": "accept"}, timeout=30)
    assert refused.status_code == 403 and "can_edit on DAGnostics Feedback" in refused.text
    api = requests.post(
        ui_server.url("/api/reviews"),
        json={"failed_task_id": failure_id, "accept": True},
        headers={"Authorization": f"Bearer {ui_server.token(VIEWER[0])}"},
        timeout=30,
    )
    assert api.status_code == 403


def test_fab_reviewer_submits_with_the_csrf_token_and_keeps_the_airflow_session(ui_server):
    reviewer = ui_server.browser_session(REVIEWER[0])
    failure_id = ui_server.seeded.failure_ids[2]
    page = reviewer.get(ui_server.url(f"/review/{failure_id}"), timeout=30).text
    form = _review_form(page, category="configuration_error", rating="3", reviewer="someone-else")
    without_token = reviewer.post(
        ui_server.url(f"/review/{failure_id}"), data={**form, "csrf_token": ""}, allow_redirects=False, timeout=30
    )
    assert without_token.status_code == 403
    saved = reviewer.post(ui_server.url(f"/review/{failure_id}"), data=form, allow_redirects=False, timeout=30)
    assert saved.status_code == 303, saved.text[:2000]
    assert not any(c.name == "session" for c in reviewer.cookies)  # the view never writes Flask's session cookie
    shown = reviewer.get(f"{ui_server.base_url}{saved.headers['Location']}", timeout=30).text
    assert "saved" in shown and "<ins>configuration_error</ins>" in shown
    stats = reviewer.get(ui_server.url("/api/feedback/stats"), timeout=30).json()
    assert stats["category_distribution"].get("configuration_error", 0) >= 1
    exported = [
        json.loads(line) for line in reviewer.get(ui_server.url("/api/feedback/export"), timeout=30).text.splitlines()
    ]
    mine = [row for row in exported if row["failed_task_id"] == failure_id and row["reviewer"] == REVIEWER[0]]
    assert mine and mine[-1]["correction"]["category"] == "configuration_error"


def test_roles_sync_cli_finds_everything_in_place(ui_server):
    airflow = ui_server.airflow.airflow
    done = subprocess.run(
        [str(Path(sys.executable).with_name("dagnostics")), "roles", "sync"],
        env=airflow.env,
        cwd=airflow.home,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "'DAGnostics Reviewer' are in place (nothing to change)." in done.stdout


# ----------------------------------------------------------------------------------------------- simple auth manager

SIMPLE_USERS = {"admin": "admin", "vic": "viewer", "olga": "op"}


class SimpleAuthEnv(AirflowEnv):
    """The simple auth manager with one user per role (the shared fixture has only an admin)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.passwords_file.write_text(json.dumps({user: f"{user}-Pa55" for user in SIMPLE_USERS}))

    @property
    def settings(self) -> dict[str, str]:
        users = ",".join(f"{user}:{role}" for user, role in SIMPLE_USERS.items())
        return {**super().settings, "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": users}


@pytest.fixture(scope="module")
def simple_server(ui_server) -> Iterator[str]:
    env = SimpleAuthEnv(ui_server.airflow.airflow_home, auth_manager="simple")
    server = env.start_api_server()
    try:
        server.wait_healthy()
        yield env.base_url
    finally:
        server.stop()


def _simple_session(base_url: str, user: str) -> requests.Session:
    response = requests.post(f"{base_url}/auth/token", json={"username": user, "password": f"{user}-Pa55"}, timeout=30)
    response.raise_for_status()
    session = requests.Session()
    session.cookies.set("_token", response.json()["access_token"], domain="127.0.0.1", path="/")
    return session


def test_simple_auth_manager_viewer_reads_op_reviews(simple_server, ui_server):
    failure_id = ui_server.seeded.failure_ids[3]
    url = f"{simple_server}{UI_PREFIX}"
    anonymous = requests.get(f"{url}/", allow_redirects=False, timeout=30)
    assert anonymous.status_code == 302 and "/auth/login" in anonymous.headers["Location"]

    viewer = _simple_session(simple_server, "vic")
    assert viewer.get(f"{url}/review/{failure_id}", timeout=30).status_code == 200
    assert viewer.post(f"{url}/review/{failure_id}", data={"action": "accept"}, timeout=30).status_code == 403

    operator = _simple_session(simple_server, "olga")
    page = operator.get(f"{url}/review/{failure_id}", timeout=30).text
    form = _review_form(page, severity="critical", rating="2")
    saved = operator.post(f"{url}/review/{failure_id}", data=form, allow_redirects=False, timeout=30)
    assert saved.status_code == 303
    history = operator.get(f"{url}/review/{failure_id}", timeout=30).text
    assert "<strong>olga</strong>" in history
