"""The heuristic analyzer, and the rules that drive it: built-in, user-extended and invalid."""

from __future__ import annotations

from pathlib import Path

import pytest

from dagnostics_provider import prompt_format
from dagnostics_provider.analysis.extraction import extract_text
from dagnostics_provider.analysis.heuristic import (
    HeuristicAnalyzer,
    analyze_heuristically,
    heuristic_outcome,
)
from dagnostics_provider.analysis.rules import RulesError, configured_rules, load_rules
from dagnostics_provider.analysis.schema import AnalysisResult

OUT = "[2024-05-02, 10:15:31 UTC] {subprocess.py:93} INFO - "
WRAPPER = """\
[2024-05-02, 10:15:32 UTC] {taskinstance.py:2698} ERROR - Task failed with exception
Traceback (most recent call last):
  File "/home/airflow/.local/lib/python3.11/site-packages/airflow/operators/bash.py", line 243, in execute
airflow.exceptions.AirflowException: Bash command failed. The command returned a non-zero exit code 1.
"""


def analyse(log: str, rules_file: str | Path | None = None) -> AnalysisResult:
    return analyze_heuristically(extract_text(log, rules=load_rules(rules_file), max_context_chars=6000))


def test_specific_rule_gives_a_confident_classified_result():
    result = analyse(f'{OUT}psql: error: FATAL:  password authentication failed for user "etl"\n{WRAPPER}')
    assert result.error_message == 'psql: error: FATAL:  password authentication failed for user "etl"'
    assert result.category == "permission_error"
    assert result.severity == "high"
    assert result.confidence >= 0.8
    assert "pg_auth_failed" in result.reasoning and "log line 1" in result.reasoning
    assert result.error_lines[0] == result.error_message
    assert result.suggested_actions and all(result.suggested_actions)


def test_unexplained_exception_is_unknown_with_middling_confidence():
    result = analyse('Traceback (most recent call last):\n  File "x.py", line 1, in f\nWidgetJammed: gear 3\n')
    assert result.error_message == "WidgetJammed: gear 3"
    assert result.category == "unknown"
    assert 0.2 <= result.confidence <= 0.5
    assert "WidgetJammed" in result.reasoning


def test_wrapper_only_is_low_confidence_and_says_so():
    result = analyse(f"{OUT}starting\n{WRAPPER}")
    assert "Bash command failed" in result.error_message
    assert result.confidence <= 0.2
    assert "No more specific error line" in result.reasoning


def test_no_error_at_all():
    result = analyse(f"{OUT}all fine\n")
    assert result.error_message == "No error line found in the task log"
    assert result.category == "unknown" and result.confidence == 0.05


def test_confidence_orders_specific_above_generic():
    specific = analyse(f"{OUT}java.lang.OutOfMemoryError: Java heap space\n{WRAPPER}")
    generic = analyse(f"{OUT}Error: the frobnicator could not frobnicate\n{WRAPPER}")
    assert specific.confidence > generic.confidence
    assert specific.category == "resource_error" and specific.severity == "critical"


def test_reasoning_template_fields_are_filled():
    result = analyse(f"{OUT}java.lang.OutOfMemoryError: GC overhead limit exceeded\n{WRAPPER}")
    assert "GC overhead limit exceeded" in result.reasoning


def test_outcome_records_provenance():
    extraction = extract_text(f"{OUT}Killed\n{WRAPPER}", rules=load_rules(), max_context_chars=6000)
    outcome = heuristic_outcome(extraction, fallback_reason="LLM timed out")
    assert outcome.analyzer == "heuristic"
    assert outcome.prompt_version == prompt_format.PROMPT_VERSION
    assert outcome.model is None and outcome.raw_response is None
    assert isinstance(outcome.latency_ms, int) and outcome.latency_ms >= 0
    assert outcome.fallback_reason == "LLM timed out"
    assert outcome.result.category == "resource_error"
    analyzer = HeuristicAnalyzer()
    assert analyzer.analyze(extraction) == outcome.result
    assert analyzer.outcome(extraction).fallback_reason is None


def test_results_are_valid_for_the_schema_even_for_huge_lines():
    result = analyse(f"{OUT}ERROR: " + "x" * 50_000 + "\n")
    assert AnalysisResult.model_validate(result.model_dump()) == result


