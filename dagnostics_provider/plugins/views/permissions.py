"""Who may read and who may review: the FAB resource, its actions, the reviewer role and their creation.

Under the FAB auth manager, reading the review UI is ``can_read`` on the resource ``DAGnostics Feedback`` and
submitting reviews is ``can_edit`` on it (the view asks the auth manager with the methods ``GET`` and ``PUT``,
which FAB maps to those actions).  :func:`sync_fab_permissions` creates them idempotently:

* the resource with ``can_read``, ``can_edit`` and ``menu_access`` (FAB's legacy menu category has the same
  name, so its ``menu_access`` lives here too instead of being deleted and re-created on every start);
* ``Admin`` gets everything; the built-in ``Viewer``, ``User`` and ``Op`` roles get ``can_read``;
* the add-on role ``DAGnostics Reviewer`` is created with ``can_read`` + ``can_edit`` (and ``can_read`` on
  ``Plugins``, without which Airflow's navigation does not list plugin views).  Like FAB's own
  ``[fab] custom_roles``, an existing reviewer role is left as it is, so changes made in the UI survive.

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

REVIEWER_PERMISSIONS: tuple[tuple[str, str], ...] = (
    (ACTION_READ, RESOURCE_NAME),
    (ACTION_EDIT, RESOURCE_NAME),
    (ACTION_MENU, RESOURCE_NAME),
    (ACTION_READ, RESOURCE_PLUGINS),
)


def _grant(security_manager: Any, role: Any, action: str, resource: str, changes: list[str]) -> None:
    permission = security_manager.create_permission(action, resource)  # get-or-create
    if permission is not None and permission not in role.permissions:
        security_manager.add_permission_to_role(role, permission)
        changes.append(f"granted {action} on {resource} to {role.name}")


def sync_fab_permissions(security_manager: Any) -> list[str]:
    """Create the resource, its permissions and the reviewer role; return what changed (empty: all in place).

    ``security_manager`` is the FAB auth manager's security manager (``appbuilder.sm``).
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
    if security_manager.find_role(REVIEWER_ROLE) is None:
        reviewer = security_manager.add_role(REVIEWER_ROLE)
        changes.append(f"created role {REVIEWER_ROLE}")
        for action, resource in REVIEWER_PERMISSIONS:
            _grant(security_manager, reviewer, action, resource, changes)
    return changes


def is_fab_security_manager(security_manager: Any) -> bool:
    """The simple auth manager's Flask app has a role-less security manager; only FAB's can be synced."""
    return all(
        hasattr(security_manager, name)
        for name in ("find_role", "add_role", "get_permission", "create_permission", "add_permission_to_role")
    )
