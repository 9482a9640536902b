"""Per-DAG access in real api-servers: a user limited to one DAG, under FAB and under the simple auth manager.

FAB limits a user per DAG with ``DAG:<dag_id>`` permissions on a role; the simple auth manager only in multi-team
mode, where a DAG belongs to the team of its bundle and a user to teams.  Both are set up here the way an admin
would (a role with per-DAG permissions; teams, bundles and ``airflow dags reserialize``), and the review UI must
show, count, export and accept reviews for exactly what Airflow itself allows.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from dagnostics_provider import compat
from tests.airflow_env import AirflowEnv
from tests.ui.conftest import UI_PREFIX
from tests.ui.seed import CORPUS_LOGS, store_failure

pytest_plugins = ["tests.airflow_fixtures"]
pytestmark = pytest.mark.slow

OWN_DAG = "etl_postgres_refused"
READ_ONLY_DAG = "etl_execution_timeout"
LIMITED_USER = ("lena", "Lena-Limited-Pa55")
LIMITED_ROLE = "Team ETL reviewer"

# Run with the installation's settings: the FAB CLI has no command that creates a DAG:<dag_id> resource.
CREATE_LIMITED_ROLE = textwrap.dedent(
    """
    import sys
    from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder

    role_name, own_dag, read_only_dag = sys.argv[1:4]
    grants = [
        ("can_read", "DAGnostics Feedback"), ("can_edit", "DAGnostics Feedback"),
        ("menu_access", "DAGnostics Feedback"), ("can_read", "Plugins"),
        ("can_read", "DAG:" + own_dag), ("can_edit", "DAG:" + own_dag), ("can_read", "DAG:" + read_only_dag),
    ]
    with get_application_builder() as appbuilder:
        sm = appbuilder.sm
        role = sm.find_role(role_name) or sm.add_role(role_name)
        for action, resource in grants:
            sm.add_permission_to_role(role, sm.create_permission(action, resource))
    """
)


def _session(base_url: str, user: str, password: str) -> requests.Session:
    response = requests.post(f"{base_url}/auth/token", json={"username": user, "password": password}, timeout=30)
    response.raise_for_status()
    session = requests.Session()
    session.cookies.set("_token", response.json()["access_token"], domain="127.0.0.1", path="/")
    return session


def _csrf(page: str) -> str:
    return page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]


# --------------------------------------------------------------------------------------------------------- FAB


@pytest.fixture(scope="module")
def fab_limited(ui_server) -> requests.Session:
    airflow = ui_server.airflow.airflow
    done = subprocess.run(
        [sys.executable, "-c", CREATE_LIMITED_ROLE, LIMITED_ROLE, OWN_DAG, READ_ONLY_DAG],
        env=airflow.env,
        cwd=airflow.home,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    name, password = LIMITED_USER
    airflow.airflow(
        "users", "create", "--username", name, f"--password={password}", "--role", LIMITED_ROLE,
        "--firstname", "Lena", "--lastname", "Limited", "--email", "lena@example.com",
    )  # fmt: skip
    return _session(ui_server.base_url, name, password)


def test_fab_user_limited_to_one_dag_sees_and_reviews_only_it(ui_server, fab_limited):
    items = fab_limited.get(ui_server.url("/api/queue"), timeout=30).json()["items"]
    assert items and {item["dag_id"] for item in items} == {OWN_DAG, READ_ONLY_DAG}
    everyone = requests.get(
        ui_server.url("/api/queue"), headers={"Authorization": f"Bearer {ui_server.token('admin')}"}, timeout=30
    ).json()
    assert everyone["total"] > len(items)
    hidden = next(item for item in everyone["items"] if item["dag_id"] not in (OWN_DAG, READ_ONLY_DAG))
    assert fab_limited.get(ui_server.url(f"/review/{hidden['failed_task_id']}"), timeout=30).status_code == 404

    stats = fab_limited.get(ui_server.url("/api/feedback/stats"), timeout=30).json()
    assert stats["failed_tasks"] == len(items)
    exported = fab_limited.get(ui_server.url("/api/feedback/export"), timeout=30).text.splitlines()
    assert all(json.loads(row)["dag_id"] in (OWN_DAG, READ_ONLY_DAG) for row in exported)

    read_only = next(item for item in items if item["dag_id"] == READ_ONLY_DAG)["failed_task_id"]
    page = fab_limited.get(ui_server.url(f"/review/{read_only}"), timeout=30).text
    assert 'id="correction"' not in page and "not edit it" in page
    own = next(item for item in items if item["dag_id"] == OWN_DAG)["failed_task_id"]
    headers = {"X-CSRF-Token": _csrf(fab_limited.get(ui_server.url(f"/review/{own}"), timeout=30).text)}
    refused = fab_limited.post(
        ui_server.url("/api/reviews"), json={"failed_task_id": read_only, "accept": True}, headers=headers, timeout=30
    )
    assert refused.status_code == 403 and READ_ONLY_DAG in refused.json()["error"]
    hidden_post = fab_limited.post(
        ui_server.url("/api/reviews"),
        json={"failed_task_id": hidden["failed_task_id"], "accept": True},
        headers=headers,
        timeout=30,
    )
    assert hidden_post.status_code == 404
    stored = fab_limited.post(
        ui_server.url("/api/reviews"), json={"failed_task_id": own, "accept": True}, headers=headers, timeout=30
    )
    assert stored.status_code == 201, stored.text


# ------------------------------------------------------------------------------------------ simple, multi-team

TEAM_DAG = textwrap.dedent(
    """
    import pendulum
    from airflow.sdk import dag, task


    @dag(dag_id="{dag_id}", schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False)
    def build():
        @task
        def load():
            raise ValueError("never run here")

        load()


    build()
    """
)
TEAMS = {"team_a": "team_a_etl", "team_b": "team_b_etl"}
TEAM_USERS = {"tina": "op:team_a", "tom": "viewer:team_b", "admin": "admin"}


@dataclass
class MultiTeamEnv(AirflowEnv):
    """The simple auth manager in multi-team mode: one bundle (and DAG) per team, one user per team."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.passwords_file.write_text(json.dumps({user: f"{user}-Pa55" for user in TEAM_USERS}))
        for team, dag_id in TEAMS.items():
            folder = self.home / "bundles" / team
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{dag_id}.py").write_text(TEAM_DAG.format(dag_id=dag_id))

    @property
    def settings(self) -> dict[str, str]:
        bundles = [
            {
                "name": f"{team}_dags",
                "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                "kwargs": {"path": str(self.home / "bundles" / team)},
                "team_name": team,
            }
            for team in TEAMS
        ]
        return {
            **super().settings,
            "AIRFLOW__CORE__MULTI_TEAM": "True",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{r}" for u, r in TEAM_USERS.items()),
            "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles),
        }