USER_RULES = """\
triggers: [widget]
boilerplate:
  - '^Heartbeat sent'
rules:
  - id: widget_jam
    pattern: 'WidgetJammed: gear (?P<gear>\\d+)'
    category: resource_error
    severity: critical
    weight: 97
    reasoning: Gear {gear} of the widget press jammed.
    actions: [Clear the jam on the widget press.]
  - id: sql_object_missing
    pattern: 'relation "[^"]+" does not exist'
    category: data_quality
    severity: low
    weight: 90
"""


def test_user_rules_file_is_tried_before_and_overrides_built_ins(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(USER_RULES)

    widget = analyse('Traceback (most recent call last):\n  File "x.py", line 1, in f\nWidgetJammed: gear 3\n', path)
    assert widget.category == "resource_error" and widget.severity == "critical"
    assert widget.reasoning.startswith("Gear 3 of the widget press jammed.")
    assert widget.suggested_actions == ["Clear the jam on the widget press."]

    relation = analyse(f'{OUT}ERROR:  relation "x" does not exist\n{WRAPPER}', path)
    assert (relation.category, relation.severity) == ("data_quality", "low")
    rules = load_rules(path)
    assert [r.id for r in rules.rules].count("sql_object_missing") == 1
    assert rules.rules[0].id == "widget_jam"
    assert rules.is_boilerplate("Heartbeat sent to scheduler")
    assert rules.is_triggered("the WIDGET press")


def test_user_rules_file_from_config(tmp_path, monkeypatch):
    path = tmp_path / "rules.yaml"
    path.write_text(USER_RULES)
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__RULES_FILE", str(path))
    assert configured_rules().rules[0].id == "widget_jam"
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__RULES_FILE", "")
    assert configured_rules().rules[0].id != "widget_jam"


def test_edited_user_rules_file_is_reloaded(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(USER_RULES)
    assert load_rules(path).rules[0].id == "widget_jam"
    path.write_text(USER_RULES.replace("widget_jam", "widget_stuck"))
    import os

    os.utime(path, ns=(1, 2_000_000_000_000_000_000))
    assert load_rules(path).rules[0].id == "widget_stuck"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (
            "rules:\n  - id: bad\n    pattern: 'a(b'\n    category: unknown\n",
            "rule #1 ('bad'): 'pattern' is not a valid",
        ),
        ("rules:\n  - id: bad\n    pattern: x\n    category: nope\n", "rule #1 ('bad'): 'category' must be one of"),
        ("rules:\n  - id: ok\n    pattern: x\n    category: unknown\n  - pattern: y\n", "rule #2: 'id' is required"),
        ("rules:\n  - id: w\n    pattern: x\n    category: unknown\n    weight: 300\n", "'weight' must be an integer"),
        ("rules:\n  - id: s\n    pattern: x\n    category: unknown\n    severity: meh\n", "'severity' must be one of"),
        ("rules:\n  - id: k\n    pattern: x\n    category: unknown\n    colour: red\n", "unknown keys ['colour']"),
        ("rules:\n  - id: a\n    pattern: x\n    category: unknown\n    actions: do it\n", "'actions' must be a list"),
        ("rules: [1]\n", "rule #1: must be a mapping"),
        ("rules: {}\n", "'rules' must be a list"),
        ("- just a list\n", "expected a mapping"),
        ("rules: [\n", "not valid YAML"),
        ("ruels: []\n", "unknown top-level keys ['ruels']"),
        ("boilerplate: ['(']\n", "boilerplate #1: not a valid regular expression"),
        ("triggers: [1]\n", "'triggers' must be a list of non-empty strings"),
    ],
)
def test_invalid_user_rules_file_is_a_clear_error(tmp_path, content, problem):
    path = tmp_path / "my_rules.yaml"
    path.write_text(content)
    with pytest.raises(RulesError) as info:
        load_rules(path)
    assert str(path) in str(info.value)
    assert problem in str(info.value)


def test_missing_user_rules_file_is_a_clear_error(tmp_path):
    with pytest.raises(RulesError, match=r"missing\.yaml: cannot read it"):
        load_rules(tmp_path / "missing.yaml")


def test_every_built_in_rule_is_valid_and_unique():
    rules = load_rules()
    ids = [rule.id for rule in rules.rules]
    assert len(ids) == len(set(ids)) and len(ids) > 40
    assert all(rule.source == "built-in rules.yaml" for rule in rules.rules)
    assert all(rule.reasoning for rule in rules.rules)
    assert all(rule.actions for rule in rules.rules if not rule.wrapper)
