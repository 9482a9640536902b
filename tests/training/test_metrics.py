"""Evaluation metrics on hand-made answers, where the right numbers can be worked out by hand."""

from __future__ import annotations

import json

import pytest

from dagnostics_provider.analysis.schema import AnalysisResult
from dagnostics_provider.training.metrics import METRIC_NAMES, compute_metrics, judge, lines_f1, macro_f1


def analysis(message: str, category: str, severity: str = "high", lines=(), confidence: float = 0.8):
    return AnalysisResult(
        error_message=message,
        category=category,
        severity=severity,
        confidence=confidence,
        error_lines=list(lines),
    )


REFERENCES = [
    analysis("KeyError: 'S3_BUCKET'", "configuration_error", "medium", ["KeyError: 'S3_BUCKET'"]),
    analysis("Timeout after 3600 seconds", "timeout_error", "low", ["Timeout after 3600 seconds", "Killed"]),
    analysis("permission denied for table orders", "permission_error", "high", ["permission denied"]),
    analysis("MemoryError", "resource_error", "critical", []),
]


def test_metrics_on_hand_made_answers():
    answers = [
        # 1. exactly right, wrapped in a Markdown block (the analyzer accepts it)
        "```json\n" + REFERENCES[0].to_json() + "\n```",
        # 2. right category, wrong severity, message differs only in the number, one of two lines
        analysis("Timeout after 7200 seconds", "timeout_error", "high", ["Timeout after 3600 seconds"], 0.4).to_json(),
        # 3. JSON, but not a valid analysis (unknown category)
        json.dumps({"error_message": "x", "category": "network", "severity": "high", "confidence": 0.5}),
        # 4. not JSON at all
        "The task failed because of memory.",
    ]
    m = compute_metrics(answers, REFERENCES)
    assert set(m) == set(METRIC_NAMES)
    assert m["examples"] == 4
    assert m["json_parse_rate"] == 0.75
    assert m["schema_valid_rate"] == 0.5
    assert m["category_accuracy"] == 0.5
    # classes: configuration (F1 1), timeout (F1 1), permission (0), resource (0) -> 0.5
    assert m["category_macro_f1"] == pytest.approx(0.5)
    assert m["severity_accuracy"] == 0.25
    assert m["error_message_exact"] == 0.25
    assert m["error_message_normalised"] == 0.5  # 3600 vs 7200 are both <n>
    # per example: 1, 2*1/(1+2)=2/3, 0, 0
    assert m["error_lines_f1"] == pytest.approx((1 + 2 / 3) / 4)
    assert m["mean_confidence"] == pytest.approx((0.8 + 0.4) / 2)


def test_no_valid_answer_has_no_mean_confidence_and_zero_rates():
    m = compute_metrics(["", "{"], REFERENCES[:2])
    assert m["mean_confidence"] is None
    assert all(m[name] == 0 for name in METRIC_NAMES if name not in ("examples", "mean_confidence"))


def test_wrong_predicted_class_counts_against_both_classes():
    # truth a,a,b; predicted a,b,b -> F1(a)=2/3, F1(b)=2/3
    assert macro_f1(["a", "a", "b"], ["a", "b", "b"]) == pytest.approx(2 / 3)
    # a miss (None) is a false negative only
    assert macro_f1(["a", "b"], ["a", None]) == pytest.approx(0.5)


def test_lines_f1_edges():
    assert lines_f1([], []) == 1.0
    assert lines_f1(["x"], []) == 0.0
    assert lines_f1([" x ", "y"], ["x"]) == pytest.approx(2 / 3)


def test_judge_separates_json_from_valid_analysis():
    assert judge(REFERENCES[0].to_json()).result == REFERENCES[0]
    assert judge("[1, 2]").is_json is False
    assert judge('{"error_message": "x"}').is_json is True
    assert judge('{"error_message": "x"}').result is None


def test_lengths_must_match():
    with pytest.raises(ValueError, match="2 answers for 1 references"):
        compute_metrics(["", ""], REFERENCES[:1])
