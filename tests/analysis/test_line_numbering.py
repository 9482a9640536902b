"""One line numbering (issue 14, item 5): the reasoning, the review page's highlights and the training text refer to
the same lines, by their number in the whole task log.

The heuristic reasoning cites "log line N"; the log context carries every line's log line number as a gutter
(``N| text``, :mod:`dagnostics_provider.analysis.context_lines`); the review panel shows those numbers and the
prompt (so the training text) carries them.
"""

from __future__ import annotations

import re

import pytest

from dagnostics_provider import prompt_format
from dagnostics_provider.analysis.context_lines import (
    GAP,
    context_texts,
    gutter,
    numbered,
    parse_context,
    split_gutter,
    strip_gutter,
)
from dagnostics_provider.analysis.extraction import extract_text
from dagnostics_provider.analysis.heuristic import analyze_heuristically
from dagnostics_provider.analysis.llm import parse_answer
from dagnostics_provider.analysis.schema import AnalysisResult
from dagnostics_provider.plugins.views.log_panel import panel_lines
from tests.real_corpus.corpus_meta import CORPUS_DIR, load_labels, split_labels

MAX_CONTEXT_CHARS = 6_000
# Dev-split logs (never a held-out one): an Airflow 3 JSON log whose root cause is a line of a record's rendered
# traceback (eight context rows share that record's number, so position and log line differ), and an Airflow 2
# text log.
DEV_LOGS = [
    "adelphevianney--artefact_challenge_data_engineer--transform-nameerror-pd",
    "a-s-a-s--tasks-airflow--load-to-postgres-undefined-column",
]


def dev_labels() -> dict[str, dict]:
    return {label["id"]: label for label in split_labels(load_labels(), "dev")}


def analysed(label: dict) -> tuple[str, AnalysisResult, int]:
    """The stored context, the heuristic analysis and the log line its reasoning cites."""
    text = (CORPUS_DIR / label["file"]).read_bytes().decode("utf-8", "replace")
    extraction = extract_text(text, max_context_chars=MAX_CONTEXT_CHARS)
    result = analyze_heuristically(extraction)
    cited = re.search(r"\blog line (\d+)\b", result.reasoning)
    assert cited, result.reasoning
    assert int(cited.group(1)) == extraction.root_cause.number
    return extraction.context, result, int(cited.group(1))


@pytest.mark.parametrize("log_id", DEV_LOGS)
def test_the_panel_row_of_the_root_cause_has_the_number_the_reasoning_cites(log_id):
    label = dev_labels()[log_id]  # KeyError if the log left the dev split
    context, result, cited = analysed(label)
    rows = panel_lines(context, result.error_lines, result.error_lines)
    root_rows = [row for row in rows if row.text.strip() == result.error_message]
    assert root_rows, "the root-cause line is in the context"
    assert [row.number for row in root_rows] == [cited] * len(root_rows)
    assert all(row.ai for row in root_rows), "the row the reasoning cites is marked as an AI error line"
    assert all(not row.text.startswith(gutter(cited)) for row in rows), "the gutter is not shown as text"


@pytest.mark.parametrize("log_id", DEV_LOGS)
def test_the_training_text_shows_the_same_number_next_to_the_same_line(log_id):
    context, result, cited = analysed(dev_labels()[log_id])
    example = prompt_format.training_example(context, result)
    user_turn = example["input"]
    assert user_turn.startswith(prompt_format.INPUT_HEADER)
    assert numbered(cited, result.error_message) in user_turn.split("\n")
    assert example["prompt"][1]["content"] == user_turn
    # The answer quotes log text, not context lines: no gutter in what the model learns to write.
    assert all(split_gutter(line)[0] is None for line in result.error_lines)


def test_every_dev_log_numbers_the_root_cause_row_as_the_reasoning_does():
    checked = 0
    for label in split_labels(load_labels(), "dev"):
        text = (CORPUS_DIR / label["file"]).read_bytes().decode("utf-8", "replace")
        extraction = extract_text(text, max_context_chars=MAX_CONTEXT_CHARS)
        if extraction.root_cause is None:
            continue
        result = analyze_heuristically(extraction)
        cited = int(re.search(r"\blog line (\d+)\b", result.reasoning).group(1))
        rows = panel_lines(extraction.context, result.error_lines, result.error_lines)
        root_row = [row for row in rows if row.number == cited and row.text.strip() == result.error_message]
        assert root_row and all(row.ai for row in root_row), label["id"]
        checked += 1
    assert checked > 100


