"""Regression floor of the heuristic analysis on the hand-written unit corpus (tests/corpus).

The rules were tuned on these logs, so the numbers here say only that nothing regressed; accuracy as a user meets
it is measured on the held-out split of real logs (tests/analysis/test_real_corpus_accuracy.py).  Misses are
printed so a rule change shows what it fixed and what it broke.
"""

from __future__ import annotations

from pathlib import Path

from dagnostics_provider.analysis.grading import grade, misses, scores

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
MIN_ROOT_CAUSE_ACCURACY = 0.90
MIN_CATEGORY_ACCURACY = 0.80


def test_corpus_accuracy():
    graded = grade(CORPUS)
    print("\n".join(misses(graded)))
    result = scores(graded)
    print(f"{result.logs} logs: root cause {result.root_cause_accuracy:.3f}, category {result.category_accuracy:.3f}")

    assert result.root_cause_accuracy >= MIN_ROOT_CAUSE_ACCURACY
    assert result.category_accuracy >= MIN_CATEGORY_ACCURACY
