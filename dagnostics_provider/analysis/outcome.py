"""How an analysis was made: the result plus what the store records next to it."""

from __future__ import annotations

from dataclasses import dataclass

from dagnostics_provider.analysis.schema import AnalysisResult


@dataclass(frozen=True)
class AnalysisOutcome:
    """An analysis and its provenance.

    ``analyzer`` is ``heuristic``, ``ollama``, ``openai`` or ``llamacpp``.  When an LLM was asked but its answer
    could not be used, ``analyzer`` is ``heuristic`` and ``fallback_reason`` says why (LLM down, timed out, invalid
    answer), so the review UI and the dataset builder can tell the two apart.
    """

    result: AnalysisResult
    analyzer: str
    prompt_version: str
    model: str | None = None
    raw_response: str | None = None
    latency_ms: int | None = None
    fallback_reason: str | None = None