def test_context_lines_carry_the_physical_line_number_of_their_record():
    """Lines rendered from one JSON record (its traceback) share that record's line; text lines keep their own."""
    log = (
        '{"timestamp":"2026-01-01T00:00:00Z","level":"info","event":"starting"}\n'
        '{"timestamp":"2026-01-01T00:00:01Z","level":"error","event":"Task failed with exception",'
        '"error_detail":[{"exc_type":"KeyError","exc_value":"\'date\'","frames":'
        '[{"filename":"/dags/etl.py","lineno":7,"name":"run"}]}]}\n'
    )
    extraction = extract_text(log, max_context_chars=MAX_CONTEXT_CHARS)
    parsed = parse_context(extraction.context)
    assert ("KeyError: 'date'" in dict((text, n) for n, text in parsed)) and extraction.root_cause.number == 2
    assert {n for n, text in parsed if "KeyError" in text or "etl.py" in text} == {2}
    assert analyze_heuristically(extraction).reasoning.count("log line 2") == 1


def test_parse_context_round_trips_numbered_contexts():
    lines = [(3, "start"), (None, GAP), (9, "  ValueError: x  "), (9, "...")]  # a log line "..." is no gap marker
    context = "\n".join(GAP if n is None else numbered(n, text) for n, text in lines)
    assert context.splitlines()[0] == "3| start"
    assert parse_context(context) == lines
    assert context_texts(context) == [text for _, text in lines]
    assert parse_context("12| \n13| x") == [(12, ""), (13, "x")]
    assert parse_context("") == parse_context(None) == []


@pytest.mark.parametrize(
    "legacy",
    [
        "start\n...\n  ValueError: x  \ndone",  # stored before the gutter existed
        "1| a\nplain\n3| c",  # a line without a gutter: the whole context is legacy
        "5| a\n3| b",  # numbers going down: not written by extraction
        "012| a",  # not the exact format
        "12 | a",
        "12|a",
        "...",
    ],
)
def test_parse_context_treats_legacy_contexts_positionally(legacy):
    assert parse_context(legacy) == [(None, text) for text in legacy.splitlines()]


def test_the_panel_numbers_legacy_contexts_by_position_and_numbered_ones_by_log_line():
    legacy = panel_lines("start\n...\n  ValueError: x  \ndone", ["ValueError: x"], ["done"])
    assert [(r.number, r.gap, r.ai, r.selected) for r in legacy] == [
        (1, False, False, False),
        (2, True, False, False),
        (3, False, True, False),
        (4, False, False, True),
    ]
    rows = panel_lines("3| start\n...\n9|   ValueError: x  \n10| ...\n10| done", ["ValueError: x"], ["done"])
    assert [(r.number, r.text, r.gap, r.ai, r.selected) for r in rows] == [
        (3, "start", False, False, False),
        (None, "...", True, False, False),
        (9, "  ValueError: x  ", False, True, False),
        (10, "...", False, False, False),
        (10, "done", False, False, True),
    ]


def test_gutter_helpers_take_only_the_exact_format():
    assert numbered(7, "x") == "7| x" and gutter(7) == "7| "
    assert split_gutter("7| 8| x") == (7, "8| x")  # one gutter only
    kept = ["7|x", " 7| x", "07| x", "x 7| y", "7 | x"]
    assert [strip_gutter(s) for s in ["7| x", *kept]] == ["x", *kept]


def answer(**fields) -> str:
    base = {
        "error_message": "KeyError: 'date'",
        "category": "data_quality",
        "severity": "high",
        "confidence": 0.8,
        "reasoning": "The record has no date (log line 7).",
        "error_lines": ["KeyError: 'date'"],
        "suggested_actions": ["Check the input"],
    }
    return AnalysisResult(**{**base, **fields}).model_dump_json()


def test_llm_error_lines_with_gutters_are_stored_as_log_text():
    result = parse_answer(answer(error_lines=["7| KeyError: 'date'", '6|   File "/dags/etl.py", line 7, in run']))
    assert result.error_lines == ["KeyError: 'date'", 'File "/dags/etl.py", line 7, in run']  # the schema trims
    untouched = ["KeyError: 'date'", "7|x", "x | y", "007| z"]
    assert parse_answer(answer(error_lines=untouched)).error_lines == untouched
    fenced = parse_answer("```json\n" + answer(error_lines=["12| boom"]) + "\n```")
    assert fenced.error_lines == ["boom"]
    assert fenced.reasoning == "The record has no date (log line 7)."  # only error lines lose a gutter
