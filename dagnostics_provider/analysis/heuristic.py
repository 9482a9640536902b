"""The heuristic analyzer: an :class:`AnalysisResult` from the extraction alone, with no LLM.

It is the answer when no LLM is configured, the fallback when one is down or answers nonsense, and the baseline a
fine-tuned model has to beat.  Its confidence says how specific the evidence was, so reviewers can start with the
analyses it was unsure about.
"""

from __future__ import annotations

import re
import time

from dagnostics_provider import prompt_format
from dagnostics_provider.analysis.extraction import Candidate, Extraction
from dagnostics_provider.analysis.outcome import AnalysisOutcome
from dagnostics_provider.analysis.schema import (
    MAX_ACTIONS,
    MAX_ERROR_LINES,
    MAX_LINE_CHARS,
    MAX_MESSAGE_CHARS,
    MAX_REASONING_CHARS,
    AnalysisResult,
)

ANALYZER = "heuristic"
NO_ERROR_MESSAGE = "No error line found in the task log"
DEFAULT_SEVERITY = "high"  # the task did fail; rules say when a failure is less (or more) serious
MIN_CONFIDENCE = 0.05
MAX_CONFIDENCE = 0.95
UNKNOWN_CATEGORY_CAP = 0.5
AMBIGUITY_MARGIN = 5.0  # a different specific line scoring this close makes the pick less certain
AMBIGUITY_PENALTY = 0.1
GENERIC_ACTIONS = (
    "Read the task log around the root-cause line and the last traceback.",
    "Reproduce the failing step with the same inputs, then fix the code, data or configuration it points to.",
)
_EMPTY_BRACKETS = re.compile(r"\s*\(\s*\)|\s*\[\s*\]")


class HeuristicAnalyzer:
    """Analyzer interface shared with the LLM analyzers: ``analyze`` for the result, ``outcome`` with provenance."""

    name = ANALYZER

    def analyze(self, extraction: Extraction) -> AnalysisResult:
        return analyze_heuristically(extraction)

    def outcome(self, extraction: Extraction, *, fallback_reason: str | None = None) -> AnalysisOutcome:
        return heuristic_outcome(extraction, fallback_reason=fallback_reason)


def heuristic_outcome(extraction: Extraction, *, fallback_reason: str | None = None) -> AnalysisOutcome:
    """The heuristic analysis with its provenance; ``fallback_reason`` says why an LLM's answer was not used."""
    started = time.perf_counter()
    result = analyze_heuristically(extraction)
    return AnalysisOutcome(
        result=result,
        analyzer=ANALYZER,
        prompt_version=prompt_format.PROMPT_VERSION,
        model=None,
        latency_ms=round((time.perf_counter() - started) * 1000),
        fallback_reason=fallback_reason,
    )


def analyze_heuristically(extraction: Extraction) -> AnalysisResult:
    """Diagnose a failure from the extractor's best candidate and the rule it matched."""
    best = extraction.best
    if best is None:
        return AnalysisResult(
            error_message=NO_ERROR_MESSAGE,
            category="unknown",
            severity="medium",
            confidence=MIN_CONFIDENCE,
            reasoning=f"None of the log's {extraction.total_lines} lines looks like an error.",
            error_lines=[],
            suggested_actions=list(GENERIC_ACTIONS),
        )
    category = _category(best, extraction.candidates)
    rule = best.rule
    return AnalysisResult(
        error_message=best.line.text.strip()[:MAX_MESSAGE_CHARS] or NO_ERROR_MESSAGE,
        category=category,
        severity=rule.severity if rule is not None else DEFAULT_SEVERITY,
        confidence=_confidence(best, extraction.candidates, category),
        reasoning=_reasoning(best)[:MAX_REASONING_CHARS],
        error_lines=[line[:MAX_LINE_CHARS] for line in extraction.error_lines][:MAX_ERROR_LINES],
        suggested_actions=[a[:MAX_LINE_CHARS] for a in (rule.actions if rule and rule.actions else GENERIC_ACTIONS)][
            :MAX_ACTIONS
        ],
    )


def _category(best: Candidate, candidates: list[Candidate]) -> str:
    """The root cause's rule category; for a line no rule classifies, the best classified supporting line's.

    A specific rule that says ``unknown`` (a ``TypeError`` in the task's own code) has an opinion: a wrapper around
    it (``Pod returned a failure``) must not turn a code bug into a dependency failure.
    """
    if best.rule is not None and (best.rule.category != "unknown" or not best.rule.wrapper):
        return best.rule.category
    for candidate in candidates[1:]:
        if candidate.rule is not None and candidate.rule.category != "unknown" and not candidate.side_effect:
            return candidate.rule.category
    return "unknown"


def _confidence(best: Candidate, candidates: list[Candidate], category: str) -> float:
    """How specific the evidence is: the rule weight, less when a different specific line ranks nearly as high."""
    confidence = best.weight / 100 - 0.05
    rival = next((c for c in candidates[1:] if not c.wrapper and not c.side_effect), None)
    if (
        rival is not None
        and not best.wrapper
        and best.score - rival.score < AMBIGUITY_MARGIN
        and (rival.rule is None or best.rule is None or rival.rule.category != best.rule.category)
    ):
        confidence -= AMBIGUITY_PENALTY
    if category == "unknown":
        confidence = min(confidence, UNKNOWN_CATEGORY_CAP)
    return round(min(MAX_CONFIDENCE, max(MIN_CONFIDENCE, confidence)), 2)


def _reasoning(best: Candidate) -> str:
    """Why the line was picked, citing it as "log line N": its number in the whole task log, the number its row
    carries in the log context's gutter (:mod:`~dagnostics_provider.analysis.context_lines`), on the review page
    and in training text."""
    rule = best.rule
    where = f"log line {best.line.number}" + (f", seen {best.count} times" if best.count > 1 else "")
    if rule is None:
        if best.exception_type:
            return f"The task failed with {best.exception_type} ({where}); no rule explains it further."
        return f"This is the most specific error line in the log ({where}); no rule explains it further."
    explanation = _fill(rule.reasoning, best) if rule.reasoning else f"The line matches rule {rule.id}."
    if rule.wrapper:
        explanation += " No more specific error line was found in the log."
    return f"{explanation} (Rule {rule.id}, {where}.)"


def _fill(template: str, best: Candidate) -> str:
    """Fill ``{name}`` fields of a rule's reasoning from the pattern's named groups; unknown fields stay empty."""
    assert best.rule is not None
    found = best.rule.pattern.search(best.line.text)
    fields = _Fields({k: v for k, v in (found.groupdict() if found else {}).items() if v})
    fields.setdefault("match", found.group(0) if found else "")
    fields.setdefault("exception_type", best.exception_type or "an exception")
    try:
        text = template.format_map(fields)
    except (ValueError, IndexError, AttributeError):
        return template
    return _EMPTY_BRACKETS.sub("", text)


class _Fields(dict):
    def __missing__(self, key: str) -> str:
        return ""
