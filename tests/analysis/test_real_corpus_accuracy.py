"""Accuracy of the heuristic analysis on real failed-task logs (tests/real_corpus), held-out split.

Rules and prompts are tuned on the dev split only; the held-out split's repositories are never looked at while
tuning (tests/real_corpus/test_real_corpus_integrity.py fails if anything names a held-out case).  Dev misses are
printed to guide rule work; held-out misses are only counted.

Two floors: the target of issue #11 (root cause top-1 >= 90 %, category >= 80 %), which the heuristic analyzer does
not reach yet and is marked as an expected failure that must start passing the day it is reached (strict), and the
accuracy measured today, so that no rule change makes the held-out numbers worse unnoticed.
"""

from __future__ import annotations

import pytest

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

TARGET_ROOT_CAUSE_ACCURACY = 0.90
TARGET_CATEGORY_ACCURACY = 0.80
# Measured on the held-out split (benchmarks/bench_accuracy.py); raise them when the analyzer gets better.
MEASURED_ROOT_CAUSE_ACCURACY = 0.90
MEASURED_CATEGORY_ACCURACY = 0.70


@pytest.fixture(scope="module")
def heldout():
    graded = grade(CORPUS_DIR, split_labels(load_labels(), "heldout"))
    result = scores(graded)
    print(
        f"\nheld-out: {result.logs} logs, root cause top-1 {result.root_cause_accuracy:.3f}, "
        f"category {result.category_accuracy:.3f}"
    )
    print(format_confusion(confusion(graded)))
    print(format_calibration(*calibration(graded)))
    return result


def test_dev_split_misses_are_listed():
    graded = grade(CORPUS_DIR, split_labels(load_labels(), "dev"))
    print("\n".join(f"DEV {miss}" for miss in misses(graded)))
    result = scores(graded)
    print(
        f"dev: {result.logs} logs, root cause {result.root_cause_accuracy:.3f}, category {result.category_accuracy:.3f}"
    )
    assert result.logs > 0


def test_heldout_accuracy_does_not_regress(heldout):
    assert heldout.root_cause_accuracy >= MEASURED_ROOT_CAUSE_ACCURACY
    assert heldout.category_accuracy >= MEASURED_CATEGORY_ACCURACY


def test_heldout_root_cause_meets_the_target(heldout):
    assert heldout.root_cause_accuracy >= TARGET_ROOT_CAUSE_ACCURACY


@pytest.mark.xfail(
    strict=True,
    reason="issue #11's target is not reached yet: held-out category accuracy is far below 80 % (see the bench)",
)
def test_heldout_category_meets_the_target(heldout):
    assert heldout.category_accuracy >= TARGET_CATEGORY_ACCURACY
