"""The analyzer finds the model deployed to its server however either side spelled the server's URL."""

from __future__ import annotations

from dagnostics_provider.deploy.serving import deployed_model
from dagnostics_provider.hooks.ollama import OllamaHook
from dagnostics_provider.store import deployments
from dagnostics_provider.store.engine import session_scope
from dagnostics_provider.store.models import DeploymentStatus, ModelVersion
from tests.deploy.conftest import ALIAS, TAG10, V10


def _deployed(target: str) -> int:
    """A promoted deployment of v1.0 recorded for ``target`` as the deploy step records it; returns its id."""
    with session_scope() as session:
        version = ModelVersion(version=V10, base_model="tiny", uri=f"file:///tmp/{V10}")
        session.add(version)
        session.flush()
        version_id = version.id
    deployment_id = deployments.start_deployment(version_id, target, TAG10)
    deployments.finish_deployment(deployment_id, DeploymentStatus.succeeded, alias=ALIAS)
    return deployment_id


def test_a_deployment_to_localhost_is_used_by_an_analyzer_that_says_127_0_0_1(store):
    deployment_id = _deployed("http://localhost:11434/")
    for analyzer_url in ("http://127.0.0.1:11434", "http://[::1]:11434/", "HTTP://LOCALHOST:11434", "localhost"):
        assert deployed_model(OllamaHook(base_url=analyzer_url)) == ALIAS, analyzer_url
    assert deployed_model(OllamaHook(base_url="http://127.0.0.1:11435")) is None  # another server
    assert deployed_model(OllamaHook(base_url="http://ollama:11434")) is None
    assert deployments.get_deployment(deployment_id).target == "http://localhost:11434"  # recorded normalised
