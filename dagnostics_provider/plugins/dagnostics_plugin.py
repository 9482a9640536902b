"""The Airflow plugin through which DAGnostics hooks into a running Airflow.

It is registered twice, as Airflow recommends for providers: through the ``airflow.plugins`` entry point (so
it is always loaded, also where ``plugins_folder`` is not shared) and in the provider info ``plugins`` list
(so ``airflow providers`` shows it).  It must stay cheap to import: every Airflow component imports it.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from dagnostics_provider.plugins.listener import failure_listener


class DagnosticsPlugin(AirflowPlugin):
    name = "dagnostics"
    listeners = [failure_listener]
