"""Everything that differs between the Airflow versions DAGnostics supports, from 3.1 (the oldest) to 3.3.

The rest of the package imports version-dependent names from here and never checks a version itself.  Where a
name moved, the new place is tried first and the old one is the fallback (feature detection); a version number
decides only where behaviour changed with nothing to import.

Checked against apache-airflow 3.1.0 and 3.1.8 (task SDK 1.1.8), 3.2.0 (task SDK 1.2.0) and 3.3.2 (task SDK
1.3.2), each with apache-airflow-providers-fab 3.10.2.  ``make test-compat`` runs the plugin, listener, notifier,
trigger and review-UI tests on 3.1 (``scripts/test_compat.sh``).

Names resolved lazily on first use (importing this module imports nothing from Airflow)::

    AirflowSkipException  airflow.sdk.exceptions (3.3) | airflow.exceptions (3.1; deprecated there in 3.3)
    AssetOrTimeSchedule   airflow.sdk (3.3) | airflow.timetables.assets (3.1: not in airflow.sdk)
    CronTriggerTimetable  airflow.sdk (3.3) | airflow.timetables.trigger (3.1: not in airflow.sdk)
    DagBag                airflow.dag_processing.dagbag (3.3) | airflow.models.dagbag (3.1); see dag_bag()

The same in 3.1.8 and 3.3.2: ``airflow.sdk``'s BaseNotifier, BaseOperator, BaseHook, DAG, Param, Asset and
AssetWatcher(name, trigger); ``airflow.triggers.base.BaseEventTrigger`` (3.3 adds optional shared-stream hooks
only); ``airflow.listeners.hookimpl`` and the ``on_task_instance_failed(previous_state, task_instance, error)``
hookspec; ``airflow.api_fastapi.app.get_auth_manager`` and the auth manager methods the review UI calls; the
FAB provider's ``/pluginsv2`` mount and ``airflow.providers.fab.www.app.csrf``; the REST API v2 routes and
parameters of ``hooks/airflow_api.py`` (but see :func:`log_token_resumes`).

Different, with nothing to do about it: an external view's ``nav_top_level`` gives it its own navigation item
from 3.3 (``BaseUIResponse.nav_top_level`` in ``api_fastapi/core_api/datamodels/plugins.py``); 3.1 and 3.2 keep
the key (``extra="allow"``) and list the item among the plugins, so it is sent to every version.
"""

from __future__ import annotations

import functools
import importlib
from pathlib import Path
from typing import Any

# name -> where to find it, newest Airflow first: (module, attribute) pairs.
_MOVED: dict[str, tuple[tuple[str, str], ...]] = {
    # airflow.sdk.exceptions has no AirflowSkipException in task SDK 1.1 (Airflow 3.1); Airflow 3.3 keeps the old
    # name in airflow.exceptions only as a deprecated alias of the SDK's class.
    "AirflowSkipException": (
        ("airflow.sdk.exceptions", "AirflowSkipException"),
        ("airflow.exceptions", "AirflowSkipException"),
    ),
    # Airflow 3.1's airflow.sdk exports neither; its core classes take the SDK's Asset objects.  In 3.3 the core
    # classes are the scheduler's serialized form and DAG files must use the SDK's.
    "AssetOrTimeSchedule": (
        ("airflow.sdk", "AssetOrTimeSchedule"),
        ("airflow.timetables.assets", "AssetOrTimeSchedule"),
    ),
    "CronTriggerTimetable": (
        ("airflow.sdk", "CronTriggerTimetable"),
        ("airflow.timetables.trigger", "CronTriggerTimetable"),
    ),
    # DagBag moved to airflow.dag_processing.dagbag; 3.1 has it in airflow.models.dagbag only.
    "DagBag": (("airflow.dag_processing.dagbag", "DagBag"), ("airflow.models.dagbag", "DagBag")),
}


def __getattr__(name: str) -> Any:
    """PEP 562: resolve a moved name on first use, so importing this module stays cheap (listener, plugin)."""
    places = _MOVED.get(name)
    if places is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = _first_importable(places)
    globals()[name] = value
    return value


def _first_importable(places: tuple[tuple[str, str], ...]) -> Any:
    for module_name, attribute in places:
        try:
            return getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"none of {[f'{m}.{a}' for m, a in places]} exists in this Airflow")


@functools.cache
def airflow_version() -> tuple[int, ...]:
    """The installed Airflow's release numbers, e.g. ``(3, 1, 8)``; pre-release and dev tags are ignored."""
    from airflow import __version__
    from packaging.version import Version  # a dependency of apache-airflow-core

    return Version(__version__).release


# ------------------------------------------------------------------------------------------- the React UI


def ui_encodes_href_placeholders() -> bool:
    """Whether Airflow's UI URL-encodes the values it puts into an external view's ``href``.

    For ``dag``/``dag_run``/``task``/``task_instance`` external views the UI replaces ``{DAG_ID}``,
    ``{RUN_ID}``, ``{TASK_ID}`` (and ``{MAP_INDEX}``) in the href.  From 3.2.0 it passes the ids through
    ``encodeURIComponent``; 3.1.x inserts them raw (``replaceAll("{RUN_ID}", runId)`` in
    ``airflow/ui/dist/assets/index-*.js`` of 3.1.0 and 3.1.8; ``encodeURIComponent`` in 3.2.0 and 3.3.2).
    The UI runs from the api-server's own Airflow, so the api-server's version decides.
    """
    return airflow_version() >= (3, 2, 0)


