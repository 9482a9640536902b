"""Pieces every ``dagnostics`` command group uses: argument types and the store precondition."""

from __future__ import annotations

import argparse


def boolean(text: str) -> bool:
    """``true|false`` option values, as the guide writes them (``--include-feedback true``)."""
    value = text.strip().lower()
    if value in ("true", "yes", "1", "on"):
        return True
    if value in ("false", "no", "0", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def ollama_quantize(text: str) -> str | None:
    """``--quantize`` values Ollama applies on create, refused here rather than after hours of training or merging."""
    from dagnostics_provider.deploy.ollama_rules import check_quantize

    try:
        return check_quantize(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def require_migrated_store() -> None:
    """Fail with the fix instead of an SQL error when the store was never migrated."""
    from dagnostics_provider.cli.main import UserError
    from dagnostics_provider.store.migrate import is_up_to_date

    if not is_up_to_date():
        raise UserError("the DAGnostics store is not migrated: run `dagnostics db migrate` first")
