"""Which DAGs' failures a caller may see and review: the per-DAG scope every query of the review store takes.

The review UI asks Airflow's auth manager (see :mod:`dagnostics_provider.plugins.views.auth`); the store only
applies the answer.  The CLI and the pipeline run with the store's own credentials and see every DAG.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, select

from dagnostics_provider.store.engine import session_scope
from dagnostics_provider.store.models import FailedTask

DagScope = frozenset[str] | None
"""The DAGs whose failures a caller may see (or review): ``None`` for every DAG.  The review UI passes what the
Airflow auth manager allows the logged-in user (per-DAG permissions, teams); the CLI, which runs with the store's
own credentials, passes ``None``."""


@dataclass(frozen=True)
class DagAccess:
    """What a user may do per DAG: see its failures (``readable``) and review them (``editable``)."""

    readable: DagScope = None
    editable: DagScope = None

    def may_read(self, dag_id: str) -> bool:
        return self.readable is None or dag_id in self.readable

    def may_edit(self, dag_id: str) -> bool:
        return self.editable is None or dag_id in self.editable


ALL_DAGS = DagAccess()


def dag_scope_condition(failure_id: Any, dag_ids: DagScope) -> list[ColumnElement[bool]]:
    """Conditions keeping rows whose failed try ``failure_id`` (a column) belongs to a DAG in ``dag_ids``."""
    if dag_ids is None:
        return []
    return [failure_id.in_(select(FailedTask.id).where(FailedTask.dag_id.in_(sorted(dag_ids))))]


def store_dag_ids(url: str | None = None) -> frozenset[str]:
    """The DAGs with failed tries in the store: what a user's access is expressed over (an index-only read)."""
    with session_scope(url) as session:
        return frozenset(session.scalars(select(FailedTask.dag_id).distinct()))
