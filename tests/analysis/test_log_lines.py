"""Log parsing: every log shape becomes the same clean lines, and junk never raises or grows memory."""

from __future__ import annotations

import json
import random
import sys
import traceback
import tracemalloc

import pytest
from structlog.tracebacks import ExceptionDictTransformer

from dagnostics_provider.analysis.log_lines import (
    A_RECORD,
    MAX_LINE_CHARS,
    MAYBE_A_RECORD,
    NOT_A_RECORD,
    LogLine,
    LogReader,
    iter_log_lines,
    plain_line_kind,
    render_error_detail,
)

AIRFLOW2_LOG = """\
[2024-05-02, 10:15:32 UTC] {taskinstance.py:1234} INFO - Starting attempt 1 of 1
[2024-05-02T10:15:33.123+0000] {taskinstance.py:2698} ERROR - Task failed with exception
Traceback (most recent call last):
  File "/opt/airflow/dags/etl.py", line 3, in load
KeyError: 'customer_id'
[2024-05-02T10:15:34.000+0000] {taskinstance.py:1138} WARNING - Marking task as FAILED.
"""


def texts(lines: list[LogLine]) -> list[str]:
    return [line.text for line in lines]


def test_airflow2_text_prefixes_are_parsed_and_continuations_inherit_them():
    lines = list(iter_log_lines([AIRFLOW2_LOG]))

    assert [line.number for line in lines] == [1, 2, 3, 4, 5, 6]
    first, failed, header, frame, exception, marking = lines
    assert first == LogLine(1, "2024-05-02, 10:15:32 UTC", "INFO", "taskinstance.py:1234", "Starting attempt 1 of 1")
    assert (failed.timestamp, failed.level, failed.text) == (
        "2024-05-02T10:15:33.123+0000",
        "ERROR",
        "Task failed with exception",
    )
    assert header.continuation and header.level == "ERROR" and header.timestamp == failed.timestamp
    assert frame.text == '  File "/opt/airflow/dags/etl.py", line 3, in load'  # indentation is kept
    assert exception.text == "KeyError: 'customer_id'"
    assert not marking.continuation and marking.level == "WARNING"


def test_airflow3_text_and_iso_prefixes():
    lines = list(
        iter_log_lines(
            [
                "[2025-05-01 10:00:00] ERROR - Task failed with exception\n",
                "2025-05-01 10:00:01,123 WARNING - disk almost full\n",
                "2025-05-01T10:00:02Z something happened\n",
            ]
        )
    )
    assert [(line.level, line.text) for line in lines] == [
        ("ERROR", "Task failed with exception"),
        ("WARNING", "disk almost full"),
        (None, "something happened"),
    ]
    assert lines[2].timestamp == "2025-05-01T10:00:02Z"


def test_plain_stdout_has_no_prefix():
    lines = list(iter_log_lines([b"hello\nworld\n"]))
    assert lines == [LogLine(1, None, None, None, "hello"), LogLine(2, None, None, None, "world")]


def _raise_chain() -> tuple:
    def inner() -> None:
        raise KeyError("customer_id")

    try:
        try:
            inner()
        except KeyError as exc:
            raise ValueError("could not load row") from exc
    except ValueError:
        return sys.exc_info()
    raise AssertionError("unreachable")


def test_json_error_detail_renders_as_python_would_print_it():
    """The structlog dicts Airflow 3 writes become the traceback text Python prints (less the source lines)."""
    exc_info = _raise_chain()
    detail = ExceptionDictTransformer(show_locals=False)(exc_info)
    record = {
        "timestamp": "2025-05-01T10:00:00.123456Z",
        "level": "error",
        "event": "Task failed with exception",
        "logger": "task",
        "error_detail": detail,
    }

    lines = list(iter_log_lines([json.dumps(record) + "\n"]))

    python = "".join(traceback.format_exception(*exc_info)).splitlines()
    source_lines = {line for line in python if line.startswith("    ")}
    expected = [line for line in python if line not in source_lines and set(line.strip()) - {"^", "~"}]
    rendered = [line for line in texts(lines)[1:] if line.strip()]
    assert rendered == [line for line in expected if line.strip()]
    assert lines[0] == LogLine(1, "2025-05-01T10:00:00.123456Z", "ERROR", "task", "Task failed with exception")
    assert all(line.number == 1 and line.continuation and line.level == "ERROR" for line in lines[1:])


