"""Open the log of one failed try from wherever it can be read.

``[dagnostics] log_source`` picks the source: ``api`` (Airflow's REST API: sees remote logging, remote workers'
log servers and every machine's files), ``local`` (this machine's log folder), or ``auto``, the default: the API
first and the local folder when the API cannot deliver (no api-server running, no credentials, a log the
api-server cannot see). Every source yields the same line-aligned byte chunks (see :mod:`dagnostics_provider.logs`).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagnostics_provider import config
from dagnostics_provider.hooks.airflow_api import AirflowApiError, AirflowApiHook
from dagnostics_provider.logs import LogUnavailableError
from dagnostics_provider.logs.local import iter_local_task_log, task_log_path

log = logging.getLogger(__name__)

LOG_SOURCES = ("auto", "api", "local")


@dataclass(frozen=True, kw_only=True)
class TaskRef:
    """One try of one task instance: what a log belongs to."""

    dag_id: str
    task_id: str
    run_id: str
    map_index: int = -1
    try_number: int

    @classmethod
    def from_api(cls, task_instance: Mapping[str, Any]) -> TaskRef:
        """From a TaskInstanceResponse of the REST API (which calls the run id ``dag_run_id``)."""
        return cls(
            dag_id=task_instance["dag_id"],
            task_id=task_instance["task_id"],
            run_id=task_instance["dag_run_id"],
            map_index=task_instance.get("map_index", -1),
            try_number=task_instance["try_number"],
        )


def _primed(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Read the first chunk now, so a source that has nothing fails here and not in the caller's loop."""
    first = next(chunks, None)
    return iter(()) if first is None else itertools.chain([first], chunks)


def _open_from_api(ref: TaskRef, hook: AirflowApiHook | None) -> tuple[Iterator[bytes], str]:
    hook = hook or AirflowApiHook()
    chunks = hook.iter_task_log(ref.dag_id, ref.run_id, ref.task_id, ref.try_number, ref.map_index)
    return _primed(chunks), hook.task_log_url(ref.dag_id, ref.run_id, ref.task_id, ref.try_number, ref.map_index)


def _open_from_folder(ref: TaskRef, base_log_folder: str | Path | None) -> tuple[Iterator[bytes], str]:
    chunks = iter_local_task_log(
        ref.dag_id, ref.run_id, ref.task_id, ref.try_number, ref.map_index, base_log_folder=base_log_folder
    )
    path = task_log_path(ref.dag_id, ref.run_id, ref.task_id, ref.try_number, ref.map_index, base_log_folder)
    return _primed(chunks), path.as_uri()


def open_task_log(
    ref: TaskRef,
    *,
    source: str | None = None,
    hook: AirflowApiHook | None = None,
    base_log_folder: str | Path | None = None,
) -> tuple[Iterator[bytes], str]:
    """Return the try's log as line-aligned chunks and a reference to where it was read.

    The reference is the API address of the log or a ``file://`` URI. ``source`` overrides ``[dagnostics]
    log_source``. Raises :class:`~dagnostics_provider.logs.LogUnavailableError` (with every source's reason)
    when no source can deliver the log.
    """
    chosen = (source or config.get("log_source")).strip().lower()
    if chosen not in LOG_SOURCES:
        raise ValueError(f"[dagnostics] log_source must be one of {', '.join(LOG_SOURCES)}, got {chosen!r}")
    api_failure: AirflowApiError | None = None
    if chosen in ("api", "auto"):
        try:
            return _open_from_api(ref, hook)
        except AirflowApiError as exc:
            if chosen == "api":
                raise LogUnavailableError(f"log of {ref} unavailable from the Airflow API: {exc}") from exc
            log.warning("Reading the log of %s from the Airflow API failed (%s); trying the local folder", ref, exc)
            api_failure = exc
    try:
        return _open_from_folder(ref, base_log_folder)
    except LogUnavailableError as exc:
        if api_failure is None:
            raise
        raise LogUnavailableError(f"log of {ref} unavailable: Airflow API: {api_failure}; local folder: {exc}") from exc
