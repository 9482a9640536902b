"""Analysing failures end to end: log → extraction → heuristic → LLM → store.

The operator, the CLI and tests call these functions; none of them needs a scheduler.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from dagnostics_provider.analysis.extraction import Extraction, extract, extract_text
from dagnostics_provider.analysis.fingerprint import fingerprint
from dagnostics_provider.analysis.heuristic import heuristic_outcome
from dagnostics_provider.analysis.llm import LLMAnalyzer, build_llm_analyzer
from dagnostics_provider.analysis.outcome import AnalysisOutcome
from dagnostics_provider.logs import LogUnavailableError
from dagnostics_provider.logs.retrieval import TaskRef, open_task_log
from dagnostics_provider.store import failures

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LogAnalysis:
    """An analysis together with what it was made from."""

    extraction: Extraction
    outcome: AnalysisOutcome
    fingerprint: str


def failure_fingerprint(extraction: Extraction) -> str:
    """Groups repeats of one failure: exception type + the root-cause message with volatile parts masked."""
    message = extraction.root_cause.text if extraction.root_cause is not None else ""
    return fingerprint(extraction.exception_type, message)


def analyze_extraction(extraction: Extraction, analyzer: LLMAnalyzer | None) -> LogAnalysis:
    heuristic = heuristic_outcome(extraction)
    outcome = heuristic if analyzer is None else analyzer.analyze(extraction.context, heuristic.result)
    return LogAnalysis(extraction, outcome, failure_fingerprint(extraction))


def analyze_log(chunks: Iterable[bytes | str], analyzer: LLMAnalyzer | None) -> LogAnalysis:
    """Analyse a log given as a stream of chunks (a file, stdin, the REST API); stores nothing."""
    return analyze_extraction(extract(chunks), analyzer)


def extraction_for(ref: TaskRef, error_text: str | None, *, source: str | None = None) -> tuple[Extraction, str | None]:
    """The try's log extracted, and where it was read; the recorded error instead when the log says nothing.

    A log that cannot be read, or one without an error line (a task marked failed by hand, a log cut short), is
    replaced by ``error_text`` (the listener's error and traceback). ``source`` overrides ``[dagnostics]
    log_source``.
    """
    try:
        chunks, reference = open_task_log(ref, source=source)
        extraction = extract(chunks)
    except LogUnavailableError as exc:
        log.warning("Log of %s unavailable (%s); analysing the recorded error instead", ref, exc)
        return extract_text(error_text or ""), None
    if extraction.root_cause is None and error_text:
        return extract_text(error_text), reference
    return extraction, reference


def analyze_failure(failure_id: int, analyzer: LLMAnalyzer | None) -> tuple[int, LogAnalysis]:
    """Analyse one recorded failure and store the analysis; returns the analysis id and what was stored."""
    failure = failures.get_failure(failure_id)
    ref = TaskRef(
        dag_id=failure.dag_id,
        task_id=failure.task_id,
        run_id=failure.run_id,
        map_index=failure.map_index,
        try_number=failure.try_number,
    )
    extraction, reference = extraction_for(ref, failure.error_text)
    analysis = analyze_extraction(extraction, analyzer)
    analysis_id = failures.save_analysis(
        failure_id,
        analysis.outcome,
        log_excerpt=extraction.context,
        log_reference=reference,
        fingerprint=analysis.fingerprint,
        error_type=extraction.exception_type,
    )
    return analysis_id, analysis


def analyze_pending(
    *, batch_size: int = 25, max_batches: int | None = None, provider: str | None = None
) -> dict[str, Any]:
    """Drain the queue of pending failures in batches; one failure's error never stops the others."""
    analyzer = build_llm_analyzer(provider)
    summary: dict[str, Any] = {"analyzed": 0, "by_llm": 0, "by_heuristic": 0, "failed": 0, "analysis_ids": []}
    batches = 0
    while max_batches is None or batches < max_batches:
        batch = failures.pending_failure_ids(batch_size)
        if not batch:
            break
        batches += 1
        for failure_id in batch:
            try:
                analysis_id, analysis = analyze_failure(failure_id, analyzer)
            except Exception as exc:
                log.exception("DAGnostics could not analyse failure %s", failure_id)
                failures.mark_analysis_failed(failure_id, f"{type(exc).__name__}: {exc}")
                summary["failed"] += 1
                continue
            summary["analyzed"] += 1
            summary["by_heuristic" if analysis.outcome.analyzer == "heuristic" else "by_llm"] += 1
            summary["analysis_ids"].append(analysis_id)
            log.info(
                "Failure %s: %s [%s/%s, %s]",
                failure_id,
                analysis.outcome.result.error_message[:200],
                analysis.outcome.result.category,
                analysis.outcome.result.severity,
                analysis.outcome.analyzer,
            )
    summary["pending"] = len(failures.pending_failure_ids(10_000))
    return summary
