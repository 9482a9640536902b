"""Grade an analyzer against a labelled corpus of failed-task logs: accuracy, confusion and calibration.

The tests (accuracy floors) and ``make bench`` (the full tables) must compute the same numbers, so the grading
lives here once.  A corpus folder holds ``labels.json`` (a list of entries with ``file``, ``root_cause`` — the
accepted verbatim substrings of the root-cause line — and ``category``) and the log files it names; the real-log
corpus adds ``repo`` and ``split``.

A chosen root-cause line is right when it contains any accepted substring.  An analysis is *correct* when both its
root-cause line and its category are right: that is what its confidence claims, so calibration is measured on it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagnostics_provider.analysis.extraction import Extraction, extract
from dagnostics_provider.analysis.heuristic import analyze_heuristically
from dagnostics_provider.analysis.rules import RuleSet, load_rules
from dagnostics_provider.analysis.schema import CATEGORIES, AnalysisResult

READ_BYTES = 1 << 16
MAX_CONTEXT_CHARS = 6_000
# Confidence bands for the calibration table: the review queue's "lowest confidence first" should put the wrong
# answers first, so accuracy must rise from band to band.
CONFIDENCE_BANDS: tuple[tuple[float, float], ...] = ((0.0, 0.5), (0.5, 0.7), (0.7, 0.85), (0.85, 1.01))

Analyzer = Callable[[Extraction], AnalysisResult]


@dataclass(frozen=True)
class GradedLog:
    """One log's analysis next to its label."""

    label: dict[str, Any]
    root_cause: str | None
    category: str
    confidence: float

    @property
    def root_ok(self) -> bool:
        return self.root_cause is not None and any(s in self.root_cause for s in self.label["root_cause"])

    @property
    def category_ok(self) -> bool:
        return self.category == self.label["category"]

    @property
    def correct(self) -> bool:
        return self.root_ok and self.category_ok


def load_labels(corpus: Path) -> list[dict[str, Any]]:
    return json.loads((corpus / "labels.json").read_text(encoding="utf-8"))


def grade(
    corpus: Path,
    labels: Iterable[dict[str, Any]] | None = None,
    *,
    rules: RuleSet | None = None,
    analyzer: Analyzer = analyze_heuristically,
) -> list[GradedLog]:
    """Analyse each labelled log, streamed from disk as a worker would read it."""
    rules = rules if rules is not None else load_rules()
    graded = []
    for label in load_labels(corpus) if labels is None else labels:
        with (corpus / label["file"]).open("rb") as log:
            extraction = extract(
                iter(lambda: log.read(READ_BYTES), b""), rules=rules, max_context_chars=MAX_CONTEXT_CHARS
            )
        result = analyzer(extraction)
        root = extraction.root_cause.text if extraction.root_cause else None
        graded.append(GradedLog(label=label, root_cause=root, category=result.category, confidence=result.confidence))
    return graded


@dataclass(frozen=True)
class Scores:
    logs: int
    root_cause_accuracy: float
    category_accuracy: float
    correct: float


def scores(graded: list[GradedLog]) -> Scores:
    n = len(graded)
    if not n:
        return Scores(0, 0.0, 0.0, 0.0)
    return Scores(
        logs=n,
        root_cause_accuracy=sum(g.root_ok for g in graded) / n,
        category_accuracy=sum(g.category_ok for g in graded) / n,
        correct=sum(g.correct for g in graded) / n,
    )


def misses(graded: list[GradedLog]) -> list[str]:
    """One line per wrong root cause or category, naming the log: what a rule change fixed or broke."""
    lines = []
    for g in graded:
        name = g.label.get("id", g.label["file"])
        if not g.root_ok:
            lines.append(f"ROOT MISS {name}: chose {g.root_cause!r}, expected one of {g.label['root_cause']}")
        if not g.category_ok:
            lines.append(f"CATEGORY MISS {name}: {g.category} instead of {g.label['category']}")
    return lines


def confusion(graded: list[GradedLog]) -> dict[str, dict[str, int]]:
    """``table[expected][predicted]`` counts over every category, zeros included."""
    table = {expected: dict.fromkeys(CATEGORIES, 0) for expected in CATEGORIES}
    for g in graded:
        table[g.label["category"]][g.category] += 1
    return table


@dataclass(frozen=True)
class Band:
    low: float
    high: float
    logs: int
    mean_confidence: float
    accuracy: float


def calibration(graded: list[GradedLog]) -> tuple[list[Band], float]:
    """Accuracy per confidence band and the expected calibration error (weighted |accuracy - confidence|)."""
    bands, ece = [], 0.0
    for low, high in CONFIDENCE_BANDS:
        members = [g for g in graded if low <= g.confidence < high]
        if not members:
            bands.append(Band(low, min(high, 1.0), 0, 0.0, 0.0))
            continue
        confidence = sum(g.confidence for g in members) / len(members)
        accuracy = sum(g.correct for g in members) / len(members)
        ece += len(members) / len(graded) * abs(accuracy - confidence)
        bands.append(Band(low, min(high, 1.0), len(members), confidence, accuracy))
    return bands, ece


def format_confusion(table: dict[str, dict[str, int]]) -> str:
    """A plain-text confusion table (rows: labelled category, columns: predicted), with per-row recall."""
    short = {c: c.split("_")[0][:6] for c in CATEGORIES}
    width = max(map(len, CATEGORIES))
    lines = [" " * width + " " + " ".join(f"{short[c]:>6}" for c in CATEGORIES) + "  recall"]
    for expected in CATEGORIES:
        row = table[expected]
        total = sum(row.values())
        recall = f"{row[expected] / total:.2f}" if total else "  - "
        lines.append(f"{expected:<{width}} " + " ".join(f"{row[c]:>6}" for c in CATEGORIES) + f"  {recall:>6}")
    return "\n".join(lines)


def format_calibration(bands: list[Band], ece: float) -> str:
    lines = ["confidence band   logs  mean conf  accuracy"]
    for b in bands:
        accuracy = f"{b.accuracy:.2f}" if b.logs else "  - "
        lines.append(f"[{b.low:.2f}, {b.high:.2f})  {b.logs:>6}  {b.mean_confidence:>9.2f}  {accuracy:>8}")
    lines.append(f"expected calibration error (ECE): {ece:.3f}")
    return "\n".join(lines)
