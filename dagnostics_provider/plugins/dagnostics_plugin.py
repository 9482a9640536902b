"""The Airflow plugin through which DAGnostics hooks into a running Airflow.

It is registered twice, as Airflow recommends for providers: through the ``airflow.plugins`` entry point (so
it is always loaded, also where ``plugins_folder`` is not shared) and in the provider info ``plugins`` list
(so ``airflow providers`` shows it).  It must stay cheap to import: every Airflow component imports it.

It contributes the failure listener and the "DAGnostics Feedback" review UI: a Flask-AppBuilder view that the
FAB provider serves under ``/pluginsv2/dagnostics/`` (``appbuilder_views``), plus two ``external_views``: one
puts "DAGnostics Feedback" into Airflow 3's navigation, the other adds a "Diagnosis" tab to every task instance
(both show the view in a frame).
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

from dagnostics_provider import links
from dagnostics_provider.plugins.listener import failure_listener

FEEDBACK = "DAGnostics Feedback"
DIAGNOSIS = "Diagnosis"


def _icon() -> str:
    return f"{links.airflow_base_path()}{links.FEEDBACK_ROUTE}static/dagnostics/icon.svg"


def _feedback_nav_item() -> dict[str, Any]:
    """The navigation entry; its links live under ``[api] base_url``'s path, like every Airflow page."""
    return {
        "name": FEEDBACK,
        "href": f"{links.airflow_base_path()}{links.FEEDBACK_ROUTE}",
        "icon": _icon(),
        "destination": "nav",
        "url_route": links.FEEDBACK_URL_ROUTE,
        # Its own item, not one entry of a generic "Plugins" menu (Airflow 3.3+; 3.1 and 3.2 list it under
        # "Plugins", see dagnostics_provider.compat).
        "nav_top_level": True,
    }


def _diagnosis_tab() -> dict[str, Any]:
    """A tab on every task instance; Airflow's UI fills the task instance's identity into the href."""
    return {
        "name": DIAGNOSIS,
        "href": links.diagnosis_view_href_template(),
        "icon": _icon(),
        "destination": "task_instance",
        "url_route": links.DIAGNOSIS_URL_ROUTE,
    }


class _DeferredViews:
    """``appbuilder_views``, built on first use, which only the api-server (and ``airflow plugins``) makes.

    The view needs Flask-AppBuilder, about half a second to import; every task process loads this plugin for
    its listener and must not pay that.  As a descriptor it answers both ways Airflow reads plugins: on the
    class (provider-info plugins) and on an instance (entry-point plugins).
    """

    def __init__(self) -> None:
        self._views: list[dict[str, Any]] | None = None

    def __get__(self, instance: object, owner: type) -> list[dict[str, Any]]:
        if self._views is None:
            from dagnostics_provider.plugins.views.feedback_view import DagnosticsFeedbackView

            view = DagnosticsFeedbackView()
            endpoint = type(view).__name__
            self._views = [
                {"name": "Review queue", "category": FEEDBACK, "view": view},
                {"name": "Feedback statistics", "category": FEEDBACK, "view": view, "href": f"{endpoint}.stats"},
                {"name": "Feedback export", "category": FEEDBACK, "view": view, "href": f"{endpoint}.export"},
            ]
        return self._views


class DagnosticsPlugin(AirflowPlugin):
    name = "dagnostics"
    listeners = [failure_listener]
    external_views = [_feedback_nav_item(), _diagnosis_tab()]
    appbuilder_views = _DeferredViews()
