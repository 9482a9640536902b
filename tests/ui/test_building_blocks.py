"""The review UI's small parts: CSRF tokens, permissions and roles, the auth policy, diffs, charts, parameters."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pytest
from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

from dagnostics_provider.plugins.views import csrf
from dagnostics_provider.plugins.views.auth import resolve_principal
from dagnostics_provider.plugins.views.charts import column_chart
from dagnostics_provider.plugins.views.diff import field_diffs
from dagnostics_provider.plugins.views.log_panel import panel_lines
from dagnostics_provider.plugins.views.params import parse_export_query, parse_queue_query
from dagnostics_provider.plugins.views.permissions import (
    RESOURCE_NAME,
    REVIEWER_PERMISSIONS,
    REVIEWER_ROLE,
    missing_reviewer_permissions,
    sync_fab_permissions,
)
from dagnostics_provider.store.reviews import QueueSort, ReviewStatus
from tests.ui.fake_auth import FakeAuthManager


def test_csrf_token_is_bound_to_the_jwt_and_the_secret_key(monkeypatch):
    token = csrf.csrf_token("jwt-a")
    assert token == csrf.csrf_token("jwt-a") and token != csrf.csrf_token("jwt-b")
    assert csrf.is_valid("jwt-a", token)
    assert not csrf.is_valid("jwt-b", token) and not csrf.is_valid("jwt-a", None) and not csrf.is_valid("jwt-a", "")
    monkeypatch.setenv("AIRFLOW__API__SECRET_KEY", "another-key")
    assert not csrf.is_valid("jwt-a", token)


# ----------------------------------------------------------------------------------------------- who may do what


@dataclass
class Role:
    name: str
    permissions: list = field(default_factory=list)


class FakeSecurityManager:
    """The slice of FAB's security manager that the sync uses, in memory."""

    VIEWER_PERMISSIONS = [("can_read", "DAGs"), ("can_read", "Task Logs"), ("menu_access", "DAGs")]  # a few of FAB's

    def __init__(self, roles: list[str]) -> None:
        self.roles = {name: Role(name) for name in roles}
        self.permissions: set[tuple[str, str]] = set()

    def find_role(self, name):
        return self.roles.get(name)

    def add_role(self, name):
        return self.roles.setdefault(name, Role(name))

    def get_permission(self, action, resource):
        return (action, resource) if (action, resource) in self.permissions else None

    def create_permission(self, action, resource):
        self.permissions.add((action, resource))
        return (action, resource)

    def add_permission_to_role(self, role, permission):
        role.permissions.append(permission)


def test_permission_sync_creates_grants_and_is_idempotent():
    sm = FakeSecurityManager(["Admin", "Viewer", "User", "Op", "Public"])
    changes = sync_fab_permissions(sm)
    assert f"created role {REVIEWER_ROLE}" in changes
    assert {("can_read", RESOURCE_NAME), ("can_edit", RESOURCE_NAME)} <= set(sm.roles["Admin"].permissions)
    for reader in ("Viewer", "User", "Op"):
        assert sm.roles[reader].permissions == [("can_read", RESOURCE_NAME)]
    assert sm.roles["Public"].permissions == []
    # The role works on its own: Viewer's permissions (Airflow's pages), edit on DAGs (reviewing), the view's own.
    assert sm.roles[REVIEWER_ROLE].permissions == [*FakeSecurityManager.VIEWER_PERMISSIONS, *REVIEWER_PERMISSIONS]
    assert ("can_read", "Plugins") in sm.roles[REVIEWER_ROLE].permissions  # without it, no navigation item
    assert ("can_edit", "DAGs") in sm.roles[REVIEWER_ROLE].permissions  # a review needs edit on the DAG
    assert sync_fab_permissions(sm) == [] and missing_reviewer_permissions(sm) == []


def test_permission_sync_leaves_an_existing_reviewer_role_as_the_admin_made_it():
    sm = FakeSecurityManager(["Admin", REVIEWER_ROLE])
    sm.roles[REVIEWER_ROLE].permissions.append(("can_read", RESOURCE_NAME))  # an admin removed the rest
    sync_fab_permissions(sm)
    assert sm.roles[REVIEWER_ROLE].permissions == [("can_read", RESOURCE_NAME)]
    missing = missing_reviewer_permissions(sm)
    assert ("can_edit", "DAGs") in missing and ("can_read", RESOURCE_NAME) not in missing
    changes = sync_fab_permissions(sm, reset_reviewer_role=True)
    assert len(changes) == len(missing) and missing_reviewer_permissions(sm) == []
    assert sm.roles[REVIEWER_ROLE].permissions[0] == ("can_read", RESOURCE_NAME)  # nothing taken away


class SimpleLikeAuthManager(FakeAuthManager):
    """Like the simple auth manager: every custom view is allowed from the Viewer role up, whatever the method."""

    def is_authorized_custom_view(self, *, method, resource_name, user):
        return user.role is not None


@pytest.mark.parametrize(
    ("role", "can_read", "can_review"),
    [("viewer", True, False), ("user", True, False), ("op", True, True), ("admin", True, True), (None, False, False)],
)
def test_under_the_simple_auth_manager_only_op_and_admin_review(monkeypatch, role, can_read, can_review):
    user = SimpleAuthManagerUser(username="sam", role=role)
    SimpleLikeAuthManager({"sam": {"GET", "PUT"}}, users={"sam": user}).install(monkeypatch)
    principal = resolve_principal({}, {"_token": "token-sam"})
    assert (principal.name, principal.can_read, principal.can_review) == ("sam", can_read, can_review)


