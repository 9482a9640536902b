"""Fixtures of the review-UI tests.

Unit-level tests run the real view on a bare Flask app (the blueprint exactly as the FAB provider registers it)
with the stand-in auth manager of :mod:`tests.ui.fake_auth`; the real auth managers (FAB and simple) are
exercised against real api-servers in ``test_api_server.py`` and ``test_browser.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from flask import Flask

from tests.store.conftest import migrated_store_url, store_url  # noqa: F401  (the SQLite + PostgreSQL store)
from tests.ui.fake_auth import FakeAuthManager, build_app
from tests.ui.seed import Seeded, seed_history, seed_store

DEFAULT_GRANTS = {
    "admin": {"GET", "PUT"},
    "alice": {"GET", "PUT"},
    "bob": {"GET", "PUT"},
    "viewer": {"GET"},
    "outsider": set(),
}


@pytest.fixture
def fake_auth(monkeypatch) -> FakeAuthManager:
    manager = FakeAuthManager({user: set(methods) for user, methods in DEFAULT_GRANTS.items()})
    manager.install(monkeypatch)
    return manager


@pytest.fixture
def seeded(sqlite_store) -> Seeded:
    return seed_store(sqlite_store)


class Client:
    """A Flask test client logged in (or not) the way a browser is: the JWT in the ``_token`` cookie."""

    def __init__(self, app: Flask, user: str | None) -> None:
        self.http = app.test_client()
        self.token = f"token-{user}" if user else None
        if self.token:
            self.http.set_cookie("_token", self.token)

    def get(self, path: str, **kwargs: Any):
        return self.http.get(f"/dagnostics{path}", **kwargs)

    def post(self, path: str, **kwargs: Any):
        return self.http.post(f"/dagnostics{path}", **kwargs)

    def csrf(self) -> str:
        from dagnostics_provider.plugins.views.csrf import csrf_token

        assert self.token
        return csrf_token(self.token)


@pytest.fixture
def app(fake_auth, sqlite_store) -> Iterator[Flask]:
    yield build_app()


@pytest.fixture
def client_for(app):
    return lambda user=None: Client(app, user)


# ----------------------------------------------------------------------------------------------- a real api-server

VIEWER = ("vera", "Vera-Viewer-Pa55", "Viewer")
REVIEWER = ("rita", "Rita-Reviewer-Pa55", "DAGnostics Reviewer")
UI_PREFIX = "/pluginsv2/dagnostics"


@dataclass
class UiServer:
    """The session's api-server (FAB auth manager) with a seeded store and a Viewer and a reviewer user."""

    airflow: Any  # tests.airflow_fixtures.RunningAirflow
    store_url: str
    seeded: Seeded
    passwords: dict[str, str]

    @property
    def base_url(self) -> str:
        return self.airflow.base_url

    def token(self, user: str) -> str:
        response = requests.post(
            f"{self.base_url}/auth/token", json={"username": user, "password": self.passwords[user]}, timeout=30
        )
        response.raise_for_status()
        return response.json()["access_token"]

    def browser_session(self, user: str | None) -> requests.Session:
        """A ``requests`` session holding the JWT as Airflow's login leaves it: the ``_token`` cookie."""
        session = requests.Session()
        if user:
            session.cookies.set("_token", self.token(user), domain="127.0.0.1", path="/")
        return session

    def url(self, path: str) -> str:
        return f"{self.base_url}{UI_PREFIX}{path}"


@pytest.fixture(scope="session")
def ui_server(airflow_api_server) -> UiServer:
    from dagnostics_provider.store.engine import dispose_engines
    from dagnostics_provider.store.migrate import upgrade

    airflow = airflow_api_server.airflow
    server_store = f"sqlite:///{airflow.home / 'dagnostics.db'}"  # the api-server's default store
    upgrade(server_store)
    seeded = seed_store(server_store)
    seed_history(server_store)
    dispose_engines()
    # The view creates its permissions and the reviewer role on its first request, whoever makes it.
    requests.get(f"{airflow.base_url}{UI_PREFIX}/", allow_redirects=False, timeout=60).raise_for_status()
    for name, password, role in (VIEWER, REVIEWER):
        airflow.airflow(
            "users", "create", "--username", name, "--password", password, "--role", role,
            "--firstname", name.title(), "--lastname", "Tester", "--email", f"{name}@example.com",
        )  # fmt: skip
    passwords = {airflow.username: airflow.password, VIEWER[0]: VIEWER[1], REVIEWER[0]: REVIEWER[1]}
    return UiServer(airflow_api_server, server_store, seeded, passwords)
