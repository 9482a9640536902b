"""Accuracy of the heuristic analysis on the labelled corpus of real-world-shaped failed-task logs.

The corpus (tests/corpus, see its README for the labelling conventions) grades the chosen root-cause line (correct
when it contains any of the label's substrings) and the category.  Misses are printed so a rule change shows what
it fixed and what it broke.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from dagnostics_provider.analysis.extraction import extract
from dagnostics_provider.analysis.heuristic import analyze_heuristically
from dagnostics_provider.analysis.rules import load_rules

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
LABELS = CORPUS / "labels.json"
MIN_ROOT_CAUSE_ACCURACY = 0.90
MIN_CATEGORY_ACCURACY = 0.80


@dataclass(frozen=True)
class Graded:
    file: str
    root_cause: str | None
    root_ok: bool
    category: str
    expected_category: str
    accepted: list[str]

    @property
    def category_ok(self) -> bool:
        return self.category == self.expected_category


def grade_corpus(corpus: Path = CORPUS) -> list[Graded]:
    """Analyse every labelled log with the built-in rules, streaming each file as the worker would."""
    rules = load_rules()
    graded = []
    for label in json.loads((corpus / "labels.json").read_text(encoding="utf-8")):
        with (corpus / label["file"]).open("rb") as log:
            extraction = extract(iter(lambda: log.read(1 << 16), b""), rules=rules, max_context_chars=6000)
        result = analyze_heuristically(extraction)
        text = extraction.root_cause.text if extraction.root_cause else None
        graded.append(
            Graded(
                file=label["file"],
                root_cause=text,
                root_ok=text is not None and any(s in text for s in label["root_cause"]),
                category=result.category,
                expected_category=label["category"],
                accepted=label["root_cause"],
            )
        )
    return graded


@pytest.mark.skipif(not LABELS.exists(), reason="the labelled corpus (tests/corpus/labels.json) is not there")
def test_corpus_accuracy():
    graded = grade_corpus()
    root_accuracy = sum(g.root_ok for g in graded) / len(graded)
    category_accuracy = sum(g.category_ok for g in graded) / len(graded)

    for g in graded:
        if not g.root_ok:
            print(f"ROOT MISS {g.file}: chose {g.root_cause!r}, expected one of {g.accepted}")
        if not g.category_ok:
            print(f"CATEGORY MISS {g.file}: {g.category} instead of {g.expected_category}")
    print(f"{len(graded)} logs: root-cause top-1 accuracy {root_accuracy:.3f}, category {category_accuracy:.3f}")

    assert root_accuracy >= MIN_ROOT_CAUSE_ACCURACY
    assert category_accuracy >= MIN_CATEGORY_ACCURACY
