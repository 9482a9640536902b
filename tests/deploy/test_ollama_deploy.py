"""Deploying to the strict fake Ollama over its REST API: upload, create, verify, promote, fail safely, roll back,
and the analyzer following the promoted model."""

from __future__ import annotations

import json
from pathlib import Path

import ollama
import pytest

from dagnostics_provider import prompt_format
from dagnostics_provider.analysis.llm import build_llm_analyzer
from dagnostics_provider.analysis.schema import json_schema
from dagnostics_provider.deploy.bundle import EXAMPLE_CONTEXT
from dagnostics_provider.deploy.ollama_deploy import DeployError, deploy, ollama_hook, rollback
from dagnostics_provider.hooks.ollama import file_digest
from dagnostics_provider.store.deployments import get_deployment, serving_deployment
from dagnostics_provider.store.models import DeploymentStatus
from dagnostics_provider.training import registry
from tests.deploy.conftest import ALIAS, ANALYSIS, TAG10, TAG11, V10, V11, register

BUNDLE_FILES = ("model.gguf",)  # the default import format: one GGUF file
SAFETENSORS_FILES = (
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
)


def assert_serving(fake, tag: str, version: str) -> None:
    """The alias holds ``tag``'s model, and the registry and production.json say ``version``."""
    assert fake.models[ALIAS].files == fake.models[tag].files
    assert fake.models[ALIAS].template == fake.models[tag].template
    assert registry.production_version() == version
    assert registry.read_production_pointer()["version"] == version


def assert_failed_safely(fake, failure: pytest.ExceptionInfo, reason: str, serving_id: int) -> None:
    """The attempt is recorded as failed with the reason; v1.0 still serves; no v1.1 tag is left behind."""
    row = get_deployment(failure.value.deployment_id)
    assert row.status == DeploymentStatus.failed and reason in row.detail and row.alias is None
    assert TAG11 not in fake.models
    assert_serving(fake, TAG10, V10)
    assert serving_deployment(fake.url).id == serving_id


def test_deploy_uploads_creates_verifies_and_promotes(registered, fake):
    result = deploy(registered.v10, ollama_hook())

    bundle = Path(result.bundle_dir)
    assert result.to_dict() == {
        "version": V10,
        "tag": TAG10,
        "alias": ALIAS,
        "deployment_id": result.deployment_id,
        "target": fake.url,
        "promoted": True,
        "bundle_dir": str(registered.v10 / "ollama"),
    }
    digests = {name: file_digest(bundle / name) for name in BUNDLE_FILES}
    assert set(fake.blobs) == set(digests.values())
    for digest in digests.values():  # HEAD first, then the upload
        assert [r.method for r in fake.requests_to(f"/api/blobs/{digest}")] == ["HEAD", "POST"]
    [create] = fake.json_requests("/api/create")
    assert create == {
        "model": TAG10,
        "files": digests,
        "template": (
            "<|im_start|>system\n{{ .System }}<|im_end|>\n<|im_start|>user\n{{ .Prompt }}<|im_end|>\n"
            "<|im_start|>assistant\n"
        ),
        "system": prompt_format.INSTRUCTION,
        "parameters": {"stop": ["<|im_end|>", "<|im_start|>user"], "temperature": 0.1, "num_ctx": 1024},
        "stream": True,
    }
    [smoke] = fake.json_requests("/api/chat")  # asked exactly as the analyzer asks
    assert smoke["model"] == TAG10
    assert smoke["messages"] == prompt_format.chat_messages(EXAMPLE_CONTEXT)
    assert smoke["format"] == json_schema()
    assert smoke["options"] == {"temperature": 0.1, "num_predict": 1024}  # llm_temperature, llm_max_tokens
    assert_serving(fake, TAG10, V10)
    row = get_deployment(result.deployment_id)
    assert (row.status, row.target, row.ollama_model, row.alias) == (DeploymentStatus.succeeded, fake.url, TAG10, ALIAS)
    assert row.finished_at is not None

    # The same version again: every blob is already there, nothing is uploaded twice.
    posts = len([r for r in fake.requests if r.method == "POST" and r.path.startswith("/api/blobs/")])
    deploy(registered.v10, ollama_hook())
    assert len([r for r in fake.requests if r.method == "POST" and r.path.startswith("/api/blobs/")]) == posts


def test_upload_progress_is_logged(registered, fake, caplog):
    caplog.set_level("INFO", logger="dagnostics_provider.deploy.upload")
    deploy(registered.v10, ollama_hook())
    assert any(
        "Uploading model.gguf:" in message and "(100%)" in message and "/s" in message for message in caplog.messages
    )


def test_the_official_client_sees_and_rebuilds_the_deployed_model(registered, fake):
    """Our requests have the shape the official client's have: the same create gives the same model."""
    deploy(registered.v10, ollama_hook())
    [create] = fake.json_requests("/api/create")
    client = ollama.Client(host=fake.url, timeout=10)
    client.create(
        model="contract:check",
        files=create["files"],
        template=create["template"],
        system=create["system"],
        parameters=create["parameters"],
    )
    ours, theirs = fake.models[TAG10], fake.models["contract:check"]
    assert (ours.files, ours.template, ours.system, ours.parameters) == (
        theirs.files,
        theirs.template,
        theirs.system,
        theirs.parameters,
    )
    shown = client.show(ALIAS)
    assert shown.template == create["template"] and '"<|im_end|>"' in shown.parameters
    assert {m.model for m in client.list().models} >= {TAG10, ALIAS}