def test_a_bearer_header_wins_over_the_cookie_and_needs_no_csrf(monkeypatch):
    FakeAuthManager({"alice": {"GET"}, "bob": {"GET", "PUT"}}).install(monkeypatch)
    principal = resolve_principal({"Authorization": "Bearer token-bob"}, {"_token": "token-alice"})
    assert (principal.name, principal.can_review, principal.from_cookie) == ("bob", True, False)
    assert resolve_principal({"Authorization": "Basic eDp5"}, {}) is None
    assert resolve_principal({}, {"_token": "token-mallory"}) is None


def test_the_plugin_registers_the_view_and_the_navigation_item_without_importing_flask_appbuilder():
    code = (
        "import sys\n"
        "from dagnostics_provider.plugins.dagnostics_plugin import DagnosticsPlugin as P\n"
        "assert 'flask_appbuilder' not in sys.modules, 'the plugin module must stay cheap to import'\n"
        "nav, tab = P.external_views\n"
        "print(nav['name'], nav['href'], nav['url_route'], nav['destination'], nav['nav_top_level'])\n"
        "print(tab['name'], tab['href'], tab['url_route'], tab['destination'])\n"
        "print(sorted({v['category'] for v in P.appbuilder_views}), [v['name'] for v in P.appbuilder_views])\n"
        "print(type(P.appbuilder_views[0]['view']).__name__, P.appbuilder_views is P.appbuilder_views)\n"
    )
    env = {"AIRFLOW__API__BASE_URL": "https://airflow.example.com/team-a/", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    nav, tab, views, view = done.stdout.splitlines()[-4:]
    assert nav == "DAGnostics Feedback /team-a/pluginsv2/dagnostics/ dagnostics-feedback nav True"
    assert tab == (
        "Diagnosis /team-a/pluginsv2/dagnostics/diagnosis?dag_id={DAG_ID}&run_id={RUN_ID}&task_id={TASK_ID}"
        "&map_index={MAP_INDEX} dagnostics-diagnosis task_instance"
    )
    assert views == "['DAGnostics Feedback'] ['Review queue', 'Feedback statistics', 'Feedback export']"
    assert view == "DagnosticsFeedbackView True"


# ----------------------------------------------------------------------------------------------- presentation


def test_field_diffs_mark_words_and_lines():
    ai = {
        "error_message": "OSError: disk full on /data",
        "category": "resource_error",
        "severity": "high",
        "confidence": 0.8,
        "reasoning": "x",
        "error_lines": ["a", "b"],
        "suggested_actions": [],
    }
    diffs = {
        d.name: d
        for d in field_diffs(ai, {**ai, "error_message": "OSError: quota full on /data", "error_lines": ["a", "c"]})
    }
    assert [d.name for d in diffs.values() if d.changed] == ["error_message", "error_lines"]
    assert [(s.kind, s.text) for s in diffs["error_message"].segments] == [
        ("same", "OSError: "),
        ("removed", "disk "),
        ("added", "quota "),
        ("same", "full on /data"),
    ]
    assert [(s.kind, s.text) for s in diffs["error_lines"].segments] == [
        ("same", "a\n"),
        ("removed", "b\n"),
        ("added", "c\n"),
    ]
    assert diffs["confidence"].after == "0.80" and not diffs["confidence"].changed


def test_log_panel_numbers_lines_and_marks_gaps_ai_and_selected_lines():
    lines = panel_lines("start\n...\n  ValueError: x  \ndone", ["ValueError: x"], ["done"])
    assert [(line.number, line.gap, line.ai, line.selected) for line in lines] == [
        (1, False, False, False),
        (2, True, False, False),
        (3, False, True, False),
        (4, False, False, True),
    ]
    assert panel_lines(None, [], []) == []


def test_column_chart_scales_to_a_round_maximum():
    chart = column_chart([("1★", 0), ("2★", 3), ("3★", 7)], width=300, height=180)
    assert [label for _, label in chart.gridlines] == ["8", "4"]
    tallest = max(chart.bars, key=lambda bar: bar.height)
    assert tallest.label == "3★" and tallest.y + tallest.height == chart.baseline
    assert chart.bars[0].height == 0
    assert column_chart([(str(d), 1) for d in range(30)], max_labels=8).label_every == 4


def test_queue_and_export_parameters():
    query = parse_queue_query(
        {"status": "unreviewed", "category": "oops", "until": "2026-11-24", "sort": "confidence", "page": "x"}
    )
    assert query.filters.status is ReviewStatus.unreviewed and query.filters.category is None
    assert query.filters.failed_until == datetime(2026, 11, 25, tzinfo=timezone.utc)  # the whole last day
    assert query.sort is QueueSort.confidence and query.page == 1
    assert query.params == {"status": "unreviewed", "until": "2026-11-24", "sort": "confidence"}
    assert query.problems == ("ignored category='oops'", "ignored page='x'")
    export = parse_export_query({"min_rating": "9", "format": "CSV", "latest": "on"})
    assert (export.min_rating, export.format, export.latest_per_item) == (3, "csv", True)
    assert export.problems == ("min_rating must be a whole number from 1 to 5",)


def test_column_chart_leaves_room_for_long_axis_labels():
    """Issue 14 item 10: a value-axis label such as 2000 started left of the drawing and was clipped."""
    small = column_chart([("a", 3)], width=300)
    big = column_chart([("a", 1234567)], width=300)
    assert [label for _, label in big.gridlines] == ["2,000,000", "1,000,000"]  # no "2e+06"
    tick_chars = max(len(label) for _, label in big.gridlines)
    # Ticks are right-aligned at tick_x, at most 7 px per character: they must start inside the SVG.
    assert big.tick_x - 7 * tick_chars >= 0
    assert small.left < big.left and big.bars[0].x > big.left
