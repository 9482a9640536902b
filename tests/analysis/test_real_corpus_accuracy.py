"""Accuracy of the heuristic analysis on real failed-task logs (tests/real_corpus), held-out split.

Rules and prompts are tuned on the dev split only; the held-out split's repositories are never looked at while
tuning (tests/real_corpus/test_real_corpus_integrity.py fails if anything names a held-out case).  Dev misses are
printed to guide rule work; held-out misses are only counted.
"""

from __future__ import annotations

from dagnostics_provider.analysis.grading import (
    calibration,
    confusion,
    format_calibration,
    format_confusion,
    grade,
    misses,
    scores,
)
from tests.real_corpus.corpus_meta import CORPUS_DIR, load_labels, split_labels

MIN_ROOT_CAUSE_ACCURACY = 0.90
MIN_CATEGORY_ACCURACY = 0.80


def test_dev_split_misses_are_listed():
    graded = grade(CORPUS_DIR, split_labels(load_labels(), "dev"))
    print("\n".join(f"DEV {miss}" for miss in misses(graded)))
    result = scores(graded)
    print(
        f"dev: {result.logs} logs, root cause {result.root_cause_accuracy:.3f}, category {result.category_accuracy:.3f}"
    )
    assert result.logs > 0


def test_heldout_accuracy_floors():
    graded = grade(CORPUS_DIR, split_labels(load_labels(), "heldout"))
    result = scores(graded)
    print(
        f"held-out: {result.logs} logs, root cause top-1 {result.root_cause_accuracy:.3f}, "
        f"category {result.category_accuracy:.3f}"
    )
    print(format_confusion(confusion(graded)))
    print(format_calibration(*calibration(graded)))
    assert result.root_cause_accuracy >= MIN_ROOT_CAUSE_ACCURACY
    assert result.category_accuracy >= MIN_CATEGORY_ACCURACY
