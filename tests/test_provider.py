"""The package registers itself with Airflow as a provider, a plugin and a console script."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import distribution, entry_points
from pathlib import Path

import pytest

from dagnostics_provider import __version__
from dagnostics_provider.config import OPTIONS
from dagnostics_provider.get_provider_info import get_provider_info

AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def test_provider_info_matches_the_distribution():
    info = get_provider_info()
    dist = distribution("airflow-provider-dagnostics")
    assert info["package-name"] == dist.metadata["Name"]
    assert info["versions"] == [__version__] == [dist.version]
    options = info["config"]["dagnostics"]["options"]
    assert set(options) == set(OPTIONS)
    for name, option in options.items():
        assert {"description", "version_added", "type", "example", "default"} <= set(option), name


def test_entry_points_are_registered():
    providers = {ep.value for ep in entry_points(group="apache_airflow_provider")}
    assert "dagnostics_provider.get_provider_info:get_provider_info" in providers
    plugins = {ep.name: ep.value for ep in entry_points(group="airflow.plugins")}
    assert plugins["dagnostics"] == "dagnostics_provider.plugins.dagnostics_plugin:DagnosticsPlugin"
    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    assert scripts["dagnostics"] == "dagnostics_provider.cli.main:main"


def _airflow(*args: str) -> str:
    result = subprocess.run([AIRFLOW, *args], capture_output=True, text=True, timeout=180, check=True)
    return result.stdout


@pytest.mark.slow
def test_airflow_lists_provider_plugin_and_config():
    providers = _airflow("providers", "list", "--output", "json")
    assert '"package_name": "airflow-provider-dagnostics"' in providers
    plugins = _airflow("plugins", "--output", "json")
    assert '"name": "dagnostics"' in plugins
    config = _airflow("config", "list", "--section", "dagnostics", "--show-values", "--include-descriptions")
    assert "[dagnostics]" in config
    assert "store_conn_id = dagnostics_default" in config
    assert "sqlite_busy_timeout_ms = 30000" in config


def test_provider_info_validates_and_names_the_trigger_and_the_notifier():
    """Airflow's own schema, and every module and class it names imports (``airflow providers triggers`` lists it)."""
    import importlib
    import json

    import airflow
    import jsonschema

    info = get_provider_info()
    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(info, schema)
    integrations = {item["integration-name"] for item in info["integrations"]}
    for trigger in info["triggers"]:
        assert trigger["integration-name"] in integrations
        for module in trigger["python-modules"]:
            assert hasattr(importlib.import_module(module), "NewFailuresTrigger")
    for path in info["notifications"]:
        module, _, name = path.rpartition(".")
        assert getattr(importlib.import_module(module), name).__name__ == "DagnosticsNotifier"
