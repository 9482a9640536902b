"""``dagnostics training deploy-ollama`` / ``rollback`` and ``OllamaDeployOperator``, against the fake Ollama."""

from __future__ import annotations

import json
import logging

import pytest

from dagnostics_provider.cli.main import main
from dagnostics_provider.operators.deploy import OllamaDeployOperator
from dagnostics_provider.training import registry
from tests.deploy.conftest import ALIAS, TAG10, TAG11, V10, V11


@pytest.fixture(autouse=True)
def _restore_logging():
    """``main`` points the root logger at this test's captured stderr; later tests must not log into it."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["training", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_auto_build_false_writes_the_bundle_and_prints_the_create_command(trained, capsys):
    code, out, _ = run(capsys, "deploy-ollama", str(trained.v10), "--auto-build", "false", "--quantize", "q4_K_M")
    bundle = trained.v10 / "ollama"
    assert code == 0
    assert f"Ollama bundle of {V10} written to {bundle}" in out
    assert f"ollama create {TAG10} -f {bundle / 'Modelfile'} --quantize q4_K_M" in out
    assert (bundle / "model.safetensors").is_file()

    code, out, _ = run(
        capsys, "deploy-ollama", str(trained.v10), "--auto-build", "false", "--model-name", "dagnostics-slm-v1"
    )
    assert "ollama create dagnostics-slm-v1:v1.0 -f" in out  # the guide's --model-name, tagged with the version


def test_deploy_and_rollback_from_the_command_line(registered, fake, capsys):
    code, out, _ = run(capsys, "deploy-ollama", str(registered.v10), "--format", "json")
    assert code == 0 and json.loads(out)["tag"] == TAG10
    code, out, _ = run(capsys, "deploy-ollama", str(registered.v11))
    assert code == 0
    assert out.startswith(f"Deployed {V11} to {fake.url} as {TAG11}, serving as {ALIAS} (deployment ")

    code, out, _ = run(capsys, "rollback")
    assert (code, out.strip()) == (0, f"Rolled back to {V10}: {ALIAS} now serves {TAG10} on {fake.url}")
    assert registry.production_version() == V10


def test_command_line_errors_are_one_line(registered, fake, capsys):
    fake.corrupt_uploads(times=1)
    code, out, err = run(capsys, "deploy-ollama", str(registered.v10))
    assert (code, out) == (2, "")
    error = err.strip().splitlines()[-1]
    assert error.startswith(f"dagnostics: error: deployment 1 of {V10}") and "digest mismatch" in error
    code, _, err = run(capsys, "deploy-ollama", str(registered.v10), "--model-name", "bad name!")
    assert code == 2 and "not a valid Ollama model name" in err.strip().splitlines()[-1]
    code, _, err = run(capsys, "rollback")
    assert code == 2 and "no earlier production version" in err.strip().splitlines()[-1]


def test_operator_returns_tag_alias_and_deployment(registered, fake):
    result = OllamaDeployOperator(task_id="deploy", model_dir=str(registered.v10)).execute({})
    assert (result["version"], result["tag"], result["alias"], result["promoted"]) == (V10, TAG10, ALIAS, True)
    assert isinstance(result["deployment_id"], int) and result["target"] == fake.url

    built = OllamaDeployOperator(task_id="bundle", model_dir=str(registered.v11), auto_build=False).execute({})
    assert built["tag"] == TAG11 and built["create_command"].startswith(f"ollama create {TAG11} -f ")
    assert TAG11 not in fake.models
