"""The LLM analyzer: asks a model for a structured diagnosis and never lets a bad answer through.

The model gets the one prompt of :mod:`dagnostics_provider.prompt_format` with the analysis JSON schema as its
output constraint, and its answer is validated by :func:`~dagnostics_provider.analysis.schema.parse_analysis`.
Whatever goes wrong (server down, too slow, junk, a bug) the caller gets the heuristic result it passed in, marked
``analyzer="heuristic"`` with the reason, so failure analysis keeps working without a model and the review UI and
dataset builder can tell a model's diagnosis from a fallback.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from functools import cached_property
from typing import Any

from dagnostics_provider import config
from dagnostics_provider.analysis.context_lines import strip_gutter
from dagnostics_provider.analysis.outcome import AnalysisOutcome
from dagnostics_provider.analysis.schema import AnalysisResult, InvalidAnalysis, json_schema, parse_analysis
from dagnostics_provider.hooks.llm_errors import LLMError, LLMHTTPError, LLMRequestInvalid, LLMUnavailable
from dagnostics_provider.prompt_format import PROMPT_VERSION, chat_messages

log = logging.getLogger(__name__)

PROVIDERS = ("ollama", "openai", "llamacpp", "heuristic")
# The providers that ask a model; "llamacpp" runs it in this process (hooks/llamacpp.py), the others ask a server.
LLM_PROVIDERS = ("ollama", "openai", "llamacpp")
# Enough of a junk answer to see what went wrong in review, without storing megabytes of it.
MAX_RAW_RESPONSE_BYTES = 64 * 1024
MAX_REASON_CHARS = 1_000
BACKOFF_BASE_S = 1.0
BACKOFF_MAX_S = 30.0
# A whole answer that is exactly one Markdown code block.  Models (fine-tuned ones especially, and servers that
# ignore the requested format) sometimes wrap their JSON so; the fences carry no meaning, the content is still
# validated in full, and prose around a block is not searched for JSON because it could be an example.
_FENCED = re.compile(r"\A\s*```[A-Za-z]*[ \t]*\n(?P<body>.*?)\n?```\s*\Z", re.DOTALL)


class LLMAnalyzer:
    """Analyses with a model behind an Ollama, OpenAI-compatible or in-process llama.cpp hook, else a given result.

    ``sleep`` and ``clock`` are injectable so tests of retries and latency do not wait.  ``model_resolver(hook)``
    may name the model to ask instead of the hook's own (the alias a deployment promoted on that server); it runs
    once, on first use, so building an analyzer touches neither connections nor the store.
    """

    def __init__(
        self,
        provider: str,
        hook: Any,
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        max_retries: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        model_resolver: Callable[[Any], str | None] | None = None,
    ) -> None:
        if provider not in LLM_PROVIDERS:
            raise ValueError(f"LLMAnalyzer provider must be one of {', '.join(LLM_PROVIDERS)}, got {provider!r}")
        self.provider = provider
        self.hook = hook
        self.temperature = config.get_float("llm_temperature") if temperature is None else temperature
        # in-process llama.cpp bounds its answers itself, together with its context size (llamacpp_max_tokens)
        self.max_tokens = config.get_int("llm_max_tokens") if max_tokens is None else max_tokens
        if self.max_tokens < 1:
            raise ValueError(f"[dagnostics] llm_max_tokens must be at least 1, got {self.max_tokens}")
        self.max_retries = max(0, config.get_int("llm_max_retries") if max_retries is None else max_retries)
        self._sleep = sleep
        self._model_resolver = model_resolver
        self._clock = clock

    def analyze(self, context: str, fallback: AnalysisResult) -> AnalysisOutcome:
        """The model's analysis of the log ``context``, or ``fallback`` with the reason the model's was unusable.

        Never raises: it runs while Airflow handles a task failure, where an exception would lose the analysis.
        """
        try:
            return self._analyze(context, fallback)
        except Exception as exc:  # a bug or a broken configuration must not break failure handling
            log.exception("LLM analysis failed unexpectedly; storing the heuristic result")
            return self._fallback(fallback, f"unexpected error: {type(exc).__name__}: {exc}", raw=None)

    def _analyze(self, context: str, fallback: AnalysisResult) -> AnalysisOutcome:
        messages = chat_messages(context)
        schema = json_schema()
        attempts = 1 + self.max_retries
        reason, raw = "", None
        for attempt in range(attempts):
            if attempt and self.provider != "llamacpp":  # in-process generation has no server to give time to
                self._sleep(min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** (attempt - 1)))
            started = self._clock()
            try:
                response = self._ask(messages, schema)
            except LLMUnavailable as exc:
                return self._fallback(fallback, f"{self.provider} unavailable: {exc}", raw)
            except LLMRequestInvalid as exc:  # asking again would be refused the same way
                return self._fallback(fallback, f"{self.provider} cannot run the request: {exc}", raw)
            except LLMHTTPError as exc:
                reason = f"{self.provider} refused the request: {exc}"
                if not exc.retryable:
                    return self._fallback(fallback, reason, raw)
                continue
            except LLMError as exc:  # timeout, invalid or oversized response
                reason = str(exc)
                continue
            raw = response.content
            try:
                result = parse_answer(raw)
            except InvalidAnalysis as exc:
                reason = f"invalid answer: {exc}"
                if getattr(response, "finish_reason", None) == "length":
                    reason = f"invalid answer, cut off at the token limit ({self._token_limit()}): {exc}"
                log.info("Attempt %d/%d: %s answered an invalid analysis: %s", attempt + 1, attempts, self.model, exc)
                continue
            return AnalysisOutcome(
                result=result,
                analyzer=self.provider,
                prompt_version=PROMPT_VERSION,
                model=response.model or self.model,
                raw_response=bounded(raw),
                latency_ms=round((self._clock() - started) * 1000),
            )
        if attempts > 1:
            reason = f"{reason} (after {attempts} attempts)"
        return self._fallback(fallback, reason, raw)

    @cached_property
    def model(self) -> str:
        resolved = self._model_resolver(self.hook) if self._model_resolver else None
        return resolved or self.hook.model

    def _ask(self, messages: list[dict[str, str]], schema: dict[str, Any]) -> Any:
        if self.provider == "ollama":
            options = ollama_options(self.temperature, self.max_tokens)
            return self.hook.chat(messages, model=self.model, format=schema, options=options)
        if self.provider == "llamacpp":
            return self.hook.chat(messages, json_schema=schema, temperature=self.temperature)
        return self.hook.chat(
            messages,
            json_schema=schema,
            schema_name="analysis",
            temperature=self.temperature,
            max_tokens=self.max_tokens,
        )

    def _token_limit(self) -> str:
        """The setting that bounds this analyzer's answers, with its value: what to raise when they are cut off."""
        if self.provider == "llamacpp":
            return self.hook.truncation_hint
        return f"[dagnostics] llm_max_tokens = {self.max_tokens}"

    def _fallback(self, fallback: AnalysisResult, reason: str, raw: str | None) -> AnalysisOutcome:
        """The heuristic analysis, credited to no model: the reason names the model that failed and why.

        Recording the model on a fallback made the review UI, the statistics and the export credit heuristic answers
        to that model ("heuristic llama3.2:3b"), which skewed its agreement numbers.
        """
        try:
            model = self.model
        except Exception:  # the model name is what failed to resolve; the outcome is still worth storing
            model = None
        reason = f"model {model}: {reason}" if model else reason
        reason = reason if len(reason) <= MAX_REASON_CHARS else reason[:MAX_REASON_CHARS] + "..."
        log.warning("Storing the heuristic analysis: %s", reason)
        return AnalysisOutcome(
            result=fallback,
            analyzer="heuristic",
            prompt_version=PROMPT_VERSION,
            model=None,
            raw_response=bounded(raw),
            fallback_reason=reason,
        )


