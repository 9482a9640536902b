"""The ``dagnostics`` command line.

Subcommands register themselves in :func:`build_parser`; each module in this package owns one group of verbs
so the parser stays a table of contents.  Errors a user can fix exit with status 2 and one readable line.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from sqlalchemy.exc import SQLAlchemyError

from dagnostics_provider import __version__


class UserError(Exception):
    """An error caused by input or environment that the user can fix; printed without a traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dagnostics",
        description="DAGnostics: analyse failed Airflow tasks, review analyses, train and deploy the model.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug output to stderr")
    groups = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    from dagnostics_provider.cli import (
        analyze_commands,
        db_commands,
        failures_commands,
        roles_commands,
        training_commands,
    )

    db_commands.register(groups)
    analyze_commands.register(groups)
    failures_commands.register(groups)
    roles_commands.register(groups)
    training_commands.register(groups)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Results go to stdout, everything else to stderr, so `--format json` output can be piped. Airflow binds its
    # log output to whatever sys.stdout is when it is first imported, hence the swap before any command runs.
    # Parsing imports no Airflow, so --help and --version still print on stdout.
    args = build_parser().parse_args(argv)
    results = args.out = sys.stdout
    sys.stdout = sys.stderr
    try:
        logging.basicConfig(
            level=logging.DEBUG if args.verbose else logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
            force=True,
        )
        return int(args.handler(args) or 0)
    except UserError as exc:
        print(f"dagnostics: error: {exc}", file=sys.stderr)
        return 2
    except SQLAlchemyError as exc:
        # The driver's own message (e.g. "connection refused") without SQLAlchemy's statement dump.
        print(f"dagnostics: store error: {getattr(exc, 'orig', None) or exc}", file=sys.stderr)
        return 1
    finally:
        sys.stdout = results


if __name__ == "__main__":
    sys.exit(main())
