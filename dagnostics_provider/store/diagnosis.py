"""The diagnosis of one task instance, as the Diagnosis tab and the failure alert show it.

Airflow identifies a task instance by DAG, run, task and map index; the store keeps one row per failed *try*.
:func:`task_diagnosis` picks a try (the one asked for, else the newest recorded) and says where it stands:
not recorded, waiting for analysis (since when), analysis failed (why), ignored, or analysed, with the review
item the review page shows.  :func:`wait_for_diagnosis` is the bounded wait of the alert.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from dagnostics_provider.store.engine import session_scope
from dagnostics_provider.store.models import FailedTask
from dagnostics_provider.store.reviews.common import ItemNotFound, utc
from dagnostics_provider.store.reviews.dag_access import DagScope
from dagnostics_provider.store.reviews.item import ReviewItem, get_review_item


class DiagnosisState(str, enum.Enum):
    """A recorded try's FailureStatus, value for value, plus "not_recorded"."""

    not_recorded = "not_recorded"  # DAGnostics saw no failed try of this task instance
    pending = "pending"  # recorded, the analysis has not run yet
    analysis_failed = "analysis_failed"  # the analysis raised; status_detail says why
    ignored = "ignored"  # a person excluded it
    analyzed = "analyzed"


@dataclass(frozen=True)
class TaskInstanceRef:
    """Airflow's identity of a task instance (all tries)."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1


@dataclass(frozen=True)
class RecordedTry:
    failure_id: int
    try_number: int
    status: str
    failed_at: datetime | None


@dataclass(frozen=True)
class Diagnosis:
    """Where one try of a task instance stands, and its analysis once there is one."""

    ref: TaskInstanceRef
    state: DiagnosisState
    try_number: int | None = None
    failure_id: int | None = None
    failed_at: datetime | None = None
    task_state: str | None = None  # failed or up_for_retry, as recorded
    detail: str | None = None  # why the analysis failed / was ignored
    item: ReviewItem | None = None  # the analysis with its reviews (state analyzed)
    tries: list[RecordedTry] = field(default_factory=list)  # every recorded try, newest first


def task_diagnosis(
    ref: TaskInstanceRef, try_number: int | None = None, *, url: str | None = None, dag_ids: DagScope = None
) -> Diagnosis:
    """The diagnosis of ``try_number`` (default: the newest recorded try) of the task instance ``ref``.

    A DAG outside ``dag_ids`` reads as "not recorded", exactly like a task that never failed, so the tab tells a
    user nothing about DAGs they may not see.
    """
    if dag_ids is not None and ref.dag_id not in dag_ids:
        return Diagnosis(ref, DiagnosisState.not_recorded)
    with session_scope(url) as session:
        rows = session.scalars(
            select(FailedTask)
            .where(
                FailedTask.dag_id == ref.dag_id,
                FailedTask.run_id == ref.run_id,
                FailedTask.task_id == ref.task_id,
                FailedTask.map_index == ref.map_index,
            )
            .order_by(FailedTask.try_number.desc())
        ).all()
        tries = [RecordedTry(row.id, row.try_number, row.status.value, utc(row.failed_at)) for row in rows]
        chosen = next((row for row in rows if try_number is None or row.try_number == try_number), None)
        if chosen is None:
            return Diagnosis(ref, DiagnosisState.not_recorded, try_number=try_number, tries=tries)
        values: dict[str, Any] = {
            "try_number": chosen.try_number,
            "failure_id": chosen.id,
            "failed_at": utc(chosen.failed_at),
            "task_state": chosen.task_state,
            "detail": chosen.status_detail,
            "tries": tries,
        }
        state = DiagnosisState(chosen.status.value)  # a recorded try's state is its failure status
    if state is DiagnosisState.analyzed:
        try:
            values["item"] = get_review_item(values["failure_id"], url, dag_ids=dag_ids)
        except ItemNotFound:  # marked analysed while its analysis row is not visible yet: still pending
            state = DiagnosisState.pending
    return Diagnosis(ref, state, **values)


def wait_for_diagnosis(
    ref: TaskInstanceRef,
    try_number: int,
    timeout: float,
    *,
    poll_interval: float = 1.0,
    url: str | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Diagnosis:
    """Poll the store while the try's analysis is pending, at most ``timeout`` seconds; return the last seen.

    Anything but ``pending`` ends the wait at once: an analysis, a failed or ignored one, or a try that is not
    recorded (a retry without ``[dagnostics] record_retries``), for which no analysis will come.
    """
    deadline = clock() + max(0.0, timeout)
    while True:
        diagnosis = task_diagnosis(ref, try_number, url=url)
        remaining = deadline - clock()
        if diagnosis.state is not DiagnosisState.pending or remaining <= 0:
            return diagnosis
        sleep(min(poll_interval, remaining))