def test_a_corrupted_upload_fails_the_deploy_and_production_is_unchanged(registered, fake):
    serving = deploy(registered.v10, ollama_hook())
    fake.corrupt_uploads(times=1)
    with pytest.raises(DeployError, match="digest mismatch") as failure:
        deploy(registered.v11, ollama_hook())
    assert "production is unchanged" in str(failure.value)
    assert_failed_safely(fake, failure, "HTTP 400: digest mismatch", serving.deployment_id)


def test_an_error_inside_the_create_stream_fails_the_deploy(registered, fake):
    serving = deploy(registered.v10, ollama_hook())
    fake.fail_create("unsupported architecture", after=2)
    with pytest.raises(DeployError, match="unsupported architecture") as failure:
        deploy(registered.v11, ollama_hook())
    assert_failed_safely(fake, failure, "LLMStreamError", serving.deployment_id)


def test_an_invalid_smoke_answer_fails_the_deploy_and_removes_the_new_tag(registered, fake):
    serving = deploy(registered.v10, ollama_hook())
    fake.answers[TAG11] = lambda request: "The task failed because of memory. I think. Probably. Maybe"
    with pytest.raises(DeployError, match="invalid analysis") as failure:
        deploy(registered.v11, ollama_hook())
    assert_failed_safely(fake, failure, "VerificationError", serving.deployment_id)
    assert {"model": TAG11} in fake.json_requests("/api/delete")  # created, then cleaned up


def test_a_model_that_runs_into_the_token_limit_fails_the_deploy(registered, fake, monkeypatch):
    serving = deploy(registered.v10, ollama_hook())
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__LLM_MAX_TOKENS", "8")  # the answer is longer: Ollama cuts it
    with pytest.raises(DeployError, match="did not stop before its length limit") as failure:
        deploy(registered.v11, ollama_hook())
    assert_failed_safely(fake, failure, "VerificationError", serving.deployment_id)


def test_deploy_without_promotion_leaves_production_alone(registered, fake):
    result = deploy(registered.v10, ollama_hook(), promote=False)
    assert (result.alias, result.promoted) == (None, False)
    assert TAG10 in fake.models and ALIAS not in fake.models
    assert registry.production_version() is None
    assert serving_deployment(fake.url) is None
    assert build_llm_analyzer("ollama").model == "llama3.2:3b"  # the configured model


def test_rollback_makes_the_analyzer_use_the_previous_version_again(registered, fake):
    hook = ollama_hook()
    deploy(registered.v10, hook)
    newer = deploy(registered.v11, hook)
    assert_serving(fake, TAG11, V11)
    assert build_llm_analyzer("ollama").model == ALIAS

    result = rollback(hook)

    assert (result.version, result.tag, result.alias) == (V10, TAG10, ALIAS)
    assert_serving(fake, TAG10, V10)
    assert get_deployment(newer.deployment_id).status == DeploymentStatus.rolled_back
    back = serving_deployment(fake.url)
    assert (back.id, back.ollama_model, back.status) == (result.deployment_id, TAG10, DeploymentStatus.succeeded)
    assert back.detail == f"rollback from {V11}"
    # The analyzer asks the alias, which now holds v1.0.
    analyzer = build_llm_analyzer("ollama")
    outcome = analyzer.analyze(EXAMPLE_CONTEXT, ANALYSIS)
    assert (outcome.analyzer, outcome.model) == ("ollama", ALIAS)
    assert fake.json_requests("/api/chat")[-1]["model"] == ALIAS
    # Forward again to v1.1 explicitly.
    assert rollback(hook, to_version=V11).tag == TAG11
    assert_serving(fake, TAG11, V11)


def test_rollback_refuses_what_it_cannot_do(registered, fake):
    hook = ollama_hook()
    with pytest.raises(DeployError, match="no earlier production version"):
        rollback(hook)
    deploy(registered.v10, hook)
    with pytest.raises(DeployError, match="already the production version"):
        rollback(hook, to_version=V10)
    with pytest.raises(DeployError, match=f"{V11} was never deployed to"):
        rollback(hook, to_version=V11)
    deploy(registered.v11, hook)
    del fake.models[TAG10]  # someone removed the old tag from the server
    with pytest.raises(DeployError, match=r"rolling back to .* failed, production is unchanged"):
        rollback(hook)
    assert_serving(fake, TAG11, V11)


