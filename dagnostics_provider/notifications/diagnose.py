"""The diagnosis a failure alert sends: the stored analysis when it arrives in time, else one made on the spot.

Airflow 3's task runner calls ``on_failure_callback`` *before* the listeners' ``on_task_instance_failed``, so when
the alert runs DAGnostics has not recorded the failure yet, and an analysis that is never queued never arrives.
:func:`alert_for` therefore records the try first, with the very record the listener builds (recording is
idempotent, so the listener then finds the row), waits a bounded time for the analysis DAG to store its analysis,
and otherwise runs the heuristic analyzer itself on the task's local log or, failing that, the exception.

The store may be down or locked (a SQLite busy timeout is 30 s by default, a PostgreSQL connect timeout can be
minutes), so the store work runs in a daemon thread the alert stops waiting for after the bounded time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from dagnostics_provider.analysis.outcome import AnalysisOutcome
from dagnostics_provider.analysis.service import analyze_extraction, extraction_for
from dagnostics_provider.logs.retrieval import TaskRef
from dagnostics_provider.notifications.alert import Alert, links_for, on_the_spot_alert, stored_alert
from dagnostics_provider.plugins.listener import error_details, failure_record_from
from dagnostics_provider.store.diagnosis import (
    Diagnosis,
    DiagnosisState,
    TaskInstanceRef,
    wait_for_diagnosis,
)
from dagnostics_provider.store.failures import record_failure

log = logging.getLogger(__name__)

T = TypeVar("T")

# Time the store gets beyond the wait itself: recording the try and the last poll.
STORE_GRACE_SECONDS = 5.0
POLL_SECONDS = 1.0
NO_TASK_INSTANCE = (
    "the callback context names no task instance ('ti'). Use DagnosticsNotifier as a task's on_failure_callback "
    "(directly or through default_args), or as a DAG's on_failure_callback, where Airflow passes the failed task."
)


class StoreTimeout(TimeoutError):
    """The store did not answer within the alert's bound; its work goes on in the background."""


def _bounded(seconds: float, work: Callable[[], T]) -> T:
    """``work()`` if it finishes within ``seconds``; else :class:`StoreTimeout` (a daemon thread never blocks exit)."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except Exception as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=run, name="dagnostics-alert-store", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise StoreTimeout(f"the DAGnostics store did not answer within {seconds:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _record_and_wait(ti: Any, context: Mapping[str, Any], wait_seconds: float) -> Diagnosis:
    """Record the try (task callbacks only), then wait for its analysis if it is queued; returns its Diagnosis."""
    started = time.monotonic()
    # Only a task's own callback carries "exception"; a DAG's callback comes after the task's listener recorded it.
    if "exception" in context:
        record = failure_record_from("running", ti, context["exception"])
        if record is not None:
            record_failure(record)
    return wait_for_diagnosis(
        _ref(ti), _try_number(ti), wait_seconds - (time.monotonic() - started), poll_interval=POLL_SECONDS
    )


def _ref(ti: Any) -> TaskInstanceRef:
    map_index = getattr(ti, "map_index", None)
    return TaskInstanceRef(ti.dag_id, ti.run_id, ti.task_id, -1 if map_index is None else int(map_index))


def _try_number(ti: Any) -> int:
    return int(getattr(ti, "try_number", 0) or 0)


def _heuristic(ti: Any, error: BaseException | str | None) -> AnalysisOutcome:
    """The heuristic analysis of the try's log on this machine, or of the exception when the log says nothing.

    Only the local log: it is on the worker while the task runs and costs no request; the Airflow API may be
    slow or out of reach from a task.  The analysis service's own choice (the log first, the recorded error when
    the log has no error line: :func:`~dagnostics_provider.analysis.service.extraction_for`), with the source
    fixed to ``local``.
    """
    ref = _ref(ti)
    task_ref = TaskRef(
        dag_id=ref.dag_id, task_id=ref.task_id, run_id=ref.run_id, map_index=ref.map_index, try_number=_try_number(ti)
    )
    error_text = error_details(error)[1]  # the traceback, as the listener stores it
    extraction, _ = extraction_for(task_ref, error_text, source="local")
    return analyze_extraction(extraction, None).outcome


def _why_on_the_spot(diagnosis: Diagnosis, wait_seconds: float) -> str:
    if diagnosis.state is DiagnosisState.not_recorded:
        return "DAGnostics has no record of this try (retries are recorded only with [dagnostics] record_retries)"
    if diagnosis.state is DiagnosisState.pending:
        waited = f"was not ready within {wait_seconds:g} s" if wait_seconds > 0 else "was not waited for"
        return f"the stored analysis {waited}; the Diagnosis tab shows it once the analysis DAG has run"
    if diagnosis.state is DiagnosisState.analysis_failed:
        return f"the stored analysis failed ({diagnosis.detail or 'no reason recorded'})"
    return "a person excluded this failure from analysis"


def alert_for(context: Mapping[str, Any], wait_seconds: float) -> Alert:
    """The alert for the failed try in ``context``; never raises (what went wrong is in the alert's note)."""
    ti = context.get("ti") or context.get("task_instance")
    if ti is None:
        dag = context.get("dag")
        return Alert(dag_id=getattr(dag, "dag_id", None), run_id=context.get("run_id"), note=NO_TASK_INSTANCE)
    try:
        ref, try_number = _ref(ti), _try_number(ti)
    except Exception as exc:
        log.exception("DAGnostics alert: the callback context's task instance is unusable")
        return Alert(note=f"the callback context's task instance is unusable: {exc}")
    try:
        diagnosis = _bounded(wait_seconds + STORE_GRACE_SECONDS, lambda: _record_and_wait(ti, context, wait_seconds))
    except Exception as exc:
        log.warning("DAGnostics alert: the store could not be read (%s); analysing on the spot", exc, exc_info=True)
        failure_id, note = None, f"the DAGnostics store could not be reached ({type(exc).__name__}: {exc})"
    else:
        if diagnosis.item is not None:
            return stored_alert(ref, try_number, diagnosis.item)
        failure_id, note = diagnosis.failure_id, _why_on_the_spot(diagnosis, wait_seconds)
    try:
        outcome = _heuristic(ti, context.get("exception"))
    except Exception as exc:
        log.exception("DAGnostics alert: the heuristic analysis failed")
        return Alert(
            dag_id=ref.dag_id,
            task_id=ref.task_id,
            run_id=ref.run_id,
            map_index=ref.map_index,
            try_number=try_number,
            failure_id=failure_id,
            links=links_for(ref, try_number, failure_id),
            note=f"{note}; the heuristic analysis failed too ({type(exc).__name__}: {exc})",
        )
    return on_the_spot_alert(ref, try_number, outcome, failure_id=failure_id, note=note)
