"""Airflow notifiers of DAGnostics, where Airflow's providers keep theirs.

:mod:`.dagnostics`: ``DagnosticsNotifier``, the diagnosis of a failed task in its alert (see docs/alerts.md).
:mod:`.retraining`: the notifier the retraining DAG calls, chosen in configuration.
"""

from __future__ import annotations

from dagnostics_provider.notifications.dagnostics import DagnosticsNotifier

__all__ = ["DagnosticsNotifier"]
