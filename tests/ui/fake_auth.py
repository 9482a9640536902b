"""A stand-in for Airflow's auth manager and the view on a bare Flask app, for the UI tests and the benchmark.

Airflow's own auth managers need a metadata DB and an api-server; they are exercised for real by the api-server
tests.  The stand-in keeps the contract the view relies on: ``get_user_from_token`` is a coroutine,
permissions come from ``is_authorized_custom_view`` and per-DAG rights from ``get_authorized_dag_ids``.  A token
``token-<user>`` names a known user.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask

RESOURCE = "DAGnostics Feedback"
AUTH_MANAGER_LOOKUP = "dagnostics_provider.plugins.views.auth.get_auth_manager"


@dataclass
class FakeUser:
    name: str

    def get_name(self) -> str:
        return self.name


class FakeAuthManager:
    """Tokens name users; ``grants`` maps a user to the methods allowed on the DAGnostics resource.

    ``dag_grants`` limits a user per DAG (method -> DAG ids, like FAB's ``DAG:<dag_id>`` permissions); a user
    without an entry may read and edit every DAG.  ``airflow_dags`` are the DAGs "Airflow knows", the only ones
    ``get_authorized_dag_ids`` lists, as the real managers list the metadata DB's; the view asks about the others
    one by one.
    """

    def __init__(
        self,
        grants: dict[str, set[str]],
        users: dict[str, Any] | None = None,
        dag_grants: dict[str, dict[str, set[str]]] | None = None,
        airflow_dags: set[str] | None = None,
    ) -> None:
        self.grants = grants
        self.users = users or {}
        self.dag_grants = dag_grants or {}
        self.airflow_dags = airflow_dags or set()

    async def get_user_from_token(self, token: str) -> Any:
        if token.startswith("token-") and token[6:] in self.grants:
            return self.users.get(token[6:], FakeUser(token[6:]))
        raise ValueError("invalid token")

    def is_authorized_custom_view(self, *, method: str, resource_name: str, user: Any) -> bool:
        return resource_name == RESOURCE and method in self.grants.get(user.get_name(), set())

    def _may(self, user: Any, method: str, dag_id: str) -> bool:
        limited = self.dag_grants.get(user.get_name())
        return limited is None or dag_id in limited.get(method, set())

    def get_authorized_dag_ids(self, *, user: Any, method: str = "GET") -> set[str]:
        return {dag_id for dag_id in self.airflow_dags if self._may(user, method, dag_id)}

    def is_authorized_dag(self, *, method: str, user: Any, details: Any = None, access_entity: Any = None) -> bool:
        return details is not None and self._may(user, method, details.id)

    def get_url_login(self, **kwargs: Any) -> str:
        return f"/auth/login/?next={kwargs.get('next_url', '')}"

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Make the view ask this manager instead of Airflow's (until ``monkeypatch`` is undone)."""
        monkeypatch.setattr(AUTH_MANAGER_LOOKUP, lambda: self)


def build_app() -> Flask:
    """The view's blueprint on a bare Flask app, as ``appbuilder.add_view`` registers it (no FAB roles here)."""
    from dagnostics_provider.plugins.views.feedback_view import DagnosticsFeedbackView

    app = Flask("dagnostics-ui-tests")
    app.config["TESTING"] = True
    view = DagnosticsFeedbackView()
    app.register_blueprint(view.create_blueprint(SimpleNamespace(sm=None)))
    return app
