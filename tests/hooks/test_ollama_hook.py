"""OllamaHook against the fake Ollama server: settings, inference, errors and the deployment calls."""

from __future__ import annotations

import hashlib
import json
from importlib import resources

import jsonschema
import pytest
from airflow.providers_manager import ProvidersManager, _create_provider_info_schema_validator
from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

from dagnostics_provider.get_provider_info import get_provider_info
from dagnostics_provider.hooks.llm_errors import (
    LLMHTTPError,
    LLMInvalidResponse,
    LLMNotFound,
    LLMStreamError,
    LLMTimeout,
)
from dagnostics_provider.hooks.llm_http import MAX_RESPONSE_BYTES, base_url
from dagnostics_provider.hooks.ollama import OllamaError, OllamaHook, OllamaUnavailable, canonical_model_name
from tests.fakes.fake_ollama import DEFAULT_MODEL, FakeOllama
from tests.fakes.http_fake import Reply, Stream

MESSAGES = [{"role": "user", "content": "why did the task fail?"}]


@pytest.fixture
def fake():
    with FakeOllama() as server:
        server.answers[DEFAULT_MODEL] = lambda request: '{"ok": true}'
        yield server


@pytest.fixture
def hook(fake):
    return OllamaHook(base_url=fake.url, timeout=5)


@pytest.fixture
def weights(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF" + b"\x01\x02" * 300_000)
    return path


def _connection(monkeypatch, conn_id: str, **fields) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "ollama", **fields}))


# Settings


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        ("localhost", None, "http://localhost:11434"),
        ("ollama.internal", 8080, "http://ollama.internal:8080"),
        ("http://ollama.internal", None, "http://ollama.internal"),
        ("https://llm.example.com/ollama/", None, "https://llm.example.com/ollama"),
        ("https://llm.example.com", 8443, "https://llm.example.com:8443"),
        ("http://user:secret@llm.example.com:11434", None, "http://llm.example.com:11434"),
        ("[::1]", None, "http://[::1]:11434"),
    ],
)
def test_base_url_normalisation(host, port, expected):
    assert base_url(host, port=port, default_port=11434) == expected


def test_base_url_refuses_other_schemes():
    with pytest.raises(ValueError, match="not an http"):
        base_url("ftp://ollama", default_port=11434)


def test_settings_from_the_connection(fake, monkeypatch):
    host, port = fake.url.rsplit(":", 1)
    _connection(
        monkeypatch,
        "ollama_gpu",
        host=host,
        port=int(port),
        password="ollama-secret-key",
        extra={"model": DEFAULT_MODEL, "timeout": "12.5", "keep_alive": "-1"},
    )
    hook = OllamaHook("ollama_gpu")
    assert (hook.base_url, hook.model, hook.timeout) == (fake.url, DEFAULT_MODEL, 12.5)
    assert "ollama-secret-key" not in repr(hook.settings)

    hook.chat(MESSAGES)
    request = fake.requests_to("/api/chat")[0]
    assert request.headers["authorization"] == "Bearer ollama-secret-key"
    assert request.json["keep_alive"] == -1  # a number: Ollama cannot parse the string "-1" as a duration


def test_settings_fall_back_to_config_without_a_connection(fake, monkeypatch, capsys):
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__LLM_BASE_URL", fake.url)
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__LLM_MODEL", "tiny:1b")
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__LLM_TIMEOUT", "7")
    assert (OllamaHook().base_url, OllamaHook().model, OllamaHook().timeout) == (fake.url, "tiny:1b", 7.0)
    assert OllamaHook("ollama_typo").model == "tiny:1b"
    assert "Connection 'ollama_typo' does not exist" in "".join(capsys.readouterr())


def test_defaults_match_the_guide(monkeypatch):
    for option in ("LLM_BASE_URL", "LLM_MODEL", "LLM_TIMEOUT"):
        monkeypatch.delenv(f"AIRFLOW__DAGNOSTICS__{option}", raising=False)
    hook = OllamaHook("ollama_not_configured_anywhere")
    assert (hook.base_url, hook.model, hook.timeout) == ("http://localhost:11434", "llama3.2:3b", 60.0)


def test_a_bad_timeout_is_an_error_not_no_timeout(monkeypatch):
    _connection(monkeypatch, "ollama_bad", host="localhost", extra={"timeout": "soon"})
    with pytest.raises(ValueError, match="timeout must be a number"):
        _ = OllamaHook("ollama_bad").settings


def test_building_a_hook_does_not_look_up_the_connection(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("connection looked up in __init__")

    monkeypatch.setattr(OllamaHook, "get_connection", refuse)
    OllamaHook("anything")


# Inference


def test_chat_sends_a_non_streamed_request_and_returns_the_answer(fake, hook):
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}}
    response = hook.chat(MESSAGES, format=schema, options={"temperature": 0.1})
    assert response.content == '{"ok": true}'
    assert response.model == DEFAULT_MODEL
    assert response.done_reason == "stop"
    assert response.raw["done"] is True
    sent = fake.json_requests("/api/chat")[0]
    assert sent == {
        "model": DEFAULT_MODEL,
        "messages": MESSAGES,
        "stream": False,
        "format": schema,
        "options": {"temperature": 0.1},
    }