@dataclass
class TeamServer:
    base_url: str
    failure_ids: dict[str, int]  # dag_id -> its stored failed try


@pytest.fixture(scope="module")
def team_server(tmp_path_factory, request) -> Iterator[TeamServer]:
    from dagnostics_provider.store.engine import dispose_engines
    from dagnostics_provider.store.migrate import upgrade

    env = MultiTeamEnv(tmp_path_factory.mktemp("multi-team"), auth_manager="simple")
    env.migrate(cache_dir=request.config.cache.mkdir("dagnostics-airflow-db"))
    for team in TEAMS:
        env.airflow("teams", "create", team)
    env.airflow("dags", "reserialize")  # registers the bundles with their teams, and their DAGs
    store = f"sqlite:///{env.home / 'dagnostics.db'}"  # the api-server's default store
    upgrade(store)
    log_text = (CORPUS_LOGS / "af3_json_postgres_refused.log").read_text()
    failure_ids = {
        dag_id: store_failure(store, dag_id, log_text, index, llm=False)
        for index, dag_id in enumerate([*TEAMS.values(), "etl_removed_from_airflow"])
    }
    dispose_engines()
    server = env.start_api_server()
    try:
        server.wait_healthy()
        yield TeamServer(env.base_url, failure_ids)
    finally:
        server.stop()


@pytest.mark.skipif(not compat.has_multi_team(), reason="multi-team mode arrived in Airflow 3.2")
def test_simple_auth_manager_user_of_one_team_sees_and_reviews_only_its_dag(team_server):
    url = f"{team_server.base_url}{UI_PREFIX}"
    tina = _session(team_server.base_url, "tina", "tina-Pa55")
    items = tina.get(f"{url}/api/queue", timeout=30).json()["items"]
    assert [item["dag_id"] for item in items] == ["team_a_etl"]
    other = team_server.failure_ids["team_b_etl"]
    assert tina.get(f"{url}/review/{other}", timeout=30).status_code == 404
    assert tina.get(f"{url}/api/feedback/stats", timeout=30).json()["failed_tasks"] == 1
    own = team_server.failure_ids["team_a_etl"]
    headers = {"X-CSRF-Token": _csrf(tina.get(f"{url}/review/{own}", timeout=30).text)}
    refused = tina.post(f"{url}/api/reviews", json={"failed_task_id": other, "accept": True}, headers=headers)
    assert refused.status_code == 404
    stored = tina.post(f"{url}/api/reviews", json={"failed_task_id": own, "accept": True}, headers=headers)
    assert stored.status_code == 201, stored.text

    tom = _session(team_server.base_url, "tom", "tom-Pa55")
    assert [item["dag_id"] for item in tom.get(f"{url}/api/queue", timeout=30).json()["items"]] == ["team_b_etl"]
    assert tom.get(f"{url}/api/feedback/export", timeout=30).text == ""  # tina's review is of team A's DAG
    assert tom.get(f"{url}/review/{own}", timeout=30).status_code == 404
