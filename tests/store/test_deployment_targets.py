"""Deployments are found by their server, however its base URL was spelled when they were recorded."""

from __future__ import annotations

import pytest

from dagnostics_provider.store import deployments
from dagnostics_provider.store.engine import session_scope
from dagnostics_provider.store.models import Deployment, DeploymentStatus, ModelVersion

ALIAS = "dagnostics-slm:latest"


@pytest.mark.parametrize(
    ("spelling", "key"),
    [
        ("http://localhost:11434/", "http://localhost:11434"),
        ("http://127.0.0.1:11434", "http://localhost:11434"),
        ("http://127.0.1.1:11434", "http://localhost:11434"),
        ("http://[::1]:11434", "http://localhost:11434"),
        ("HTTP://LocalHost:11434//", "http://localhost:11434"),
        ("https://Ollama.Example.com:443/ollama/", "https://ollama.example.com/ollama"),
        ("http://user:secret@ollama:80", "http://ollama"),
        ("http://ollama:11434", "http://ollama:11434"),
        ("http://[::1", "http://[::1"),  # not a URL: kept, so it matches only itself
    ],
)
def test_server_key(spelling, key):
    assert deployments.server_key(spelling) == key


def test_rows_are_written_normalised_with_the_host_they_name():
    assert deployments.normalised_target("HTTP://127.0.0.1:11434/") == "http://127.0.0.1:11434"
    assert deployments.normalised_target("http://[::1]:80/") == "http://[::1]"


def _version(url: str) -> int:
    with session_scope(url) as session:
        version = ModelVersion(version="dagnostics-slm-v1.0", base_model="tiny", uri="file:///tmp/v1.0")
        session.add(version)
        session.flush()
        return version.id


def _old_row(url: str, version_id: int, target: str, status=DeploymentStatus.succeeded) -> int:
    """A row as written before targets were normalised: the URL exactly as the deploy step's hook spelled it."""
    with session_scope(url) as session:
        row = Deployment(
            model_version_id=version_id, target=target, ollama_model="dagnostics-slm:v1.0", alias=ALIAS, status=status
        )
        session.add(row)
        session.flush()
        return row.id


def test_an_old_row_is_found_under_any_spelling_of_its_server(migrated_store_url):
    version_id = _version(migrated_store_url)
    old = _old_row(migrated_store_url, version_id, "HTTP://LocalHost:11434/")
    _old_row(migrated_store_url, version_id, "http://ollama:11434")  # newer, on another server
    for spelling in ("http://127.0.0.1:11434", "http://[::1]:11434", "http://localhost:11434"):
        assert deployments.serving_deployment(spelling, migrated_store_url).id == old
        assert deployments.succeeded_deployment(version_id, spelling, migrated_store_url).id == old
    assert deployments.serving_deployment("http://localhost:11435", migrated_store_url) is None


def test_a_new_row_is_recorded_normalised_and_found_from_loopback(migrated_store_url):
    version_id = _version(migrated_store_url)
    started = deployments.start_deployment(
        version_id, "http://LOCALHOST:11434/", "dagnostics-slm:v1.0", migrated_store_url
    )
    deployments.finish_deployment(started, DeploymentStatus.succeeded, alias=ALIAS, url=migrated_store_url)
    assert deployments.get_deployment(started, migrated_store_url).target == "http://localhost:11434"
    assert deployments.serving_deployment("http://127.0.0.1:11434", migrated_store_url).id == started