def test_unknown_model_is_not_found_with_the_server_text(hook):
    with pytest.raises(LLMNotFound) as caught:
        hook.chat(MESSAGES, model="missing:7b")
    assert caught.value.status_code == 404
    assert "try pulling it first" in str(caught.value)
    assert not caught.value.retryable


def test_server_down_is_unavailable(fake, hook):
    fake.stop()
    with pytest.raises(OllamaUnavailable, match="Connection refused"):
        hook.chat(MESSAGES)


def test_slow_answer_times_out(fake):
    fake.delays[DEFAULT_MODEL] = 3.0
    with pytest.raises(LLMTimeout, match=r"timed out after 0\.3s"):
        OllamaHook(base_url=fake.url, timeout=0.3).chat(MESSAGES)


def test_server_errors_carry_the_server_text_and_are_retryable(fake, hook):
    fake.fail("/api/chat", status=500, error="llama runner process has terminated")
    with pytest.raises(LLMHTTPError) as caught:
        hook.chat(MESSAGES)
    assert caught.value.server_error == "llama runner process has terminated"
    assert caught.value.retryable
    assert isinstance(caught.value, OllamaError)


class _HTMLProxy(FakeOllama):
    """What a misconfigured reverse proxy answers: HTTP 200 with an HTML page."""

    def handle(self, request):
        return Reply(200, b"<html><body>Welcome to nginx!</body></html>", "text/html")


def test_a_body_that_is_not_json_is_an_invalid_response():
    with _HTMLProxy() as proxy, pytest.raises(LLMInvalidResponse, match=r"not JSON.*nginx"):
        OllamaHook(base_url=proxy.url, timeout=5).version()


def test_an_oversized_answer_is_refused(fake, hook):
    fake.answers[DEFAULT_MODEL] = lambda request: "x" * (MAX_RESPONSE_BYTES + 1)
    with pytest.raises(LLMInvalidResponse, match="more than 4 MiB"):
        hook.chat(MESSAGES)


def test_an_answer_without_content_is_an_invalid_response(fake, hook):
    class NoContent(FakeOllama):
        def handle(self, request):
            return Reply(200, {"model": DEFAULT_MODEL, "done": True})

    with NoContent() as server, pytest.raises(LLMInvalidResponse, match=r"message\.content"):
        OllamaHook(base_url=server.url, timeout=5).chat(MESSAGES)


# Server and model information


def test_version_list_show(fake, hook):
    assert hook.version() == fake.version
    assert [m["name"] for m in hook.list_models()] == [DEFAULT_MODEL]
    assert hook.show()["details"]["family"] == "llama"
    with pytest.raises(LLMNotFound):
        hook.show("ghost")


def test_model_names_match_the_way_ollama_matches_them(fake, hook):
    fake.add_model("tiny")
    assert hook.has_model("tiny")
    assert hook.has_model("Tiny:latest")
    assert not hook.has_model("tiny:1b")
    assert canonical_model_name("library/llama3.2") == "library/llama3.2:latest"


def test_test_connection(fake, hook):
    ok, message = hook.test_connection()
    assert ok and DEFAULT_MODEL in message
    ok, message = OllamaHook(base_url=fake.url, model="absent:1b").test_connection()
    assert not ok and "ollama pull absent:1b" in message
    fake.stop()
    ok, message = hook.test_connection()
    assert not ok and "Connection refused" in message


# Deployment


def test_push_blob_uploads_once_and_returns_the_digest(fake, hook, weights):
    expected = f"sha256:{hashlib.sha256(weights.read_bytes()).hexdigest()}"
    assert not hook.blob_exists(expected)
    assert hook.push_blob(weights) == expected
    assert fake.blobs[expected] == weights.read_bytes()
    assert hook.blob_exists(expected)
    assert hook.push_blob(weights) == expected
    assert [r.method for r in fake.requests if r.path.startswith("/api/blobs/")] == [
        "HEAD",
        "HEAD",
        "POST",
        "HEAD",
        "HEAD",
    ]


def test_a_malformed_digest_is_refused_by_the_server(hook):
    with pytest.raises(LLMHTTPError) as caught:
        hook.blob_exists("sha256:nothex")
    assert caught.value.status_code == 400


