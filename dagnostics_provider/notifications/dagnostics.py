"""``DagnosticsNotifier``: the diagnosis of a failed task, in the alert the team already gets.

Put it in ``on_failure_callback`` around the notifiers you use (``DagnosticsNotifier(SmtpNotifier(...))``,
``DagnosticsNotifier([SlackWebhookNotifier(...), ...])``) or on its own next to them.  It finds the diagnosis of the
failed try (:mod:`.diagnose`: the stored analysis if it arrives within ``wait_seconds``, else a heuristic one made on
the spot), writes it to the task log, puts it into the callback context as ``dagnostics`` (an
:class:`~dagnostics_provider.notifications.alert.Alert`) and calls each wrapped notifier with that context, so their
templated fields can say ``{{ dagnostics.text }}``, ``{{ dagnostics.html }}``, ``{{ dagnostics.root_cause }}``...

It runs inside the user's task process, so it never raises: a store that is down, a diagnosis that fails or a
wrapped notifier that raises is logged, and the other wrapped notifiers are still called.
"""

from __future__ import annotations

import copy
import inspect
import logging
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any

# Version-dependent import: ``airflow.sdk.BaseNotifier`` is the Task SDK's public notifier base class on Airflow 3.x
# (``airflow.notifications.basenotifier`` is its deprecated Airflow 2 location).
from airflow.sdk import BaseNotifier

from dagnostics_provider import config

log = logging.getLogger(__name__)  # like the listener's: stdlib logging reaches the task log

CONTEXT_KEY = "dagnostics"

# Message fields of well-known notifiers that DAGnostics fills when the user left them empty (or at the notifier's
# own placeholder default), keyed by class name so that no provider has to be installed.  They are filled with
# templates, never with the text itself: the text comes from task logs, and a template made of log text would let a
# log line run Jinja (``{{ conn.warehouse.password }}``) in the alert.
DEFAULT_MESSAGE_FIELDS: dict[str, dict[str, str]] = {
    "SmtpNotifier": {"subject": "{{ dagnostics.subject }}", "html_content": "{{ dagnostics.html }}"},
    "SlackNotifier": {"text": "{{ dagnostics.text }}"},
    "SlackWebhookNotifier": {"text": "{{ dagnostics.text }}"},
}

Notifier = Callable[[Any], Any]


def _left_empty(notifier: Notifier, name: str) -> bool:
    """Whether the user left ``name`` empty: None, "", or the value the notifier's ``__init__`` defaults it to."""
    value = getattr(notifier, name, None)
    if value is None or value == "":
        return True
    parameter = inspect.signature(type(notifier).__init__).parameters.get(name)
    return parameter is not None and parameter.default is not inspect.Parameter.empty and value == parameter.default


def fill_default_message(notifier: Notifier) -> None:
    """Point the notifier's empty message fields (:data:`DEFAULT_MESSAGE_FIELDS`) at the DAGnostics message."""
    for cls in type(notifier).__mro__:
        for name, template in DEFAULT_MESSAGE_FIELDS.get(cls.__name__, {}).items():
            if _left_empty(notifier, name):
                setattr(notifier, name, template)


class DagnosticsNotifier(BaseNotifier):
    """Send the diagnosis of a failed task (root cause, category, confidence, links) through other notifiers.

    :param notifiers: one notifier or a list of them (any callable taking the context, e.g. Airflow notifiers);
        none means the diagnosis only goes to the task log, for use next to your own notifier.
    :param wait_seconds: how long to wait for the stored analysis before analysing on the spot; default
        ``[dagnostics] alert_wait_seconds``.
    """

    template_fields = ()

    def __init__(self, notifiers: Notifier | Iterable[Notifier] | None = None, *, wait_seconds: float | None = None):
        super().__init__()
        if notifiers is None:
            notifiers = []
        elif callable(notifiers):
            notifiers = [notifiers]
        self.notifiers: list[Notifier] = list(notifiers)
        self.wait_seconds = wait_seconds

    def _wait_seconds(self) -> float:
        if self.wait_seconds is not None:
            return max(0.0, float(self.wait_seconds))
        try:
            return max(0.0, config.get_float("alert_wait_seconds"))
        except ValueError:
            log.exception("DAGnostics: bad [dagnostics] alert_wait_seconds; not waiting for the analysis")
            return 0.0

    def notify(self, context: MutableMapping[str, Any]) -> None:
        # Imported when a task fails, not each time a DAG file that uses the notifier is parsed.
        from dagnostics_provider.notifications.alert import Alert
        from dagnostics_provider.notifications.diagnose import alert_for

        try:
            alert = alert_for(context, self._wait_seconds())
        except Exception as exc:  # alert_for catches what it expects; this is for its bugs
            log.exception("DAGnostics: the diagnosis failed; the notifiers get the alert without it")
            alert = Alert(note=f"the diagnosis failed ({type(exc).__name__}: {exc})")
        context[CONTEXT_KEY] = alert
        log.info("DAGnostics diagnosis of this failure:\n%s", alert.plain)
        for notifier in self.notifiers:
            try:
                # A copy: rendering templated fields overwrites them, and one notifier object serves every task
                # that lists it (default_args), several of which can fail in one process (dag.test()).
                notifier = copy.copy(notifier)
                fill_default_message(notifier)
                notifier(context)
            except Exception:
                log.exception("DAGnostics: notifier %s failed; the other notifiers still run", type(notifier).__name__)
