from __future__ import annotations

import json

import pytest

from dagnostics_provider.analysis import schema as analysis_schema
from dagnostics_provider.analysis.schema import (
    CATEGORIES,
    MAX_ACTIONS,
    MAX_ERROR_LINES,
    MAX_MESSAGE_CHARS,
    MAX_REASONING_CHARS,
    InvalidAnalysis,
    json_schema,
    parse_analysis,
)
from dagnostics_provider.prompt_format import INSTRUCTION, chat_messages, render_completion, render_input

VALID = {
    "error_message": "psycopg2.OperationalError: connection refused",
    "category": "dependency_failure",
    "severity": "high",
    "confidence": 0.8,
    "reasoning": "The database is down.",
    "error_lines": ["psycopg2.OperationalError: connection refused"],
    "suggested_actions": ["Check the database"],
}


def test_json_schema_requires_every_field_and_lists_the_enums():
    schema = json_schema()
    assert schema["required"] == list(VALID)
    assert schema["properties"]["category"]["enum"] == list(CATEGORIES)
    assert schema["additionalProperties"] is False


def _bounds(node):
    """Every repetition bound in a schema: what llama.cpp expands into grammar rules."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("maxLength", "minLength", "maxItems", "minItems"):
                yield key, value
            else:
                yield from _bounds(value)
    elif isinstance(node, list):
        for item in node:
            yield from _bounds(item)


def test_the_schema_sent_to_servers_has_no_bound_llama_cpp_refuses():
    """Ollama turns every schema bound into grammar repetitions and answers HTTP 500 above its limit (issue 13)."""
    bounds = dict(_bounds(json_schema()["properties"]))
    assert all(value <= 1000 for value in bounds.values())  # the largest bound measured to compile
    assert MAX_MESSAGE_CHARS > analysis_schema.GRAMMAR_BOUND_LIMIT < MAX_REASONING_CHARS
    properties = json_schema()["properties"]
    assert "maxLength" not in properties["error_message"] and "maxLength" not in properties["reasoning"]
    assert properties["error_message"]["minLength"] == 1
    assert (properties["error_lines"]["maxItems"], properties["suggested_actions"]["maxItems"]) == (
        MAX_ERROR_LINES,
        MAX_ACTIONS,
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("error_message", "x" * (MAX_MESSAGE_CHARS + 1)),
        ("reasoning", "x" * (MAX_REASONING_CHARS + 1)),
        ("error_lines", ["line"] * (MAX_ERROR_LINES + 1)),
    ],
)
def test_the_bounds_left_out_of_the_schema_are_still_enforced_on_the_answer(field, value):
    with pytest.raises(InvalidAnalysis, match=field):
        parse_analysis({**VALID, field: value})


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ("not json at all", "not JSON"),
        ("[1, 2]", "expected a JSON object"),
        ({**VALID, "category": "network"}, "category must be one of"),
        ({**VALID, "confidence": 1.5}, "confidence"),
        ({k: v for k, v in VALID.items() if k != "severity"}, "severity"),
        ({**VALID, "extra": 1}, "extra"),
        ({**VALID, "error_message": "x" * 10_000}, "error_message"),
        ("[" * 100_000, "not JSON"),
    ],
)
def test_invalid_answers_are_refused_with_a_reason(payload, problem):
    with pytest.raises(InvalidAnalysis, match=problem):
        parse_analysis(payload)


def test_nul_characters_and_lone_surrogates_never_reach_the_store():
    result = parse_analysis({**VALID, "error_message": "a\x00b\ud800c", "error_lines": ["x\x00"]})
    assert result.error_message == "ab?c"
    assert result.error_lines == ["x"]


def test_completion_is_compact_json_in_field_order_and_round_trips():
    result = parse_analysis(VALID)
    completion = render_completion(result)
    assert completion.startswith('{"error_message":')
    assert '":"' in completion and '", "' not in completion  # no whitespace after separators
    assert parse_analysis(completion) == result
    assert list(json.loads(completion)) == list(VALID)


def test_chat_messages_are_instruction_plus_the_rendered_context():
    messages = chat_messages("ERROR - boom")
    assert messages == [
        {"role": "system", "content": INSTRUCTION},
        {"role": "user", "content": render_input("ERROR - boom")},
    ]
    assert messages[1]["content"] == "Log Context:\nERROR - boom"
