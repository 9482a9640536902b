"""OpenAICompatibleHook and the ``openai`` analyzer against llama-cpp-python's real server on a tiny GGUF model.

The fake server checks what OpenAI documents; this one is what a site runs (``python -m llama_cpp.server``), with
its own idea of structured output: it refuses ``json_schema`` (with HTTP 500) and takes the schema inside
``{"type": "json_object", "schema": ...}``. A random tiny model cannot write a valid analysis, so the analyzer
test accepts an analysis or a fallback with the reason, and checks the answer was held to the schema.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from dagnostics_provider.analysis.llm import LLMAnalyzer
from dagnostics_provider.analysis.schema import AnalysisResult, json_schema
from dagnostics_provider.hooks.openai_compatible import OpenAICompatibleHook
from dagnostics_provider.prompt_format import chat_messages
from tests.airflow_env import free_port
from tests.training import tiny_gguf

ALIAS = "tiny-analyzer"
# The tiny byte-level vocabulary spends a token per character: the instruction alone is about 1,300 tokens. Without
# max_tokens the server generates until its context is full and then answers HTTP 500 ("could not broadcast input
# array"), which a random model's answer can reach; a small context keeps such runs short.
N_CTX = 2048
CONTEXT = "7| ERROR - disk full"
HEURISTIC = AnalysisResult(error_message="disk full", category="resource_error", severity="high", confidence=0.4)
STARTUP_S = 90


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``python -m llama_cpp.server`` on a tiny GGUF; yields its base URL (``.../v1``)."""
    import llama_cpp.server.app  # noqa: F401  (fastapi, uvicorn, sse-starlette, starlette-context, pydantic-settings)

    directory = tmp_path_factory.mktemp("llama-cpp-server")
    model = tiny_gguf.build(directory).path
    port = free_port()
    log_path = directory / "server.log"
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", ALIAS]
    command += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(N_CTX), "--verbose", "false"]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        _wait_until_up(process, base, log_path)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_up(process: subprocess.Popen, base: str, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"llama_cpp.server exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            if requests.get(f"{base}/models", timeout=1).ok:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    pytest.fail(f"llama_cpp.server did not answer within {STARTUP_S}s:\n{log_path.read_text()[-3000:]}")


@pytest.fixture
def hook(server):
    return OpenAICompatibleHook(base_url=server, model=ALIAS, timeout=120)


def test_the_connection_test_finds_the_served_model(server, hook):
    assert hook.test_connection() == (True, f"{server} (from arguments) answers and lists model {ALIAS!r}")


def test_the_server_gets_the_schema_in_json_mode_messages_and_temperature(hook):
    completion = hook.chat(
        chat_messages(CONTEXT), json_schema=json_schema(), schema_name="analysis", temperature=0.1, max_tokens=200
    )
    # It refused the strict json_schema format (HTTP 500 naming response_format) and took the schema in JSON mode,
    assert hook.response_format == "json_object+schema"
    # which its grammar enforced: the analysis object, its fields in schema order.
    assert completion.content.replace(" ", "").startswith('{"error_message":"')
    assert completion.finish_reason in ("stop", "length")
    assert completion.raw["usage"]["prompt_tokens"] > 1000  # the whole instruction and context arrived
    assert completion.raw["usage"]["completion_tokens"] <= 200
    # The hook remembers: the next request goes straight to the accepted format.
    again = hook.chat(chat_messages(CONTEXT), json_schema=json_schema(), max_tokens=20)
    assert again.content.replace(" ", "").startswith("{") and again.finish_reason == "length"


def test_the_openai_analyzer_returns_an_analysis_or_a_fallback_with_the_reason(hook):
    outcome = LLMAnalyzer("openai", hook, temperature=0.1, max_retries=0).analyze(CONTEXT, HEURISTIC)
    if outcome.analyzer == "openai":
        assert outcome.model == ALIAS and outcome.fallback_reason is None
        AnalysisResult.model_validate(outcome.result.model_dump())
    elif outcome.fallback_reason.startswith(f"model {ALIAS}: invalid answer"):
        assert (outcome.analyzer, outcome.result, outcome.model) == ("heuristic", HEURISTIC, None)
        assert outcome.raw_response.replace(" ", "").startswith('{"error_message":"')
    else:  # the answer ran to the end of the server's context (no max_tokens is sent): its HTTP 500
        assert outcome.fallback_reason.startswith(f"model {ALIAS}: openai refused the request: ")
        assert "HTTP 500" in outcome.fallback_reason
