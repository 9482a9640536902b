"""Who may read and who may review: the FAB resource, its actions, the reviewer role and their creation.

Under the FAB auth manager, reading the review UI is ``can_read`` on the resource ``DAGnostics Feedback`` and
submitting reviews is ``can_edit`` on it (the view asks the auth manager with the methods ``GET`` and ``PUT``,
which FAB maps to those actions).  :func:`sync_fab_permissions` creates them idempotently:

* the resource with ``can_read``, ``can_edit`` and ``menu_access`` (FAB's legacy menu category has the same
  name, so its ``menu_access`` lives here too instead of being deleted and re-created on every start);
* ``Admin`` gets everything; the built-in ``Viewer``, ``User`` and ``Op`` roles get ``can_read``;
* the role ``DAGnostics Reviewer`` is created to work on its own: FAB's Viewer permissions (so Airflow's home
  and DAG pages load without 403s), ``can_edit`` on ``DAGs`` (the review UI accepts a review only for a DAG the
  user may edit, see :mod:`.auth`), ``can_read`` + ``can_edit`` + ``menu_access`` on the resource and ``can_read``
  on ``Plugins`` (without which Airflow's navigation does not list plugin views).  Like FAB's own
  ``[fab] custom_roles``, an existing reviewer role is left as it is, so changes made in the UI survive;
  :func:`missing_reviewer_permissions` says what it lacks and ``dagnostics roles sync --reset-reviewer-role``
  grants that.

It runs on the view's first request in each api-server process (if ``[fab] update_fab_perms`` is on, as FAB
does for its own views) and from ``dagnostics roles sync``.  The simple auth manager has no roles to create; its
policy is in :mod:`dagnostics_provider.plugins.views.auth`.
"""

from __future__ import annotations

from typing import Any

RESOURCE_NAME = "DAGnostics Feedback"
REVIEWER_ROLE = "DAGnostics Reviewer"
ACTION_READ = "can_read"
ACTION_EDIT = "can_edit"
ACTION_MENU = "menu_access"
VIEW_ACTIONS: tuple[str, ...] = (ACTION_READ, ACTION_EDIT, ACTION_MENU)

ADMIN_ROLE = "Admin"
READER_ROLES: tuple[str, ...] = ("Viewer", "User", "Op")
RESOURCE_PLUGINS = "Plugins"  # Airflow's resource behind GET /api/v2/plugins, which feeds the navigation
RESOURCE_DAGS = "DAGs"  # every DAG; FAB's per-DAG resources are "DAG:<dag_id>"

# What the review UI itself needs, on top of the Viewer permissions FAB defines for its version.
REVIEWER_PERMISSIONS: tuple[tuple[str, str], ...] = (
    (ACTION_READ, RESOURCE_NAME),
    (ACTION_EDIT, RESOURCE_NAME),
    (ACTION_MENU, RESOURCE_NAME),
    (ACTION_READ, RESOURCE_PLUGINS),
    (ACTION_EDIT, RESOURCE_DAGS),
)


def reviewer_permissions(security_manager: Any) -> list[tuple[str, str]]:
    """The reviewer role's permissions: FAB's Viewer set (``VIEWER_PERMISSIONS`` of the installed FAB) and ours."""
    viewer = [tuple(p) for p in getattr(security_manager, "VIEWER_PERMISSIONS", ())]
    return list(dict.fromkeys([*viewer, *REVIEWER_PERMISSIONS]))


def _permission_names(role: Any) -> set[tuple[str, str]]:
    """(action, resource) of a role's permissions, whether they are FAB objects or plain pairs."""
    names = set()
    for permission in role.permissions:
        if isinstance(permission, tuple):
            names.add(permission)
        else:
            names.add((permission.action.name, permission.resource.name))
    return names


def missing_reviewer_permissions(security_manager: Any) -> list[tuple[str, str]]:
    """What an existing reviewer role lacks of the permissions it is created with (empty: none, or no role)."""
    role = security_manager.find_role(REVIEWER_ROLE)
    if role is None:
        return []
    present = _permission_names(role)
    return [permission for permission in reviewer_permissions(security_manager) if permission not in present]


def _grant(security_manager: Any, role: Any, action: str, resource: str, changes: list[str]) -> None:
    permission = security_manager.create_permission(action, resource)  # get-or-create
    if permission is not None and permission not in role.permissions:
        security_manager.add_permission_to_role(role, permission)
        changes.append(f"granted {action} on {resource} to {role.name}")


def sync_fab_permissions(security_manager: Any, *, reset_reviewer_role: bool = False) -> list[str]:
    """Create the resource, its permissions and the reviewer role; return what changed (empty: all in place).

    ``security_manager`` is the FAB auth manager's security manager (``appbuilder.sm``).  An existing reviewer
    role gets what it lacks only with ``reset_reviewer_role`` (nothing is ever taken away).
    """
    changes: list[str] = []
    for action in VIEW_ACTIONS:
        if security_manager.get_permission(action, RESOURCE_NAME) is None:
            security_manager.create_permission(action, RESOURCE_NAME)
            changes.append(f"created {action} on {RESOURCE_NAME}")
    admin = security_manager.find_role(ADMIN_ROLE)
    if admin is not None:
        for action in VIEW_ACTIONS:
            _grant(security_manager, admin, action, RESOURCE_NAME, changes)
    for name in READER_ROLES:
        role = security_manager.find_role(name)
        if role is not None:
            _grant(security_manager, role, ACTION_READ, RESOURCE_NAME, changes)
    reviewer = security_manager.find_role(REVIEWER_ROLE)
    if reviewer is None:
        reviewer = security_manager.add_role(REVIEWER_ROLE)
        changes.append(f"created role {REVIEWER_ROLE}")
        reset_reviewer_role = True
    if reset_reviewer_role:
        for action, resource in reviewer_permissions(security_manager):
            _grant(security_manager, reviewer, action, resource, changes)
    return changes


def is_fab_security_manager(security_manager: Any) -> bool:
    """The simple auth manager's Flask app has a role-less security manager; only FAB's can be synced."""
    return all(
        hasattr(security_manager, name)
        for name in ("find_role", "add_role", "get_permission", "create_permission", "add_permission_to_role")
    )
