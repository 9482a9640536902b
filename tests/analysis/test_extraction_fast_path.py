"""The block-wise fast path of extraction gives exactly what scanning every line one by one gives."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from unittest import mock

import pytest

from dagnostics_provider.analysis.block_scan import _trie_words, plain_triggers
from dagnostics_provider.analysis.extraction import (
    NARRATIVE_LINES,
    Extraction,
    _extract_per_line,
    _Scanner,
    extract,
)
from dagnostics_provider.analysis.log_lines import MAX_RECORD_BYTES, LogReader
from dagnostics_provider.analysis.rules import RuleSet, load_rules, trie_pattern

RULES = load_rules()
CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "logs"
CONTEXT = 6000


def summary(extraction: Extraction) -> dict:
    """Everything an Extraction says, with candidates and their evidence spelled out (Candidate has no __eq__)."""
    return {
        "root_cause": extraction.root_cause,
        "error_lines": extraction.error_lines,
        "exception_type": extraction.exception_type,
        "context": extraction.context,
        "total_lines": extraction.total_lines,
        "truncated": extraction.truncated,
        "candidates": [
            (
                c.line,
                c.kind,
                c.rule.id if c.rule else None,
                c.exception_type,
                c.weight,
                c.score,
                c.count,
                c.seq,
                c.level_penalty,
                c.side_effect,
                c.not_an_error,
                c.chain,
                c.chain_position,
                c.java_depth,
                c.window,
            )
            for c in extraction.candidates
        ],
    }


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def assert_same(chunks: list, rules: RuleSet = RULES, context: int = CONTEXT) -> Extraction:
    """Both paths give the same Extraction, and the same narrative (the context shows only part of it)."""
    narratives = []
    narrative = _Scanner._narrative

    def spy(scanner: _Scanner):
        lines = narrative(scanner)
        narratives.append(list(lines))
        return lines

    with mock.patch.object(_Scanner, "_narrative", spy):
        fast = extract(iter(chunks), rules=rules, max_context_chars=context)
        slow = _extract_per_line(iter(chunks), rules=rules, max_context_chars=context)
    assert summary(fast) == summary(slow)
    assert narratives[0] == narratives[1]
    return fast


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.log")), ids=lambda p: p.name)
def test_every_corpus_log_gives_the_same_extraction(path):
    data = path.read_bytes()
    for size in (len(data) or 1, 4096, 97):
        assert_same(chunked(data, size))
    assert_same([data.decode("utf-8", "replace")])
    assert_same(chunked(data, 4096), context=300)


def test_one_byte_chunks():
    for path in sorted(CORPUS.glob("af2_*.log"))[:2]:  # the corpus changes; any Airflow 2 logs will do
        assert_same(chunked(path.read_bytes(), 1))
    assert_same(chunked(generated_text(300, seed=4), 1))


def airflow2_line(rng: random.Random, n: int) -> str:
    messages = [
        f"Processing batch {n} of {rng.randint(100, 9000)}: {rng.randint(1, 10**6)} rows",
        f"HTTP GET https://api.example.com/v1/items?page={n} -> 200 ({rng.random():.3f}s)",
        f"Checkpoint written: offset={rng.randint(1, 10**6)} partition={n % 60}",
        f"GET https://api.example.com/v1/items?page={n} failed: 503 Server Error, retrying in 5s",
        f"HTTP 401 at page {n}",
        "Connection reset while reading, retrying in 5s",
    ]
    level = "WARNING" if n % 97 == 0 else "INFO"
    return f"[2024-05-02, 10:{n // 60 % 60:02d}:{n % 60:02d} UTC] {{subprocess.py:93}} {level} - {rng.choice(messages)}"


TRACEBACK = """\
Traceback (most recent call last):
  File "/opt/airflow/dags/etl.py", line 22, in load
    cursor.execute(sql)