def test_json_multiline_event_extras_and_exception_groups():
    records = [
        {"timestamp": "t1", "level": "info", "event": "line one\nline two", "logger": "x"},
        {"timestamp": "t2", "level": "warn", "event": "Process exited", "exit_code": -9, "signal_sent": "SIGKILL"},
        {"event": "::group::Log message source details"},
    ]
    lines = list(iter_log_lines(["\n".join(json.dumps(r) for r in records)]))
    assert texts(lines) == [
        "line one",
        "line two",
        "Process exited exit_code=-9 signal_sent=SIGKILL",
        "::group::Log message source details",
    ]
    assert lines[2].level == "WARNING" and lines[3].timestamp is None

    group = [
        {
            "exc_type": "ExceptionGroup",
            "exc_value": "two failures (2 sub-exceptions)",
            "frames": [],
            "is_group": True,
            "exceptions": [
                {"stacks": [{"exc_type": "ValueError", "exc_value": "a", "frames": []}]},
                {"stacks": [{"exc_type": "TypeError", "exc_value": "b", "frames": []}]},
            ],
        }
    ]
    rendered = render_error_detail(group)
    assert rendered[0] == "ExceptionGroup: two failures (2 sub-exceptions)"
    assert "ValueError: a" in rendered and "TypeError: b" in rendered


def test_json_like_lines_that_are_not_records_stay_text():
    lines = list(iter_log_lines(['{"not": "a log record"}\n', "{broken json\n", '{"event": 1}\n']))
    assert texts(lines) == ['{"not": "a log record"}', "{broken json", "1"]


def test_any_chunking_gives_the_same_lines():
    data = (
        AIRFLOW2_LOG + "naïve ünïcode \u2713 \u00e9\r\n" + json.dumps({"event": "é", "level": "info"}) + "\n"
    ).encode()
    expected = list(iter_log_lines([data]))
    rng = random.Random(3)
    for _ in range(50):
        cuts = sorted(rng.sample(range(1, len(data)), 8))
        chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        assert list(iter_log_lines(chunks)) == expected
    assert list(iter_log_lines([bytes([b]) for b in data])) == expected


def test_junk_bytes_never_raise():
    junk = bytes(range(256)) * 50 + b"\xff\xfe\xfd\n\x00\x00ERROR\x00 here\n\x1b[31mred\x1b[0m text\r\n"
    lines = list(iter_log_lines([junk]))
    assert lines[-2].text == "ERROR here"
    assert lines[-1].text == "red text"
    assert all("\x00" not in line.text and "\x1b" not in line.text for line in lines)
    assert list(iter_log_lines([])) == []
    assert list(iter_log_lines([b"", ""])) == []


def test_carriage_return_progress_bars_keep_what_a_terminal_shows():
    lines = list(iter_log_lines(["  10%\r  50%\r 100% done\r\n"]))
    assert texts(lines) == [" 100% done"]


def test_overlong_lines_are_cut_keeping_the_start():
    reader = LogReader()
    line = "ERROR: start " + "x" * (3 * MAX_LINE_CHARS)
    lines = list(reader.lines([line + "\nnext\n"]))
    assert texts(lines)[0] == line[:MAX_LINE_CHARS]
    assert texts(lines)[1] == "next"
    assert reader.truncated_lines == 1


def test_a_50_mb_single_line_costs_bounded_memory():
    def stream():
        yield b"ERROR boom "
        for _ in range(50):
            yield b"y" * (1 << 20)
        yield b"\nafter\n"

    tracemalloc.start()
    try:
        lines = list(iter_log_lines(stream()))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert texts(lines)[0].startswith("ERROR boom yyy") and len(texts(lines)[0]) == MAX_LINE_CHARS
    assert texts(lines)[1] == "after"
    assert peak < 8 * (1 << 20)


@pytest.mark.parametrize("chunk", [b"\n\n\n", "\r\n\r\n", b"\xff" * 10])
def test_degenerate_inputs(chunk):
    lines = list(iter_log_lines([chunk]))
    assert all(isinstance(line, LogLine) for line in lines)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("[2024-05-02, 10:15:32 UTC] {x.py:1} INFO - rows loaded", A_RECORD),
        ("2024-05-02 10:15:32,123 INFO rows loaded", A_RECORD),
        ("plain stdout", NOT_A_RECORD),
        ('{"timestamp":"t","level":"info","event":"rows loaded","logger":"x"}', MAYBE_A_RECORD),
        ("[2024-05-02, 10:15:32 UTC] {x.py:1} INFO -", None),  # blank message
        ("[2024-05-02, 10:15:32 UTC] {x.py:1} INFO -glued", None),  # no space after the dash: blank too
        ("2024-05-02 10:15:32 INFO ", None),
        ("", None),
        ("  indented", None),
        ('{"event":""}', None),
        ('{"event":null}', None),
        ('{"event":" leading"}', None),
        ('{"event":"a\\nb"}', None),
        ('{"event":"x","exit_code":1}', None),
        ('{"event":"x","error_detail":[]}', None),
        ("x" * (MAX_LINE_CHARS + 1), None),
    ],
)
def test_plain_line_kind_says_which_lines_render_simply(text, kind):
    assert plain_line_kind(text) == kind
    if kind is not None:  # one non-blank line, a substring of the physical line
        (line,) = LogReader().render(1, text.encode())
        assert line.text.strip() and line.text in text
