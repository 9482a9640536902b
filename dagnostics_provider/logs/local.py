"""Task logs read straight from the log folder, for single-machine installs.

Where the api-server is not reachable (no connection configured, a laptop install, a test), the log of a try is
still on this machine's disk in ``[logging] base_log_folder``, at the path ``[logging] log_filename_template``
renders to: ``dag_id=…/run_id=…/task_id=…/[map_index=N/]attempt=N.log`` by default, one JSON object per line.

Airflow renders a run's path from the template stored with the run (the ``log_template`` table), which is the
configured template unless someone changed it since; this reader only knows the configured one. Templates that
need more than the dag, run, task, map index and try number (``ts``, ``ti.logical_date``…) cannot be rendered
without the metadata DB: read such logs through the API.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path
from types import SimpleNamespace

from dagnostics_provider import config
from dagnostics_provider.logs import CHUNK_BYTES, LogUnavailableError, bounded_chunks, split_lines


class LocalLogNotFound(LogUnavailableError):
    """The log folder on this machine holds no (non-empty) log for the try."""


def _render_filename(template: str, fields: dict[str, str | int]) -> str:
    """Render the filename template the way Airflow does: Jinja when it has Jinja markup, else ``str.format``."""
    if "{{" in template or "{%" in template:
        from jinja2 import StrictUndefined, TemplateError
        from jinja2.sandbox import SandboxedEnvironment

        env = SandboxedEnvironment(undefined=StrictUndefined)
        try:
            return env.from_string(template).render(ti=SimpleNamespace(**fields), **fields)
        except TemplateError as exc:
            raise LocalLogNotFound(
                f"[logging] log_filename_template {template!r} cannot be rendered without the metadata DB "
                f"({exc}); read this log through the API ([dagnostics] log_source = api)"
            ) from exc
    try:
        return template.format(**fields)
    except (KeyError, IndexError) as exc:
        raise LocalLogNotFound(
            f"[logging] log_filename_template {template!r} needs {exc}, which only the metadata DB knows; "
            "read this log through the API ([dagnostics] log_source = api)"
        ) from exc


def task_log_path(
    dag_id: str,
    run_id: str,
    task_id: str,
    try_number: int,
    map_index: int = -1,
    base_log_folder: str | Path | None = None,
) -> Path:
    """Where Airflow writes the log of one try on this machine."""
    from airflow.configuration import conf

    base = Path(base_log_folder or conf.get("logging", "base_log_folder")).expanduser().resolve()
    template = conf.get("logging", "log_filename_template")
    fields: dict[str, str | int] = {
        "dag_id": dag_id,
        "run_id": run_id,
        "task_id": task_id,
        "map_index": map_index,
        "try_number": try_number,
    }
    path = (base / _render_filename(template, fields)).resolve()
    # Ids come from outside (API payloads, CLI arguments): never let one walk out of the log folder.
    if not path.is_relative_to(base):
        raise LocalLogNotFound(f"log path {path} for {dag_id}/{run_id}/{task_id} lies outside {base}")
    return path


def _read_lines(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        yield from split_lines(iter(partial(handle.read, CHUNK_BYTES), b""))


def iter_local_task_log(
    dag_id: str,
    run_id: str,
    task_id: str,
    try_number: int,
    map_index: int = -1,
    base_log_folder: str | Path | None = None,
) -> Iterator[bytes]:
    """Stream one try's log file in line-aligned chunks, capped at ``[dagnostics] max_log_bytes``.

    Raises :class:`LocalLogNotFound` right away (not on first iteration) when the file is missing or empty, so
    a caller can fall back to another source before it starts consuming.
    """
    path = task_log_path(dag_id, run_id, task_id, try_number, map_index, base_log_folder)
    if not path.is_file():
        raise LocalLogNotFound(f"no log file at {path} (try {try_number} of {dag_id}/{run_id}/{task_id})")
    if path.stat().st_size == 0:
        raise LocalLogNotFound(f"the log file {path} is empty")
    return bounded_chunks(_read_lines(path), config.get_int("max_log_bytes"))
