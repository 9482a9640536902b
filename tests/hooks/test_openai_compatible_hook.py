"""OpenAICompatibleHook against a fake OpenAI-compatible server."""

from __future__ import annotations

import json

import pytest

from dagnostics_provider.hooks.llm_errors import LLMHTTPError, LLMInvalidResponse, LLMTimeout, LLMUnavailable
from dagnostics_provider.hooks.openai_compatible import OpenAICompatibleHook
from tests.fakes.fake_openai import DEFAULT_MODEL, FakeOpenAI
from tests.fakes.http_fake import Reply

API_KEY = "sk-test-not-a-real-key-1234"
MESSAGES = [{"role": "system", "content": "Answer in JSON."}, {"role": "user", "content": "why?"}]
SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}


@pytest.fixture
def fake():
    with FakeOpenAI(api_key=API_KEY) as server:
        server.answers[DEFAULT_MODEL] = lambda request: '{"ok": true}'
        yield server


@pytest.fixture
def hook(fake, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_OPENAI_COMPATIBLE_DEFAULT",
        json.dumps(
            {
                "conn_type": "openai_compatible",
                "host": f"{fake.url}/v1",
                "password": API_KEY,
                "extra": {"model": DEFAULT_MODEL, "timeout": 5},
            }
        ),
    )
    return OpenAICompatibleHook()


def test_settings_from_the_connection(fake, hook):
    assert (hook.base_url, hook.model, hook.timeout) == (f"{fake.url}/v1", DEFAULT_MODEL, 5.0)
    assert API_KEY not in repr(hook.settings)


def test_a_host_without_a_path_gets_v1(fake):
    assert OpenAICompatibleHook(base_url=fake.url).base_url == f"{fake.url}/v1"
    assert OpenAICompatibleHook(base_url="https://gateway.example.com/openai/v1/").base_url == (
        "https://gateway.example.com/openai/v1"
    )


def test_without_a_connection_ollamas_own_openai_endpoint_is_used(monkeypatch):
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__LLM_BASE_URL", "http://ollama.internal:11434")
    assert OpenAICompatibleHook("no_such_conn").base_url == "http://ollama.internal:11434/v1"
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__OPENAI_API_BASE", "http://vllm.internal:8000/v1")
    assert OpenAICompatibleHook("no_such_conn").base_url == "http://vllm.internal:8000/v1"


def test_chat_asks_for_strict_json_schema_with_the_key(fake, hook):
    completion = hook.chat(MESSAGES, json_schema=SCHEMA, schema_name="analysis", temperature=0.1)
    assert completion.content == '{"ok": true}'
    assert completion.model == DEFAULT_MODEL
    assert completion.finish_reason == "stop"
    request = fake.requests_to("/v1/chat/completions")[0]
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.json == {
        "model": DEFAULT_MODEL,
        "messages": MESSAGES,
        "stream": False,
        "temperature": 0.1,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "analysis", "schema": SCHEMA, "strict": True},
        },
    }


def test_a_server_without_json_schema_gets_the_schema_in_json_mode_from_then_on(fake, hook):
    fake.supports_json_schema = False
    assert hook.chat(MESSAGES, json_schema=SCHEMA).content == '{"ok": true}'
    assert hook.chat(MESSAGES, json_schema=SCHEMA).content == '{"ok": true}'
    formats = [r["response_format"] for r in fake.json_requests()]
    assert [f["type"] for f in formats] == ["json_schema", "json_object", "json_object"]
    assert formats[1] == formats[2] == {"type": "json_object", "schema": SCHEMA}
    assert hook.response_format == "json_object+schema"


def test_a_server_without_either_schema_form_gets_plain_json_mode(fake, hook):
    fake.supports_json_schema = fake.supports_json_object_schema = False
    assert hook.chat(MESSAGES, json_schema=SCHEMA).content == '{"ok": true}'
    assert hook.chat(MESSAGES, json_schema=SCHEMA).content == '{"ok": true}'
    formats = [r["response_format"] for r in fake.json_requests()]
    assert formats[1:] == [{"type": "json_object", "schema": SCHEMA}, {"type": "json_object"}, {"type": "json_object"}]
    assert hook.response_format == "json_object"


def test_a_500_naming_the_response_format_is_a_refusal_of_it(fake, hook):
    """llama-cpp-python's server answers a json_schema request with HTTP 500 and its validation error."""
    fake.fail(status=500, error="1 validation error: {'loc': ('body', 'response_format', 'type')}")
    assert hook.chat(MESSAGES, json_schema=SCHEMA).content == '{"ok": true}'
    assert hook.response_format == "json_object+schema"


def test_other_server_errors_are_not_refusals_of_the_format(fake, hook):
    fake.fail(status=500, error="CUDA out of memory")
    with pytest.raises(LLMHTTPError) as caught:
        hook.chat(MESSAGES, json_schema=SCHEMA)
    assert caught.value.retryable
    assert hook.response_format == "json_schema"


def test_other_refusals_are_not_retried_in_json_mode(fake, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_BAD_KEY", json.dumps({"conn_type": "openai_compatible", "host": fake.url}))
    with pytest.raises(LLMHTTPError) as caught:
        OpenAICompatibleHook("bad_key").chat(MESSAGES, json_schema=SCHEMA)
    assert caught.value.status_code == 401
    assert caught.value.server_error == "Incorrect API key provided"
    assert not caught.value.retryable
    assert len(fake.json_requests()) == 1


def test_unknown_model(hook):
    with pytest.raises(LLMHTTPError) as caught:
        hook.chat(MESSAGES, model="gpt-nope")
    assert caught.value.status_code == 404
    assert "does not exist" in caught.value.server_error


def test_down_and_slow(fake, hook):
    fake.api_key = None
    fake.delays[DEFAULT_MODEL] = 3.0
    with pytest.raises(LLMTimeout):
        OpenAICompatibleHook(base_url=fake.url, model=DEFAULT_MODEL, timeout=0.3).chat(MESSAGES)
    fake.stop()
    with pytest.raises(LLMUnavailable, match="Connection refused"):
        hook.chat(MESSAGES)


def test_a_refusal_without_content_is_an_invalid_response():
    class Refusing(FakeOpenAI):
        def handle(self, request):
            message = {"role": "assistant", "content": None, "refusal": "I can't help with that."}
            return Reply(200, {"model": DEFAULT_MODEL, "choices": [{"index": 0, "message": message}]})

    with Refusing() as server, pytest.raises(LLMInvalidResponse, match="refused: I can't help"):
        OpenAICompatibleHook(base_url=server.url, model=DEFAULT_MODEL, timeout=5).chat(MESSAGES)


def test_test_connection(fake, hook):
    assert hook.test_connection() == (
        True,
        f"{fake.url}/v1 (from connection 'openai_compatible_default') answers and lists model {DEFAULT_MODEL!r}",
    )
    ok, message = OpenAICompatibleHook(base_url=fake.url, model="gpt-other").test_connection()
    assert not ok  # no key: 401
    assert "Incorrect API key" in message
    fake.stop()
    ok, message = hook.test_connection()
    assert not ok and "Connection refused" in message


def test_the_api_key_never_reaches_the_logs(fake, hook, capsys):
    fake.supports_json_schema = False
    hook.chat(MESSAGES, json_schema=SCHEMA)  # logs a warning about the fallback
    hook.test_connection()
    captured = capsys.readouterr()
    assert "json_schema" in captured.out + captured.err
    assert API_KEY not in captured.out + captured.err
