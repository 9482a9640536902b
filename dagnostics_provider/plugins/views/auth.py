"""Who is asking, and what they may do: the Airflow login, resolved inside ``/pluginsv2``.

Airflow 3.3 builds the ``/pluginsv2`` Flask app without the FAB auth manager's session interface, so FAB's
``has_access*`` decorators never see a logged-in user there.  What every request does carry is the JWT Airflow
issues at login: the HttpOnly ``_token`` cookie for a browser (either auth manager), or an ``Authorization:
Bearer`` header for a script that got a token from ``POST /auth/token``.  The configured auth manager turns it
into a user and decides the permissions, so FAB, the simple auth manager and any other manager work alike:

* read: ``is_authorized_custom_view(method="GET", resource_name="DAGnostics Feedback")`` — under FAB the
  resource's ``can_read``; the simple auth manager allows every logged-in user with a role (its custom views
  are readable from the Viewer role up, the same rule as its ``PLUGINS`` view);
* review: ``is_authorized_custom_view(method="PUT", …)`` — under FAB ``can_edit``.  The simple auth manager
  answers custom views the same for every method, so there reviewing additionally needs its ``OP`` or
  ``ADMIN`` role (the roles it trusts with changes to shared settings).

Per DAG, the same auth manager decides which failures a user sees and may review, with the methods ``GET`` and
``PUT`` (FAB: ``can_read`` / ``can_edit`` on ``DAGs`` or on ``DAG:<dag_id>``; simple: by role, and in multi-team
mode only the DAGs of the user's teams).  Failures of a DAG the user may not read are not shown anywhere: queue,
review page, statistics, export; a review is accepted only for a DAG the user may edit, the right Airflow itself
asks for clearing or marking its task instances.  See :func:`dag_access`.

The reviewer's name always comes from the resolved user, never from a form field.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from airflow.api_fastapi.app import get_auth_manager

from dagnostics_provider.plugins.views.permissions import RESOURCE_NAME
from dagnostics_provider.store.reviews import ALL_DAGS, DagAccess, DagScope

log = logging.getLogger(__name__)

COOKIE_NAME = "_token"  # airflow.api_fastapi.auth.managers.base_auth_manager.COOKIE_NAME_JWT_TOKEN
SIMPLE_REVIEW_ROLES = frozenset({"OP", "ADMIN"})


@dataclass(frozen=True)
class Principal:
    """The logged-in user of one request and what they may do here."""

    name: str
    can_read: bool
    can_review: bool
    token: str
    from_cookie: bool  # a browser session (needs a CSRF token for changes); False for a Bearer header
    user: Any = field(default=None, repr=False, compare=False)  # the auth manager's user object
    dags: DagAccess = ALL_DAGS  # the DAGs whose failures they may see and review (set by the view: dag_access)


def _token(headers: Any, cookies: Any) -> tuple[str | None, bool]:
    authorization = headers.get("Authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip(), False
    return cookies.get(COOKIE_NAME) or None, True


def _user_from_token(auth_manager: Any, token: str) -> Any | None:
    """``get_user_from_token`` is a coroutine; Flask views run in a worker thread without an event loop."""
    try:
        return asyncio.run(auth_manager.get_user_from_token(token))
    except Exception as exc:  # an expired, revoked or forged token, or a deleted user: all mean "not logged in"
        log.debug("DAGnostics Feedback: token rejected: %s", exc)
        return None


def _simple_role_allows_review(user: Any) -> bool:
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    if not isinstance(user, SimpleAuthManagerUser):
        return True
    return (user.role or "").upper() in SIMPLE_REVIEW_ROLES


def _allowed_dags(auth_manager: Any, user: Any, method: str, store_dag_ids: frozenset[str]) -> DagScope:
    """Which of ``store_dag_ids`` the auth manager lets ``user`` act on with ``method``; ``None``: all of them.

    ``get_authorized_dag_ids`` answers for the DAGs Airflow knows, teams included, in one query.  A DAG whose
    failures are still in the store but that Airflow no longer lists is asked about by id, which decides by the
    user's global and per-DAG rights, except in multi-team mode (Airflow 3.2 and later): there only a DAG's bundle
    says which team owns it, so such a DAG stays hidden.
    """
    from dagnostics_provider.compat import multi_team_enabled

    allowed = set(auth_manager.get_authorized_dag_ids(user=user, method=method)) & store_dag_ids
    if not multi_team_enabled():
        from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails

        allowed |= {
            dag_id
            for dag_id in store_dag_ids - allowed
            if auth_manager.is_authorized_dag(method=method, user=user, details=DagDetails(id=dag_id))
        }
    return None if allowed == store_dag_ids else frozenset(allowed)


def dag_access(principal: Principal, store_dag_ids: frozenset[str]) -> DagAccess:
    """What ``principal`` may read and edit among the DAGs with failures in the store (``store_dag_ids``).

    Expressed over those DAGs only: ``None`` where the user may act on all of them, so most users' queries carry
    no list of DAG ids, and otherwise a list no longer than the store's.
    """
    if not principal.can_read:
        return DagAccess(readable=frozenset(), editable=frozenset())
    auth_manager = get_auth_manager()
    readable = _allowed_dags(auth_manager, principal.user, "GET", store_dag_ids)
    editable = _allowed_dags(auth_manager, principal.user, "PUT", store_dag_ids)
    if readable is not None and editable is not None:
        editable &= readable
    elif readable is not None:
        editable = readable
    return DagAccess(readable=readable, editable=editable)


def resolve_principal(headers: Any, cookies: Any) -> Principal | None:
    """The request's user and permissions, or ``None`` when it carries no valid Airflow login."""
    token, from_cookie = _token(headers, cookies)
    if not token:
        return None
    auth_manager = get_auth_manager()
    user = _user_from_token(auth_manager, token)
    if user is None:
        return None
    can_read = bool(auth_manager.is_authorized_custom_view(method="GET", resource_name=RESOURCE_NAME, user=user))
    can_review = bool(
        auth_manager.is_authorized_custom_view(method="PUT", resource_name=RESOURCE_NAME, user=user)
    ) and _simple_role_allows_review(user)
    return Principal(
        name=str(user.get_name()),
        can_read=can_read or can_review,  # reviewing an item means seeing it
        can_review=can_review,
        token=token,
        from_cookie=from_cookie,
        user=user,
    )


def login_url(next_url: str) -> str:
    """The configured auth manager's login page, coming back to ``next_url`` (already under ``[api] base_url``)."""
    return get_auth_manager().get_url_login(next_url=next_url)