def ollama_options(temperature: float, max_tokens: int) -> dict[str, Any]:
    """The ``options`` of an analysis request to Ollama; the deployment's smoke test asks with the same ones."""
    return {"temperature": temperature, "num_predict": max_tokens}


def build_llm_analyzer(provider: str | None = None) -> LLMAnalyzer | None:
    """The analyzer ``[dagnostics] llm_provider`` (or ``provider``) asks for; ``None`` for ``heuristic``.

    Builds the hook without touching the connection store: the connection is resolved on the first request.
    ``llamacpp`` without llama-cpp-python installed raises ImportError naming the extra: that is a setup error to
    fix, not a reason to store heuristic analyses for every failure until someone notices.
    """
    chosen = (provider or config.get("llm_provider")).strip().lower()
    if chosen not in PROVIDERS:
        raise ValueError(f"[dagnostics] llm_provider must be one of {', '.join(PROVIDERS)}, got {chosen!r}")
    if chosen == "heuristic":
        return None
    if chosen == "llamacpp":
        from dagnostics_provider.hooks.llamacpp import LlamaCppHook, require_llama_cpp

        require_llama_cpp()
        return LLMAnalyzer("llamacpp", LlamaCppHook())
    conn_id = config.get("llm_conn_id").strip()
    if chosen == "ollama":
        from dagnostics_provider.deploy.serving import deployed_model
        from dagnostics_provider.hooks.ollama import OllamaHook

        hook = OllamaHook(conn_id or OllamaHook.default_conn_name)
        return LLMAnalyzer("ollama", hook, model_resolver=deployed_model)
    from dagnostics_provider.hooks.openai_compatible import OpenAICompatibleHook

    return LLMAnalyzer("openai", OpenAICompatibleHook(conn_id or OpenAICompatibleHook.default_conn_name))


def parse_answer(answer: str) -> AnalysisResult:
    """Validate a model's answer; one Markdown code block around the JSON is accepted (see :data:`_FENCED`).

    Error lines are log text: a model that copied a context line with its line-number gutter (``12| text``, see
    :mod:`~dagnostics_provider.analysis.context_lines`) gets the gutter taken off, only in that exact format, so
    stored error lines match the log and the review page's lines.
    """
    fenced = _FENCED.match(answer)
    result = parse_analysis(fenced.group("body") if fenced else answer)
    lines = [strip_gutter(line) for line in result.error_lines]
    if lines == result.error_lines:
        return result
    return parse_analysis({**result.model_dump(), "error_lines": lines})


def bounded(raw: str | None) -> str | None:
    """``raw`` cut to :data:`MAX_RAW_RESPONSE_BYTES` of UTF-8, saying how much was cut."""
    if raw is None:
        return None
    data = raw.encode("utf-8", "surrogatepass")
    if len(data) <= MAX_RAW_RESPONSE_BYTES:
        return raw
    kept = data[:MAX_RAW_RESPONSE_BYTES].decode("utf-8", "ignore")
    return f"{kept}\n[... {len(data) - MAX_RAW_RESPONSE_BYTES} more bytes cut]"