def test_create_records_everything_and_returns_the_statuses(fake, hook, weights):
    digest = hook.push_blob(weights)
    adapter = hook.push_blob(weights)
    statuses = hook.create(
        "dagnostics-analyzer:v1",
        files={"model.gguf": digest},
        adapters={"adapter.safetensors": adapter},
        template="{{ .Prompt }}",
        system="You analyse Airflow logs.",
        parameters={"stop": ["<|end|>"], "temperature": 0},
        quantize="q8_0",
    )
    assert statuses[-1] == {"status": "success"}
    created = fake.models["dagnostics-analyzer:v1"]
    assert (created.template, created.system, created.quantize) == (
        "{{ .Prompt }}",
        "You analyse Airflow logs.",
        "q8_0",
    )
    assert created.parameters == {"stop": ["<|end|>"], "temperature": 0}
    assert created.adapters == {"adapter.safetensors": adapter}
    assert hook.show("dagnostics-analyzer:v1")["template"] == "{{ .Prompt }}"


def test_digests_are_always_sent_as_sha256_colon_lower_hex(fake, hook, weights):
    """Ollama refuses an upload named any other way; its blob reads take sha256- too, but one spelling is safest."""
    digest = hook.push_blob(weights)
    assert digest.startswith("sha256:") and digest == digest.lower()
    shouted = "sha256-" + digest.removeprefix("sha256:").upper()
    assert hook.blob_exists(shouted)
    hook.create("spelled", files={"model.gguf": shouted}, adapters={"adapter.safetensors": shouted})
    [create] = fake.json_requests("/api/create")
    assert create["files"] == {"model.gguf": digest} and create["adapters"] == {"adapter.safetensors": digest}
    assert fake.requests_to(f"/api/blobs/{digest}")[-1].method == "HEAD"  # blob_exists asked for sha256:
    assert not [r for r in fake.requests if r.path.startswith("/api/blobs/sha256-")]


def test_create_with_a_missing_blob_is_an_http_error(hook):
    with pytest.raises(LLMHTTPError) as caught:
        hook.create("broken", files={"model.gguf": "sha256:" + "0" * 64})
    assert caught.value.status_code == 400 and "blob not found" in caught.value.server_error


def test_create_failure_in_the_stream_raises(fake, hook, weights):
    digest = hook.push_blob(weights)
    fake.fail_create("unsupported model architecture", after=2)
    with pytest.raises(LLMStreamError, match="unsupported model architecture"):
        hook.create("broken", files={"model.gguf": digest})
    assert "broken:latest" not in fake.models


def test_a_broken_template_fails_in_the_stream(hook, weights):
    digest = hook.push_blob(weights)
    with pytest.raises(LLMStreamError, match="template"):
        hook.create("broken", files={"model.gguf": digest}, template="{{ .Prompt }")


def test_create_that_never_reports_success_raises():
    class Truncated(FakeOllama):
        def handle(self, request):
            return Stream(iter([{"status": "parsing GGUF"}]))

    with Truncated() as server, pytest.raises(LLMInvalidResponse, match="without reporting success"):
        OllamaHook(base_url=server.url, timeout=5).create("x", from_=DEFAULT_MODEL)


def test_copy_and_delete(fake, hook):
    hook.copy(DEFAULT_MODEL, "dagnostics-analyzer:serving")
    assert "dagnostics-analyzer:serving" in fake.models
    hook.delete("dagnostics-analyzer:serving")
    assert "dagnostics-analyzer:serving" not in fake.models
    with pytest.raises(LLMNotFound):
        hook.copy("ghost", "ghost2")
    with pytest.raises(LLMNotFound):
        hook.delete("ghost")


# Registration


def test_provider_info_declares_both_connection_types():
    info = get_provider_info()
    _create_provider_info_schema_validator().validate(info)
    # provider.yaml's schema is the one that spells out what conn-fields and ui-field-behaviour may hold.
    yaml_schema = json.loads((resources.files("airflow") / "provider.yaml.schema.json").read_text())
    jsonschema.validate(info["connection-types"], yaml_schema["properties"]["connection-types"])
    types = {c["connection-type"]: c for c in info["connection-types"]}
    assert types["ollama"]["hook-class-name"] == "dagnostics_provider.hooks.ollama.OllamaHook"
    assert set(types["ollama"]["conn-fields"]) == {"model", "timeout", "keep_alive"}
    assert types["openai_compatible"]["hook-class-name"].endswith("OpenAICompatibleHook")


def test_legacy_hook_form_methods_read_the_same_declaration():
    assert OllamaHook.get_ui_field_behaviour()["hidden_fields"] == ["schema", "login"]
    widgets = OllamaHook.get_connection_form_widgets()
    assert set(widgets) == {"model", "timeout", "keep_alive"}


def test_airflow_registers_the_hook():
    runtime = ProvidersManagerTaskRuntime()
    assert runtime.hooks["ollama"].hook_class_name == "dagnostics_provider.hooks.ollama.OllamaHook"
    assert runtime.hooks["openai_compatible"].connection_testable
    manager = ProvidersManager()
    assert manager.field_behaviours["ollama"]["relabeling"]["password"] == "API key"
    assert "extra__ollama__keep_alive" in manager.connection_form_widgets