def test_a_gpt2_version_deploys_as_gguf_and_safetensors_import_is_refused_early(store, trained, fake):
    register(trained.v10)
    version = register(trained.gpt2)
    with pytest.raises(DeployError, match=r"cannot import 'gpt2' models from safetensors.*qwen2") as failure:
        deploy(trained.gpt2, ollama_hook(), import_format="safetensors")
    assert get_deployment(failure.value.deployment_id).status == DeploymentStatus.failed
    assert not fake.blobs and not fake.json_requests("/api/create")

    result = deploy(trained.gpt2, ollama_hook())  # the default: GGUF, which Ollama loads for any architecture
    [create] = fake.json_requests("/api/create")
    assert create["files"] == {"model.gguf": file_digest(trained.gpt2 / "ollama" / "model.gguf")}
    assert create["template"] == "### System:\n{{ .System }}\n\n### User:\n{{ .Prompt }}\n\n### Assistant:\n"
    assert result.tag == "dagnostics-slm:v2.0" and registry.production_version() == version


def test_safetensors_import_sends_the_rope_settings_ollama_reads(registered, fake):
    deploy(registered.v10, ollama_hook(), import_format="safetensors")
    [create] = fake.json_requests("/api/create")
    assert sorted(create["files"]) == list(SAFETENSORS_FILES)
    bundle_config = registered.v10 / "ollama" / "config.json"
    rope_theta = json.loads(bundle_config.read_text())["rope_parameters"]["rope_theta"]
    # What the server would run with: Ollama reads only the top-level rope_theta (else 10 000 for Llama).
    assert fake.models[TAG10].rope_freq_base == rope_theta


def test_safetensors_import_is_checked_against_the_servers_version(registered, fake, monkeypatch, tmp_path):
    """Ollama 0.6.4 imports a Mistral fine-tune from safetensors, 0.6.5 and later do not: the server's version
    decides, before anything is merged or uploaded."""
    import shutil

    version_dir = tmp_path / V11
    shutil.copytree(registered.v11, version_dir)
    info_file = version_dir / "training_info.json"
    info_file.write_text(json.dumps({**json.loads(info_file.read_text()), "architecture": "mistral"}))
    monkeypatch.setattr(fake, "version", "0.6.5")
    with pytest.raises(DeployError, match=r"Ollama 0\.6\.5 cannot import 'mistral' models from safetensors"):
        deploy(version_dir, ollama_hook(), import_format="safetensors")
    assert not fake.blobs

    monkeypatch.setattr(fake, "version", "0.6.4")
    deploy(version_dir, ollama_hook(), import_format="safetensors")
    assert sorted(fake.models[TAG11].files) == list(SAFETENSORS_FILES)


def test_gguf_deploy_with_the_configured_converter(store, trained, fake, converter, monkeypatch):
    register(trained.v10)
    version = register(trained.gpt2)
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__LLAMA_CPP_CONVERT_SCRIPT", str(converter))
    result = deploy(trained.gpt2, ollama_hook(), quantize="q4_K_M")
    [create] = fake.json_requests("/api/create")
    gguf = trained.gpt2 / "ollama" / "model.gguf"
    assert create["files"] == {"model.gguf": file_digest(gguf)}
    assert create["quantize"] == "q4_K_M"
    assert create["template"] == "### System:\n{{ .System }}\n\n### User:\n{{ .Prompt }}\n\n### Assistant:\n"
    assert fake.models["dagnostics-slm:v2.0"].quantization_level == "Q4_K_M"
    assert result.tag == "dagnostics-slm:v2.0" and registry.production_version() == version


def test_the_analyzer_keeps_its_configured_model_without_a_deployment(store, fake, monkeypatch, tmp_path):
    assert build_llm_analyzer("ollama").model == "llama3.2:3b"
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__SQL_ALCHEMY_CONN", f"sqlite:///{tmp_path / 'never-created.db'}")
    assert build_llm_analyzer("ollama").model == "llama3.2:3b"
    assert not (tmp_path / "never-created.db").exists()


def test_use_deployed_model_false_pins_the_configured_model(registered, fake, monkeypatch):
    deploy(registered.v10, ollama_hook())
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__USE_DEPLOYED_MODEL", "False")
    assert build_llm_analyzer("ollama").model == "llama3.2:3b"


def test_a_b_candidate_is_promoted_later_without_uploading_again(registered, fake):
    hook = ollama_hook()
    deploy(registered.v10, hook)
    deploy(registered.v11, hook, promote=False)
    assert_serving(fake, TAG10, V10)
    creates = len(fake.json_requests("/api/create"))
    rollback(hook, to_version=V11)
    assert_serving(fake, TAG11, V11)
    assert len(fake.json_requests("/api/create")) == creates


def test_a_registry_failure_after_the_copy_puts_the_alias_back(registered, fake, monkeypatch):
    hook = ollama_hook()
    deploy(registered.v10, hook)

    def broken_promote(version, **kwargs):
        raise registry.RegistryError("the store went away")

    monkeypatch.setattr(registry, "promote", broken_promote)
    with pytest.raises(DeployError, match="the store went away"):
        deploy(registered.v11, hook)
    assert [r["destination"] for r in fake.json_requests("/api/copy")] == [ALIAS, ALIAS, ALIAS]  # v1.0, v1.1, back
    assert_serving(fake, TAG10, V10)
    assert TAG11 not in fake.models
