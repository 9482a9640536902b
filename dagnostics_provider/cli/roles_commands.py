"""``dagnostics roles``: the permissions of the "DAGnostics Feedback" review UI.

The api-server creates them itself on the view's first request, as long as ``[fab] update_fab_perms`` is on
(FAB's default); ``dagnostics roles sync`` does the same on demand, for installations that turn that off or want
the reviewer role before anyone opened the view.  What is created: :mod:`dagnostics_provider.plugins.views.permissions`.
"""

from __future__ import annotations

import argparse


def _sync(args: argparse.Namespace) -> int:
    from airflow.api_fastapi.app import create_auth_manager
    from airflow.providers.fab.auth_manager.fab_auth_manager import FabAuthManager

    from dagnostics_provider.plugins.views.permissions import (
        RESOURCE_NAME,
        REVIEWER_ROLE,
        missing_reviewer_permissions,
        sync_fab_permissions,
    )

    if not isinstance(create_auth_manager(), FabAuthManager):
        print(
            "The configured auth manager has no roles to sync. Under the simple auth manager every logged-in "
            "user can read the review UI and users with the OP or ADMIN role can submit reviews.",
            file=args.out,
        )
        return 0
    # The helper Airflow's own `airflow roles …` commands use to reach FAB's security manager outside a server.
    from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder

    with get_application_builder() as appbuilder:
        changes = sync_fab_permissions(appbuilder.sm, reset_reviewer_role=args.reset_reviewer_role)
        missing = missing_reviewer_permissions(appbuilder.sm)
    for change in changes:
        print(change, file=args.out)
    print(
        f"Permissions on {RESOURCE_NAME!r} and the role {REVIEWER_ROLE!r} are in place"
        + (f" ({len(changes)} change{'s' if len(changes) != 1 else ''})." if changes else " (nothing to change)."),
        file=args.out,
    )
    if missing:
        # An existing role is the admin's; say what its users cannot do instead of changing it behind their back.
        listed = ", ".join(f"{action} on {resource}" for action, resource in missing)
        print(
            f"Note: the existing role {REVIEWER_ROLE!r} lacks {len(missing)} of the permissions it is created with "
            f"({listed}). Reviewers see only failures of DAGs they may read and review only DAGs they may edit. "
            "Run `dagnostics roles sync --reset-reviewer-role` to grant them.",
            file=args.out,
        )
    return 0


def register(groups: argparse._SubParsersAction) -> None:
    roles = groups.add_parser("roles", help="permissions of the DAGnostics Feedback review UI")
    verbs = roles.add_subparsers(dest="roles_command", required=True, metavar="VERB")
    sync = verbs.add_parser(
        "sync",
        help='create the "DAGnostics Feedback" permissions and the "DAGnostics Reviewer" role (idempotent)',
    )
    sync.add_argument(
        "--reset-reviewer-role",
        action="store_true",
        help="also grant an existing reviewer role what it lacks of its default permissions (never removes any)",
    )
    sync.set_defaults(handler=_sync)
