"""The one numbering of log context lines: each line carries its line number in the task log as a gutter.

A log context (what extraction builds for the LLM, stores as ``failed_tasks.log_excerpt``, shows on the review page
and puts into training text) is a bounded excerpt of a task log.  Every line of it starts with the number of the
physical log line it comes from, in the exact format ``f"{number}| {text}"``, e.g.::

    12| [2026-11-02T03:31:15] ERROR - psycopg2.OperationalError: connection refused
    ...
    40|   File "/opt/airflow/dags/etl.py", line 22, in load

The number is 1-based and counts the physical lines of the whole log, the numbering Airflow's own log view shows:
the lines rendered from one record (an Airflow 3 JSON record with a multi-line message or a traceback) share the
number of that record's line.  It is :attr:`LogLine.number <dagnostics_provider.analysis.log_lines.LogLine>`, the
number the heuristic analysis' reasoning cites ("log line 12"), so the reasoning, the review page's highlights, the
LLM prompt and the training text all refer to the same lines.  Lines that were left out are marked by a line that
is exactly :data:`GAP` (no number).

Error lines (an analysis' ``error_lines``, a reviewer's correction) are log text: they never carry the gutter.

Contexts stored before the gutter existed (and the listener's traceback text, shown when no context was stored)
have no numbers; :func:`parse_context` recognises them as a whole and reports no numbers for them.
"""

from __future__ import annotations

import re

GAP = "..."  # a context line that says lines were left out here
GUTTER_SEPARATOR = "| "

_GUTTER = re.compile(r"([1-9][0-9]*)\| ")


def gutter(number: int) -> str:
    """The prefix of a context line from log line ``number``."""
    return f"{number}{GUTTER_SEPARATOR}"


def numbered(number: int, text: str) -> str:
    """A context line: ``text`` from log line ``number``, in the one gutter format."""
    return f"{number}{GUTTER_SEPARATOR}{text}"


def split_gutter(line: str) -> tuple[int | None, str]:
    """``(number, text)`` of one context line; ``(None, line)`` when it does not start with a gutter."""
    match = _GUTTER.match(line)
    if match is None:
        return None, line
    return int(match.group(1)), line[match.end() :]


def strip_gutter(line: str) -> str:
    """``line`` without a leading gutter (exactly the format of :func:`numbered`), otherwise unchanged."""
    return split_gutter(line)[1]


def parse_context(context: str | None) -> list[tuple[int | None, str]]:
    """Split a log context into ``(log line number, text without gutter)``, one pair per line.

    Gap markers give ``(None, GAP)``.  A context is read as numbered only when every line is a gap marker or starts
    with a gutter and the numbers never go down (the order extraction writes them in); otherwise it is a *legacy*
    context (stored before the gutter existed, or text that is not a context at all) and every line comes back
    unchanged with ``None``, so whoever shows it numbers it by position, as before.  A numbered context is split
    on ``"\\n"`` only (the one separator extraction writes); a legacy one with :meth:`str.splitlines`, as before.
    """
    if not context:
        return []
    lines = context.split("\n")
    parsed: list[tuple[int | None, str]] = []
    previous = 0
    for line in lines:
        if line == GAP:
            parsed.append((None, GAP))
            continue
        number, text = split_gutter(line)
        if number is None or number < previous:
            return [(None, text) for text in context.splitlines()]
        parsed.append((number, text))
        previous = number
    if previous == 0:  # nothing but gap markers
        return [(None, text) for text in context.splitlines()]
    return parsed


def context_texts(context: str | None) -> list[str]:
    """The log text of every line of a context (gutters removed; gap markers and legacy lines as they are)."""
    return [text for _, text in parse_context(context)]
