"""How good a model's analyses are: pure functions from (generated answer, reference analysis) pairs to numbers.

The numbers answer the questions a team asks before switching models: does it answer in valid JSON at all, does
it name the right category and severity, does it point at the right error line. Every rate is over *all*
examples, so a model that answers junk scores zero there instead of being judged only on its few good answers;
mean confidence alone is over valid answers, since a junk answer has none.

A valid answer is what the analyzer would accept (:func:`dagnostics_provider.analysis.llm.parse_answer`: the
schema, optionally inside one Markdown code block).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from dagnostics_provider.analysis.fingerprint import normalise_message
from dagnostics_provider.analysis.llm import parse_answer
from dagnostics_provider.analysis.schema import AnalysisResult, InvalidAnalysis

METRIC_NAMES = (
    "examples",
    "json_parse_rate",
    "schema_valid_rate",
    "category_accuracy",
    "category_macro_f1",
    "severity_accuracy",
    "error_message_exact",
    "error_message_normalised",
    "error_lines_f1",
    "mean_confidence",
)


@dataclass(frozen=True)
class Judged:
    """One generated answer, parsed."""

    is_json: bool  # a JSON object as generated, or accepted by the analyzer
    result: AnalysisResult | None  # None unless schema-valid


def judge(answer: str) -> Judged:
    try:
        return Judged(True, parse_answer(answer))
    except InvalidAnalysis:
        pass
    try:
        return Judged(isinstance(json.loads(answer), dict), None)
    except (ValueError, RecursionError):
        return Judged(False, None)


def macro_f1(truth: Sequence[str], predicted: Sequence[str | None]) -> float:
    """Mean F1 over the classes that occur in ``truth`` or ``predicted``; ``None`` (no valid answer) is a miss."""
    classes = sorted({*truth, *(p for p in predicted if p is not None)})
    if not classes:
        return 0.0
    scores = []
    for cls in classes:
        tp = sum(t == cls and p == cls for t, p in zip(truth, predicted, strict=True))
        fp = sum(t != cls and p == cls for t, p in zip(truth, predicted, strict=True))
        fn = sum(t == cls and p != cls for t, p in zip(truth, predicted, strict=True))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / len(scores)


def lines_f1(predicted: Sequence[str], reference: Sequence[str]) -> float:
    """F1 of two sets of log lines compared whitespace-stripped; both empty counts as a perfect match."""
    pred = {line.strip() for line in predicted if line.strip()}
    ref = {line.strip() for line in reference if line.strip()}
    if not pred and not ref:
        return 1.0
    overlap = len(pred & ref)
    return 2 * overlap / (len(pred) + len(ref)) if overlap else 0.0


def _mean(values: Sequence[float]) -> float:
    """Mean of per-example scores (booleans count as 0/1); 0 for no examples."""
    return sum(values) / len(values) if values else 0.0


def verdicts(judged: Judged, reference: AnalysisResult) -> dict[str, bool | float]:
    """One answer judged field by field against its reference (what the predictions file records per example)."""
    v = judged.result
    return {
        "json": judged.is_json,
        "schema_valid": v is not None,
        "category": v is not None and v.category == reference.category,
        "severity": v is not None and v.severity == reference.severity,
        "error_message_exact": v is not None and v.error_message == reference.error_message,
        "error_message_normalised": v is not None
        and normalise_message(v.error_message) == normalise_message(reference.error_message),
        "error_lines_f1": lines_f1(v.error_lines, reference.error_lines) if v else 0.0,
    }


def compute_metrics(answers: Sequence[str], references: Sequence[AnalysisResult]) -> dict[str, float | int | None]:
    """Every metric of :data:`METRIC_NAMES` for generated ``answers`` against the ``references``."""
    if len(answers) != len(references):
        raise ValueError(f"{len(answers)} answers for {len(references)} references")
    judged = [judge(answer) for answer in answers]
    valid = [j.result for j in judged]
    per_example = [verdicts(j, r) for j, r in zip(judged, references, strict=True)]
    confidences = [v.confidence for v in valid if v is not None]

    def rate(field: str) -> float:
        return _mean([verdict[field] for verdict in per_example])

    return {
        "examples": len(references),
        "json_parse_rate": rate("json"),
        "schema_valid_rate": rate("schema_valid"),
        "category_accuracy": rate("category"),
        "category_macro_f1": macro_f1([r.category for r in references], [v and v.category for v in valid]),
        "severity_accuracy": rate("severity"),
        "error_message_exact": rate("error_message_exact"),
        "error_message_normalised": rate("error_message_normalised"),
        "error_lines_f1": rate("error_lines_f1"),
        "mean_confidence": sum(confidences) / len(confidences) if confidences else None,
    }
