"""Where things live in Airflow's UI: a task instance, its log, its Diagnosis tab and its review page.

One module, because the review UI, the Diagnosis tab, the plugin's ``external_views`` and the failure alerts all
link to the same pages, and a link that is right in one and wrong in another is the worst kind of broken.  Every
path sits under ``[api] base_url``'s path, like every Airflow page; alerts leave Airflow, so they use the whole
``base_url`` (scheme and host included).
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

FEEDBACK_ROUTE = "/pluginsv2/dagnostics/"
DIAGNOSIS_ROUTE = f"{FEEDBACK_ROUTE}diagnosis"
DIAGNOSIS_URL_ROUTE = "dagnostics-diagnosis"  # the Airflow UI shows the tab at .../plugin/<this>
FEEDBACK_URL_ROUTE = "dagnostics-feedback"


def airflow_base_url() -> str:
    """``[api] base_url`` without its trailing slash (empty when unset: links then start at ``/``)."""
    from airflow.configuration import conf

    return (conf.get("api", "base_url", fallback="") or "").rstrip("/")


def airflow_base_path() -> str:
    """The path part of ``[api] base_url`` (``""`` for an Airflow served at the root of its host)."""
    return urlsplit(airflow_base_url()).path.rstrip("/")


def _root(absolute: bool) -> str:
    return airflow_base_url() if absolute else airflow_base_path()


def task_instance_path(dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> str:
    """The task instance's page in Airflow 3's UI, relative to the base path."""
    parts = [dag_id, "runs", run_id, "tasks", task_id]
    path = "/dags/" + "/".join(quote(str(part), safe="") for part in parts)
    return f"{path}/mapped/{map_index}" if map_index >= 0 else path


def task_log_url(
    dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int, *, absolute: bool = False
) -> str:
    """The try's log in Airflow's UI (the task instance page opens on its log)."""
    return f"{_root(absolute)}{task_instance_path(dag_id, run_id, task_id, map_index)}?try_number={try_number}"


def diagnosis_tab_url(dag_id: str, run_id: str, task_id: str, map_index: int = -1, *, absolute: bool = False) -> str:
    """The "Diagnosis" tab of the task instance in Airflow's UI (the plugin's ``task_instance`` external view)."""
    path = task_instance_path(dag_id, run_id, task_id, map_index)
    return f"{_root(absolute)}{path}/plugin/{DIAGNOSIS_URL_ROUTE}"


def review_url(failure_id: int, *, absolute: bool = False) -> str:
    """The review page of one failed try (the review UI, outside Airflow's frame)."""
    return f"{_root(absolute)}{FEEDBACK_ROUTE}review/{int(failure_id)}"


def diagnosis_view_href_template() -> str:
    """The Diagnosis view's href with the placeholders Airflow's UI fills for a ``task_instance`` external view.

    Airflow's UI fills ``{DAG_ID}``, ``{RUN_ID}``, ``{TASK_ID}`` and ``{MAP_INDEX}``; it has no try-number
    placeholder, so the tab shows the newest recorded try and links to the others.
    """
    query = "dag_id={DAG_ID}&run_id={RUN_ID}&task_id={TASK_ID}&map_index={MAP_INDEX}"
    return f"{airflow_base_path()}{DIAGNOSIS_ROUTE}?{query}"
