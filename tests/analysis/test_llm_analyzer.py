"""LLMAnalyzer end to end against the fake servers: structured output, fallbacks, junk and retries."""

from __future__ import annotations

import json

import pytest

from dagnostics_provider.analysis.llm import (
    MAX_RAW_RESPONSE_BYTES,
    LLMAnalyzer,
    bounded,
    build_llm_analyzer,
    parse_answer,
)
from dagnostics_provider.analysis.schema import AnalysisResult, json_schema
from dagnostics_provider.hooks.ollama import OllamaHook
from dagnostics_provider.hooks.openai_compatible import OpenAICompatibleHook
from dagnostics_provider.prompt_format import PROMPT_VERSION, chat_messages
from tests.fakes.fake_ollama import DEFAULT_MODEL, FakeOllama
from tests.fakes.fake_openai import FakeOpenAI

CONTEXT = (
    "[2024-05-01 02:00:13] INFO - Running query against warehouse\n"
    "[2024-05-01 02:00:14] ERROR - psycopg2.OperationalError: could not connect to server: Connection refused"
)
ANALYSIS = AnalysisResult(
    error_message="psycopg2.OperationalError: could not connect to server: Connection refused",
    category="dependency_failure",
    severity="high",
    confidence=0.9,
    reasoning="The warehouse database refused the connection.",
    error_lines=["[2024-05-01 02:00:14] ERROR - psycopg2.OperationalError: could not connect to server"],
    suggested_actions=["Check that the warehouse database is up", "Retry the task"],
)
HEURISTIC = AnalysisResult(
    error_message="psycopg2.OperationalError: could not connect to server",
    category="unknown",
    severity="medium",
    confidence=0.3,
)