def external_view_arg(value: str | None, placeholder: str) -> str | None:
    """A query argument that an external view's ``href`` received from a placeholder, as Airflow filled it.

    Use it for hrefs like ``…?run_id={RUN_ID}``.  ``None`` when the UI left the placeholder unfilled: every
    version leaves ``{MAP_INDEX}`` literally in place on a task instance that is not mapped (its page has no
    ``mapIndex`` route parameter), so ``external_view_arg(args.get("map_index"), "{MAP_INDEX}")`` is ``None``
    there, meaning ``-1``.  On Airflow 3.1 the raw id lands in the query string, where a ``+`` reads as a space:
    every scheduled or manual run id has one (``manual__2026-01-01T00:00:00+00:00``).  Airflow's default
    ``[scheduler] allowed_run_id_pattern`` allows no spaces, so a space here was a ``+``; it is put back.
    Ids in path segments (``/diagnosis/{DAG_ID}/{RUN_ID}/…``) would not need this: there ``+`` stays ``+``.
    """
    if value is None or value == placeholder:
        return None
    if not ui_encodes_href_placeholders():
        value = value.replace(" ", "+")
    return value


# ------------------------------------------------------------------------------------------- the REST API


def release(version: str) -> tuple[int, ...]:
    """``"3.1.8"`` → ``(3, 1, 8)``, for versions reported by an api-server (``GET /api/v2/version``)."""
    from packaging.version import InvalidVersion, Version

    try:
        return Version(version).release
    except InvalidVersion:
        return ()


def log_token_resumes(server_version: str) -> bool:
    """Whether an api-server of ``server_version`` starts a log page where its ``continuation_token`` left off.

    ``GET …/logs/{try_number}?token=…`` on 3.1.x sends the whole log again (without the source-details block):
    ``FileTaskHandler._read`` calls ``islice(out_stream, metadata["log_pos"])`` and drops the result
    (``airflow/utils/log/file_task_handler.py`` line 681 in 3.1.0, 690 in 3.1.8).  3.2.0 and later assign it
    (``out_stream = islice(out_stream, metadata["log_pos"], None)``), so the next page holds only new lines.
    An unknown version is taken as a fixed one.
    """
    numbers = release(server_version)
    return not numbers or numbers >= (3, 2, 0)


def log_messages_already_sent(continuation_token: str) -> int:
    """How many log messages the pages before ``continuation_token`` held (its ``log_pos``; 0 when unknown).

    The token is the api-server's ``itsdangerous.URLSafeSerializer`` dump of ``{"end_of_log", "log_pos"}``:
    signed, not encrypted.  Only the server must trust it, so it is read here without checking the signature.
    """
    from itsdangerous import URLSafeSerializer

    _, metadata = URLSafeSerializer("unused").loads_unsafe(continuation_token)
    position = metadata.get("log_pos") if isinstance(metadata, dict) else None
    return position if isinstance(position, int) and position > 0 else 0


# ------------------------------------------------------------------------------------------- teams


def has_multi_team() -> bool:
    """Whether this Airflow has multi-team mode (``[core] multi_team`` and ``airflow teams``): 3.2.0 and later."""
    return airflow_version() >= (3, 2, 0)


def multi_team_enabled() -> bool:
    """``[core] multi_team``; always off on Airflow 3.1, which has no such option (nor teams)."""
    if not has_multi_team():
        return False
    from airflow.configuration import conf

    return conf.getboolean("core", "multi_team", fallback=False)


# ------------------------------------------------------------------------------------------- callbacks


def dag_test_passes_exception() -> bool:
    """Whether ``dag.test()`` (tasks run in-process, no executor) gives failure callbacks ``context["exception"]``.

    Task SDK 1.3 (Airflow 3.3) sets it before ``finalize()`` runs the callbacks in ``InProcessTestSupervisor``
    (``airflow/sdk/execution_time/supervisor.py``); 1.1.8 (3.1.8) and 1.2.x (3.2) do not, so there a notifier
    called from ``dag.test()`` sees no exception.  Real task runs (``task_runner.main``) set it in every version.
    """
    from airflow.sdk import __version__ as sdk_version
    from packaging.version import Version

    return Version(sdk_version).release >= (1, 3, 0)


# ------------------------------------------------------------------------------------------- DAG parsing


def dag_bag(dag_folder: str | Path, *, bundle_name: str = "dags-folder") -> Any:
    """Parse ``dag_folder`` the way the DAG processor does: a ``DagBag`` over it as a bundle.

    ``DagBag`` moved from ``airflow.models.dagbag`` (3.1) to ``airflow.dag_processing.dagbag`` (3.3), and its
    ``bundle_name`` argument is new in 3.3 (3.1.8 accepts ``bundle_path`` only; 3.3 dropped ``include_examples``,
    so Airflow's example DAGs come along where ``[core] load_examples`` is on, in every version).
    """
    import inspect

    from dagnostics_provider import compat

    folder = Path(dag_folder).resolve()
    kwargs: dict[str, Any] = {"dag_folder": folder, "bundle_path": folder}
    if "bundle_name" in inspect.signature(compat.DagBag.__init__).parameters:
        kwargs["bundle_name"] = bundle_name
    return compat.DagBag(**kwargs)
