"""``dagnostics db``: create, upgrade and inspect the DAGnostics store."""

from __future__ import annotations

import argparse

from sqlalchemy.engine import make_url


def _redacted(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _migrate(args: argparse.Namespace) -> int:
    from dagnostics_provider.store.engine import resolve_url
    from dagnostics_provider.store.migrate import upgrade

    url = args.url or resolve_url()
    print(f"Migrating DAGnostics store {_redacted(url)} to {args.revision}...", file=args.out)
    reached = upgrade(url, args.revision)
    print(f"DAGnostics store is at revision {reached}.", file=args.out)
    return 0


def _check(args: argparse.Namespace) -> int:
    from dagnostics_provider.store.engine import resolve_url
    from dagnostics_provider.store.migrate import current_revision, head_revision

    url = args.url or resolve_url()
    print(f"store: {_redacted(url)}", file=args.out)
    current, head = current_revision(url), head_revision()
    print(f"current revision: {current or 'none (not migrated)'}\nhead revision: {head}", file=args.out)
    if current != head:
        print("The store needs `dagnostics db migrate`.", file=args.out)
        return 1
    return 0


def _downgrade(args: argparse.Namespace) -> int:
    from dagnostics_provider.store.engine import resolve_url
    from dagnostics_provider.store.migrate import downgrade

    url = args.url or resolve_url()
    if not args.yes:
        print(
            f"Refusing to downgrade {_redacted(url)} to {args.revision} without --yes (data may be lost).",
            file=args.out,
        )
        return 2
    print(f"DAGnostics store is at revision {downgrade(url, args.revision) or 'base'}.", file=args.out)
    return 0


def register(groups: argparse._SubParsersAction) -> None:
    db = groups.add_parser("db", help="create, upgrade and inspect the DAGnostics store")
    verbs = db.add_subparsers(dest="db_command", required=True, metavar="VERB")
    url_help = "SQLAlchemy URL of the store (default: resolved from [dagnostics] config / connection)"

    migrate = verbs.add_parser("migrate", help="create the store or upgrade it to the newest schema")
    migrate.add_argument("--revision", default="head", help="target revision (default: head)")
    migrate.add_argument("--url", help=url_help)
    migrate.set_defaults(handler=_migrate)

    check = verbs.add_parser("check", help="exit 1 unless the store is at the newest schema")
    check.add_argument("--url", help=url_help)
    check.set_defaults(handler=_check)

    down = verbs.add_parser("downgrade", help="downgrade the store to an older revision")
    down.add_argument("--revision", default="base", help="target revision (default: base, i.e. drop all)")
    down.add_argument("--url", help=url_help)
    down.add_argument("--yes", action="store_true", help="confirm that data in dropped tables may be lost")
    down.set_defaults(handler=_downgrade)
