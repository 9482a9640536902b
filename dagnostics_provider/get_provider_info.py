"""Provider metadata that Airflow's ProvidersManager reads through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from dagnostics_provider import __version__
from dagnostics_provider.config import provider_config_section
from dagnostics_provider.hooks.connection_forms import OLLAMA_CONNECTION, OPENAI_COMPATIBLE_CONNECTION


def get_provider_info() -> dict:
    return {
        # Must equal the normalised distribution name or Airflow refuses to load the provider.
        "package-name": "airflow-provider-dagnostics",
        "name": "DAGnostics",
        "description": (
            "Analyses every failed task with a small language model, collects engineers' reviews in the "
            "Airflow UI and fine-tunes and deploys a better model from them."
        ),
        "versions": [__version__],
        "connection-types": [OLLAMA_CONNECTION, OPENAI_COMPATIBLE_CONNECTION],
        "config": provider_config_section(),
        "integrations": [
            {
                "integration-name": "DAGnostics",
                "external-doc-url": "https://github.com/dagnostics/airflow-provider-dagnostics/tree/main/docs",
                "tags": ["software"],
            }
        ],
        "triggers": [
            {"integration-name": "DAGnostics", "python-modules": ["dagnostics_provider.triggers.new_failures"]}
        ],
        "notifications": ["dagnostics_provider.notifications.dagnostics.DagnosticsNotifier"],
        "plugins": [
            {
                "name": "dagnostics",
                "plugin-class": "dagnostics_provider.plugins.dagnostics_plugin.DagnosticsPlugin",
            }
        ],
    }
