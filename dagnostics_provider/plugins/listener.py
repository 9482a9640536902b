"""The listener that records every failed task instance into the DAGnostics store.

It runs inside the user's task process (and in the api-server when someone marks a task failed by hand), so it
must be quick and must never raise: any error of its own is logged and swallowed.  It only records the failure
(identity, times, error and traceback); fetching and analysing the log happens later, in the analyze DAG, so a
slow log backend or LLM never delays the user's task.
"""

from __future__ import annotations

import logging
import socket
import traceback
from typing import Any

from airflow.listeners import hookimpl

from dagnostics_provider import config

log = logging.getLogger(__name__)

UP_FOR_RETRY = "up_for_retry"


def _bounded(text: str, limit: int) -> str:
    """Cut from the middle: the start says where it happened, the end holds the final exception."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n... [{len(text) - limit} characters cut by DAGnostics] ...\n{text[-half:]}"


def error_details(error: BaseException | str | None) -> tuple[str | None, str | None]:
    if error is None:
        return None, None
    if isinstance(error, BaseException):
        error_type = f"{type(error).__module__}.{type(error).__qualname__}".removeprefix("builtins.")
        text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        return error_type, text
    return None, str(error)


def _state(task_instance: Any) -> str:
    state = getattr(task_instance, "state", None)
    return str(getattr(state, "value", state) or "failed")


def _operator(task_instance: Any) -> str | None:
    task = getattr(task_instance, "task", None)
    if task is not None:
        # "@task" for TaskFlow tasks, as the Airflow UI shows them; the class name otherwise.
        return getattr(task, "custom_operator_name", None) or getattr(task, "task_type", None) or type(task).__name__
    return getattr(task_instance, "operator", None)


def failure_record_from(previous_state: Any, task_instance: Any, error: BaseException | str | None):
    """Build the store record, or None when this failure is not to be recorded (a retry, by default)."""
    from dagnostics_provider.store.failures import FailureRecord

    state = _state(task_instance)
    if state == UP_FOR_RETRY and not config.get_bool("record_retries"):
        return None
    error_type, error_text = error_details(error)
    return FailureRecord(
        dag_id=task_instance.dag_id,
        task_id=task_instance.task_id,
        run_id=task_instance.run_id,
        map_index=getattr(task_instance, "map_index", -1)
        if getattr(task_instance, "map_index", None) is not None
        else -1,
        try_number=int(getattr(task_instance, "try_number", 0) or 0),
        operator=_operator(task_instance),
        hostname=getattr(task_instance, "hostname", None) or socket.getfqdn(),
        # A user marking a task failed in the UI or API fires the listener with no previous state.
        task_state=state,
        marked_by_user=previous_state is None,
        start_date=getattr(task_instance, "start_date", None),
        end_date=getattr(task_instance, "end_date", None),
        error_type=error_type,
        error_text=_bounded(error_text, config.get_int("max_error_chars")) if error_text else None,
    )


class FailureListener:
    """Registered through the plugin's ``listeners``."""

    @hookimpl
    def on_task_instance_failed(self, previous_state, task_instance, error) -> None:
        try:
            from dagnostics_provider.store.failures import record_failure

            record = failure_record_from(previous_state, task_instance, error)
            if record is None:
                return
            failure_id = record_failure(record)
            log.info(
                "DAGnostics recorded failed try %s of %s.%s (failure id %s)",
                record.try_number,
                record.dag_id,
                record.task_id,
                failure_id,
            )
        except Exception:
            # Never break the user's task (or the UI action) because DAGnostics could not record it.
            log.exception("DAGnostics could not record the failed task; the task itself is unaffected")


failure_listener = FailureListener()