class Clock:
    """Advances 250 ms per reading, so latency is deterministic."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        self.now += 0.25
        return self.now


@pytest.fixture
def fake():
    with FakeOllama() as server:
        server.answers[DEFAULT_MODEL] = lambda request: ANALYSIS.to_json()
        yield server


@pytest.fixture
def sleeps():
    return []


# A limit no scripted answer reaches: junk of any size arrives whole, as from a server that ignores num_predict.
UNBOUNDED = 10_000_000


def analyzer(fake, sleeps, *, timeout: float = 5, max_retries: int = 2, max_tokens: int | None = None) -> LLMAnalyzer:
    hook = OllamaHook(base_url=fake.url, timeout=timeout)
    return LLMAnalyzer(
        "ollama",
        hook,
        temperature=0.1,
        max_tokens=max_tokens,
        max_retries=max_retries,
        sleep=sleeps.append,
        clock=Clock(),
    )


def assert_fallback(outcome, reason_part: str) -> None:
    assert outcome.analyzer == "heuristic"
    assert outcome.result == HEURISTIC
    assert reason_part in outcome.fallback_reason
    assert outcome.model is None and outcome.fallback_reason.startswith(f"model {DEFAULT_MODEL}: ")
    assert outcome.prompt_version == PROMPT_VERSION
    # Never an invalid result, whatever came back.
    AnalysisResult.model_validate(outcome.result.model_dump())
    assert outcome.raw_response is None or len(outcome.raw_response.encode()) <= MAX_RAW_RESPONSE_BYTES + 100


def test_structured_output_gives_a_valid_ollama_analysis(fake, sleeps):
    outcome = analyzer(fake, sleeps).analyze(CONTEXT, HEURISTIC)
    assert outcome.analyzer == "ollama"
    assert outcome.result == ANALYSIS
    assert outcome.model == DEFAULT_MODEL
    assert outcome.prompt_version == PROMPT_VERSION
    assert outcome.raw_response == ANALYSIS.to_json()
    assert outcome.latency_ms == 250
    assert outcome.fallback_reason is None
    sent = fake.json_requests("/api/chat")
    assert len(sent) == 1
    assert sent[0]["messages"] == chat_messages(CONTEXT)
    assert sent[0]["format"] == json_schema()
    assert sent[0]["options"] == {"temperature": 0.1, "num_predict": 1024}  # [dagnostics] llm_max_tokens
    assert sent[0]["stream"] is False


def test_temperature_and_retries_come_from_config(fake, monkeypatch):
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__LLM_TEMPERATURE", "0.0")
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__LLM_MAX_RETRIES", "0")
    configured = LLMAnalyzer("ollama", OllamaHook(base_url=fake.url))
    assert (configured.temperature, configured.max_retries) == (0.0, 0)


def test_an_answer_cut_at_llm_max_tokens_falls_back_naming_the_option(fake, sleeps, monkeypatch):
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__LLM_MAX_TOKENS", "16")
    outcome = analyzer(fake, sleeps, max_retries=1).analyze(CONTEXT, HEURISTIC)
    assert_fallback(outcome, "invalid answer, cut off at the token limit ([dagnostics] llm_max_tokens = 16)")
    assert [request["options"]["num_predict"] for request in fake.json_requests("/api/chat")] == [16, 16]
    assert outcome.raw_response == ANALYSIS.to_json()[:64]  # what the server sent is kept for the reviewer


def test_llm_max_tokens_below_one_is_a_configuration_error(fake, monkeypatch):
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__LLM_MAX_TOKENS", "0")
    with pytest.raises(ValueError, match="llm_max_tokens must be at least 1, got 0"):
        LLMAnalyzer("ollama", OllamaHook(base_url=fake.url))


def test_ollama_down_falls_back_at_once(fake, sleeps):
    fake.stop()
    outcome = analyzer(fake, sleeps).analyze(CONTEXT, HEURISTIC)
    assert_fallback(outcome, f"ollama unavailable: cannot connect to {fake.url}/api/chat: Connection refused")
    assert sleeps == []  # no retries against a server that is not there
    assert outcome.raw_response is None


def test_slow_model_times_out_and_falls_back(fake, sleeps):
    fake.delays[DEFAULT_MODEL] = 5.0
    outcome = analyzer(fake, sleeps, timeout=0.2, max_retries=1).analyze(CONTEXT, HEURISTIC)
    assert_fallback(outcome, "timed out after 0.2s")
    assert "(after 2 attempts)" in outcome.fallback_reason
    assert sleeps == [1.0]
    assert len(fake.requests_to("/api/chat")) == 2


def _valid() -> dict:
    return json.loads(ANALYSIS.to_json())


JUNK = {
    "prose": ("The task failed because the database was down.", "not JSON"),
    "empty": ("", "not JSON"),
    "truncated JSON": (ANALYSIS.to_json()[:40], "not JSON"),
    "fenced with prose": (f"Here you go:\n```json\n{ANALYSIS.to_json()}\n```", "not JSON"),
    "wrong category": (json.dumps(_valid() | {"category": "network"}), "category"),
    "wrong severity": (json.dumps(_valid() | {"severity": "URGENT"}), "severity"),
    "confidence out of range": (json.dumps(_valid() | {"confidence": 7}), "confidence"),
    "confidence as text": (json.dumps(_valid() | {"confidence": "high"}), "confidence"),
    "missing field": (json.dumps({k: v for k, v in _valid().items() if k != "error_message"}), "error_message"),
    "extra field": (json.dumps(_valid() | {"root_cause": "db"}), "root_cause"),
    "JSON array": (json.dumps([_valid()]), "expected a JSON object, got list"),
    "JSON string": (json.dumps(ANALYSIS.to_json()), "expected a JSON object, got str"),
    "null": ("null", "expected a JSON object"),
    "nested garbage": ("[" * 100_000 + "]" * 100_000, "invalid answer"),
    "deep object": ('{"a":' * 50_000 + "1" + "}" * 50_000, "invalid answer"),
    "too many lines": (json.dumps(_valid() | {"error_lines": ["x"] * 500}), "error_lines"),
    "huge field": (json.dumps(_valid() | {"reasoning": "y" * 100_000}), "reasoning"),
    "lists of objects": (json.dumps(_valid() | {"suggested_actions": [{"do": "x"}]}), "suggested_actions"),
}


@pytest.mark.parametrize("answer, reason", JUNK.values(), ids=JUNK.keys())
def test_junk_answers_fall_back_with_the_reason(fake, sleeps, answer, reason):
    fake.answers[DEFAULT_MODEL] = lambda request: answer
    outcome = analyzer(fake, sleeps, max_tokens=UNBOUNDED).analyze(CONTEXT, HEURISTIC)
    assert_fallback(outcome, reason)
    assert outcome.fallback_reason.startswith(f"model {DEFAULT_MODEL}: invalid answer: ")
    assert "(after 3 attempts)" in outcome.fallback_reason
    assert outcome.raw_response == bounded(answer)
    assert sleeps == [1.0, 2.0]


def test_a_megabyte_of_text_is_stored_cut(fake, sleeps):
    fake.answers[DEFAULT_MODEL] = lambda request: "é" * 600_000
    outcome = analyzer(fake, sleeps, max_retries=0, max_tokens=UNBOUNDED).analyze(CONTEXT, HEURISTIC)
    assert_fallback(outcome, "not JSON")
    assert outcome.raw_response.startswith("é" * 1000)
    assert outcome.raw_response.endswith(f"[... {1_200_000 - MAX_RAW_RESPONSE_BYTES} more bytes cut]")


def test_ten_megabytes_are_refused_unread(fake, sleeps):
    fake.answers[DEFAULT_MODEL] = lambda request: "x" * 10_000_000
    outcome = analyzer(fake, sleeps, max_retries=0, max_tokens=UNBOUNDED).analyze(CONTEXT, HEURISTIC)
    assert_fallback(outcome, "more than 4 MiB; refusing to read further")
    assert outcome.raw_response is None


@pytest.mark.parametrize(
    "answer",
    [f"```json\n{ANALYSIS.to_json()}\n```", f"```\n{ANALYSIS.to_json()}```", f"  ```JSON\n{ANALYSIS.to_json()}\n```\n"],
    ids=["json fence", "bare fence", "upper-case tag, whitespace"],
)
def test_one_fenced_json_block_is_accepted(fake, sleeps, answer):
    fake.answers[DEFAULT_MODEL] = lambda request: answer
    outcome = analyzer(fake, sleeps).analyze(CONTEXT, HEURISTIC)
    assert (outcome.analyzer, outcome.result) == ("ollama", ANALYSIS)
    assert outcome.raw_response == answer  # stored as the model said it


def test_retry_then_success(fake, sleeps):
    answers = iter(["not json at all", json.dumps(_valid() | {"category": "bogus"}), ANALYSIS.to_json()])
    fake.answers[DEFAULT_MODEL] = lambda request: next(answers)
    outcome = analyzer(fake, sleeps).analyze(CONTEXT, HEURISTIC)
    assert (outcome.analyzer, outcome.result) == ("ollama", ANALYSIS)
    assert sleeps == [1.0, 2.0]
    assert len(fake.requests_to("/api/chat")) == 3


def test_a_server_error_is_retried(fake, sleeps):
    fake.fail("/api/chat", status=500, error="llama runner process has terminated", times=1)
    outcome = analyzer(fake, sleeps).analyze(CONTEXT, HEURISTIC)
    assert outcome.analyzer == "ollama"
    assert sleeps == [1.0]


def test_a_missing_model_is_not_retried(fake, sleeps):
    hook = OllamaHook(base_url=fake.url, model="dagnostics-analyzer:v9", timeout=5)
    outcome = LLMAnalyzer("ollama", hook, max_retries=2, sleep=sleeps.append).analyze(CONTEXT, HEURISTIC)
    assert outcome.analyzer == "heuristic"
    assert 'model "dagnostics-analyzer:v9" not found, try pulling it first' in outcome.fallback_reason
    # A heuristic answer is credited to no model; the reason says which model failed.
    assert outcome.model is None
    assert outcome.fallback_reason.startswith("model dagnostics-analyzer:v9: ")
    assert sleeps == []


def test_the_last_raw_answer_is_kept_when_later_attempts_fail_otherwise(fake, sleeps):
    def junk_then_overload(request):
        fake.fail("/api/chat", status=503, error="busy", times=None)
        return '{"category": "nope"}'

    fake.answers[DEFAULT_MODEL] = junk_then_overload
    outcome = analyzer(fake, sleeps, max_retries=1).analyze(CONTEXT, HEURISTIC)
    assert_fallback(outcome, "ollama refused the request")
    assert "HTTP 503: busy (after 2 attempts)" in outcome.fallback_reason
    assert outcome.raw_response == '{"category": "nope"}'


def test_bugs_and_bad_configuration_never_escape(sleeps):
    class BrokenHook:
        model = "whatever:1b"

        def chat(self, *args, **kwargs):
            raise RuntimeError("kaboom")

    outcome = LLMAnalyzer("ollama", BrokenHook(), max_retries=2, sleep=sleeps.append).analyze(CONTEXT, HEURISTIC)
    assert (outcome.analyzer, outcome.result) == ("heuristic", HEURISTIC)
    assert outcome.fallback_reason == "model whatever:1b: unexpected error: RuntimeError: kaboom"

    class Misconfigured:
        @property
        def model(self):
            raise ValueError("[dagnostics] llm_timeout must be positive")

        def chat(self, *args, **kwargs):
            return self.model

    outcome = LLMAnalyzer("ollama", Misconfigured(), max_retries=0).analyze(CONTEXT, HEURISTIC)
    assert outcome.analyzer == "heuristic"
    assert "llm_timeout must be positive" in outcome.fallback_reason
    assert outcome.model is None


def test_openai_compatible_provider(sleeps):
    with FakeOpenAI(models=["qwen2.5-0.5b-instruct"]) as server:
        server.answers["qwen2.5-0.5b-instruct"] = lambda request: ANALYSIS.to_json()
        hook = OpenAICompatibleHook(base_url=server.url, model="qwen2.5-0.5b-instruct", timeout=5)
        outcome = LLMAnalyzer("openai", hook, temperature=0.2, sleep=sleeps.append).analyze(CONTEXT, HEURISTIC)
        sent = server.json_requests()[0]
    assert (outcome.analyzer, outcome.result, outcome.model) == ("openai", ANALYSIS, "qwen2.5-0.5b-instruct")
    assert sent["response_format"]["json_schema"] == {"name": "analysis", "schema": json_schema(), "strict": True}
    assert sent["temperature"] == 0.2
    assert sent["max_tokens"] == 1024
    assert sent["messages"] == chat_messages(CONTEXT)


def test_openai_compatible_answer_cut_at_max_tokens_falls_back(sleeps):
    with FakeOpenAI(models=["qwen2.5-0.5b-instruct"]) as server:
        server.answers["qwen2.5-0.5b-instruct"] = lambda request: ANALYSIS.to_json()
        hook = OpenAICompatibleHook(base_url=server.url, model="qwen2.5-0.5b-instruct", timeout=5)
        outcome = LLMAnalyzer("openai", hook, max_tokens=10, max_retries=0).analyze(CONTEXT, HEURISTIC)
        assert server.json_requests()[0]["max_tokens"] == 10
    assert outcome.analyzer == "heuristic"
    assert "cut off at the token limit ([dagnostics] llm_max_tokens = 10)" in outcome.fallback_reason


def test_openai_compatible_provider_down(sleeps):
    with FakeOpenAI() as server:
        url = server.url
    hook = OpenAICompatibleHook(base_url=url, model="gpt-test", timeout=5)
    outcome = LLMAnalyzer("openai", hook, sleep=sleeps.append).analyze(CONTEXT, HEURISTIC)
    assert outcome.analyzer == "heuristic"
    assert outcome.fallback_reason.startswith(
        f"model gpt-test: openai unavailable: cannot connect to {url}/v1/chat/completions"
    )


def test_build_llm_analyzer_follows_config(monkeypatch):
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__LLM_PROVIDER", "heuristic")
    assert build_llm_analyzer() is None

    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__LLM_PROVIDER", "Ollama ")
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__LLM_CONN_ID", "ollama_gpu")
    built = build_llm_analyzer()
    assert built.provider == "ollama"
    assert isinstance(built.hook, OllamaHook) and built.hook.ollama_conn_id == "ollama_gpu"

    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__LLM_CONN_ID", "")
    built = build_llm_analyzer("openai")
    assert isinstance(built.hook, OpenAICompatibleHook)
    assert built.hook.openai_compatible_conn_id == "openai_compatible_default"

    with pytest.raises(ValueError, match="llm_provider must be one of ollama, openai, llamacpp, heuristic"):
        build_llm_analyzer("gpt")


def test_parse_answer_and_bounded():
    assert parse_answer(f"```json\n{ANALYSIS.to_json()}\n```") == ANALYSIS
    assert bounded(None) is None
    assert bounded("short") == "short"
    cut = bounded("a" * (MAX_RAW_RESPONSE_BYTES + 10))
    assert cut == "a" * MAX_RAW_RESPONSE_BYTES + "\n[... 10 more bytes cut]"