psycopg2.errors.UndefinedTable: relation "analytics.daily_orders" does not exist
LINE 1: INSERT INTO analytics.daily_orders SELECT * FROM stg
"""
JAVA = """\
py4j.protocol.Py4JJavaError: An error occurred while calling o123.save.
: org.apache.spark.SparkException: Job aborted due to stage failure
\tat org.apache.spark.scheduler.DAGScheduler.abortStage(DAGScheduler.scala:2403)
Caused by: java.lang.OutOfMemoryError: Java heap space
\t... 25 more
"""
# Lines that look plain at a glance but are not: each must take the per-line path.
ODD_LINES = [
    "",
    "   ",
    "[2024-05-02, 10:00:00 UTC] {x.py:1} INFO -",
    "[2024-05-02, 10:00:00 UTC] {x.py:1} INFO -no space",
    "[2024-05-02, 10:00:00 UTC] {x.py:1} INFO -    ",
    '[2024-05-02, 10:00:00 UTC] {x.py:1} INFO -   File "x.py", line 3, in f',
    "2024-05-02 10:00:00,123 INFO ",
    "2024-05-02 10:00:00",
    "2024-05-02T10:00:00.123456789Z -",
    "plain stdout without a prefix",
    "    at com.example.Job.run(Job.java:12)",
    "The above exception was the direct cause of the following exception:",
    "During handling of the above exception, another exception occurred:",
    "\x1b[31mcolour\x1b[0m done",
    "progress 10%\r progress 100%",
    "windows line\r",
    "naïve ünïcode ✓",
    "nul\x00byte",
    "tab\tseparated",
    "x" * 5000,
    "[2024-05-02, 10:00:00 UTC] {email.py:270} ERROR - Failed to send email to: ['oncall@example.com']",
    "unprefixed continuation",
]


def generated_text(lines: int, seed: int, odd: float = 0.0) -> bytes:
    """An Airflow 2 text log with failures, tracebacks and odd lines scattered through plain ones."""
    rng = random.Random(seed)
    out = []
    for n in range(lines):
        roll = rng.random()
        if roll < odd:
            out.append(rng.choice(ODD_LINES))
        elif roll < odd + 0.004:
            out.append(TRACEBACK.rstrip("\n"))
        elif roll < odd + 0.006:
            out.append(JAVA.rstrip("\n"))
        else:
            out.append(airflow2_line(rng, n))
    out.append(TRACEBACK + "[2024-05-02, 11:59:59 UTC] {taskinstance.py:1138} INFO - Marking task as FAILED.")
    return ("\n".join(out) + "\n").encode()


def json_record(rng: random.Random, n: int) -> dict:
    record = {
        "timestamp": f"2025-05-02T10:{n // 60 % 60:02d}:{n % 60:02d}.{rng.randint(0, 999999):06d}Z",
        "level": "info",
        "event": f"Processing batch {n}: {rng.randint(1, 10**6)} rows",
        "logger": "task.stdout",
    }
    roll = rng.random()
    if roll < 0.05:
        record["event"] = rng.choice(["", None, " leading blank", 12, {"nested": "event"}, "two\nlines", "é"])
    elif roll < 0.07:
        record["exit_code"] = rng.choice([0, -9, ""])
    elif roll < 0.08:
        record["event"] = "Task failed with exception"
        record["level"] = "error"
        record["error_detail"] = [
            {
                "exc_type": "UndefinedTable",
                "exc_value": 'relation "analytics.daily_orders" does not exist',
                "is_cause": False,
                "frames": [{"filename": "/opt/airflow/dags/etl.py", "lineno": 22, "name": "load"}],
            }
        ]
    elif roll < 0.09:
        record["event"] = "HTTP 429 Too Many Requests"
    return record


def generated_json(lines: int, seed: int, junk: float = 0.0) -> bytes:
    rng = random.Random(seed)
    out = []
    for n in range(lines):
        if rng.random() < junk:
            out.append(rng.choice([*ODD_LINES, '{"not": "a record"}', "{broken json", '{"event": "a\\\\b"}']))
        else:
            out.append(json.dumps(json_record(rng, n), separators=(",", ":")))
    return ("\n".join(out) + "\n").encode()


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("odd", [0.0, 0.002, 0.05, 0.3])
def test_generated_airflow2_logs(seed, odd):
    data = generated_text(3000, seed, odd)
    for size in (len(data), 1 << 16, 3001):
        assert_same(chunked(data, size))
    assert_same([data.decode("utf-8", "replace")])


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("junk", [0.0, 0.01, 0.2])
def test_generated_airflow3_json_logs(seed, junk):
    data = generated_json(3000, seed, junk)
    for size in (len(data), 1 << 16, 3001):
        assert_same(chunked(data, size))


def test_mixed_logs_crlf_and_no_final_newline():
    data = generated_text(2000, 9, 0.01) + generated_json(2000, 9, 0.01) + generated_text(500, 10)
    assert_same(chunked(data, 8191))
    assert_same(chunked(data.replace(b"\n", b"\r\n"), 8191))
    assert_same(chunked(data.rstrip(b"\n"), 8191))
    assert_same(chunked(data.rstrip(b"\n") + b"\n" + b"x" * 100, 8191))


def test_plain_stdout_without_prefixes():
    rng = random.Random(5)
    lines = [f"row {i} loaded id={rng.randint(1, 10**9)}" for i in range(5000)]
    lines[2500] = "ERROR: duplicate key value violates unique constraint"
    lines[4000:4000] = TRACEBACK.splitlines()
    assert_same(chunked(("\n".join(lines) + "\n").encode(), 1 << 14))


def test_the_narrative_reaches_back_over_skipped_runs():
    """A log ending in a long traceback: the narrative's lines come from before it, across several skips."""
    rng = random.Random(2)
    lines = [airflow2_line(rng, n) for n in range(2000)]
    frames = [f'  File "/opt/x{i}.py", line {i}, in f' for i in range(300)]
    for at in (1500, 1600, 1700, 1800, 1900):
        lines.insert(at, "[2024-05-02, 11:00:00 UTC] {x.py:1} ERROR - Something failed")
    data = "\n".join([*lines, "Traceback (most recent call last):", *frames, "KeyError: 'x'"]) + "\n"
    assert_same(chunked(data.encode(), 1 << 12))
    short = [airflow2_line(rng, n) for n in range(NARRATIVE_LINES // 2)]
    assert_same(["\n".join([*short, *lines[:400], "ERROR boom", *short]) + "\n"])


def test_many_candidates_and_side_effects():
    rng = random.Random(8)
    lines = []
    for n in range(6000):
        if n % 7 == 0:
            lines.append(f"[2024-05-02, 10:00:00 UTC] {{x.py:1}} ERROR - widget-{rng.randint(0, 10**6)} broke")
        elif n % 501 == 0:
            lines.append("[2024-05-02, 10:00:00 UTC] {email.py:1} ERROR - Failed to send email")
            lines.extend(f"unprefixed email detail {i}" for i in range(40))
        else:
            lines.append(airflow2_line(rng, n))
    assert_same(chunked(("\n".join(lines) + "\n").encode(), 1 << 15))


def test_custom_triggers_and_non_trie_triggers():
    data = generated_text(3000, 3, 0.01)
    words = _trie_words(RULES.triggers.pattern)
    assert words is not None and trie_pattern(words) == RULES.triggers.pattern
    for triggers in (["batch"], ["rows", " 200 ", "page=1", "échec"], []):
        rules = RuleSet(RULES.rules, RULES.boilerplate, RULES.side_effects, re.compile(trie_pattern(triggers)))
        assert plain_triggers(rules.triggers.pattern, rules.triggers.flags) is not None
        assert_same(chunked(data, 1 << 15), rules=rules)
    opaque = RuleSet(RULES.rules, RULES.boilerplate, RULES.side_effects, re.compile(r"err\w+|fail"))
    assert plain_triggers(opaque.triggers.pattern, opaque.triggers.flags) is None
    assert_same(chunked(data, 1 << 15), rules=opaque)


@pytest.mark.parametrize("seed", range(20))
def test_blocks_cut_lines_exactly_as_the_per_line_reader(seed):
    rng = random.Random(seed)
    pieces = [b"a\n", b"\n", b"bc", b"\r\n", b"x" * 300, b"\xff\xfe", "é\n".encode()]
    data = b"".join(rng.choice(pieces) for _ in range(400))
    cuts = sorted(rng.sample(range(1, len(data)), 30))
    chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    expected = list(LogReader._physical(chunks))
    blocks = [
        (number + i, line) for number, block in LogReader().blocks(chunks) for i, line in enumerate(block.split(b"\n"))
    ]
    assert blocks == expected


def test_blocks_truncate_overlong_lines():
    big = b"y" * (MAX_RECORD_BYTES + 10)
    for chunks in ([b"a\n" + big + b"\nb\n" + big], [big[:5], big + b"\n" + big, b"\nend"]):
        expected = list(LogReader._physical(chunks))
        got = [(n + i, line) for n, block in LogReader().blocks(chunks) for i, line in enumerate(block.split(b"\n"))]
        assert got == expected
