"""Notifiers for the retraining DAG, chosen in configuration so users need not edit the DAG.

``[dagnostics] retraining_notifier`` names an Airflow notifier class (any ``BaseNotifier``, e.g.
``airflow.providers.slack.notifications.slack.SlackNotifier`` or ``airflow.providers.smtp.notifications.smtp.
SmtpNotifier``) and ``retraining_notifier_kwargs`` its arguments as JSON; the DAG calls it when a run succeeds or
fails. Templated arguments (``{{ dag_run }}``, ``{{ ti }}``) work as with any notifier.
"""

from __future__ import annotations

import importlib
import json
import logging
from typing import Any

from dagnostics_provider import config

log = logging.getLogger(__name__)


class NotifierConfigurationError(ValueError):
    """The configured notifier cannot be built; raised at DAG parse time so the import error shows in the UI."""


def configured_notifiers() -> list[Any]:
    path = config.get("retraining_notifier").strip()
    if not path:
        return []
    module_name, _, class_name = path.rpartition(".")
    try:
        notifier_class = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise NotifierConfigurationError(
            f"[dagnostics] retraining_notifier {path!r} cannot be imported: {exc}"
        ) from exc
    raw = config.get("retraining_notifier_kwargs").strip() or "{}"
    try:
        kwargs = json.loads(raw)
    except ValueError as exc:
        raise NotifierConfigurationError(f"[dagnostics] retraining_notifier_kwargs is not JSON: {exc}") from exc
    if not isinstance(kwargs, dict):
        raise NotifierConfigurationError("[dagnostics] retraining_notifier_kwargs must be a JSON object")
    return [notifier_class(**kwargs)]
