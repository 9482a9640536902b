"""Turn a task log, read as a stream of chunks, into clean :class:`LogLine` records.

Task logs come in several shapes: Airflow 2 text (``[ts] {file.py:12} LEVEL - msg`` with unprefixed traceback
lines), Airflow 3 structured JSON lines (``{"timestamp","level","event","logger","error_detail"}``), and plain
stdout.  Everything downstream works on one shape, so JSON exception details are rendered back into the Python
traceback text that a text log would have shown.

Logs are untrusted input: binary bytes, invalid UTF-8, NUL bytes, CRLF, colour escapes and single lines of many
megabytes all occur.  Reading is incremental and every line is bounded, so a 100 MB log costs bounded memory and
junk never raises.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

# A rendered line longer than this keeps its start: the error text is at the front, the rest is usually a payload.
MAX_LINE_CHARS = 4_096
# A physical line may be longer than a rendered one because one JSON record can carry a whole traceback.
MAX_RECORD_BYTES = 1 << 20
# :meth:`LogReader.blocks` gathers small chunks into blocks of about this size.
BLOCK_BYTES = 1 << 20
# Rendering of JSON exception details is bounded the same way a huge traceback in a text log would be.
MAX_FRAMES_PER_STACK = 100
MAX_STACKS = 20
MAX_GROUP_DEPTH = 3

CAUSE_SEPARATOR = "The above exception was the direct cause of the following exception:"
CONTEXT_SEPARATOR = "During handling of the above exception, another exception occurred:"
TRACEBACK_HEADER = "Traceback (most recent call last):"

_LEVELS = {"WARN": "WARNING", "FATAL": "CRITICAL", "EXCEPTION": "ERROR", "ERR": "ERROR", "SEVERE": "ERROR"}

# Airflow 2 (``[ts] {file.py:12} INFO - msg``) and Airflow 3's text rendering (``[ts] INFO - msg``).
_AIRFLOW_PREFIX = re.compile(
    r"\[(?P<ts>\d{4}-\d{2}-\d{2}[^\]]{0,40})\]\s+(?:\{(?P<logger>[^}]{0,200})\}\s+)?"
    r"(?P<level>DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL)\s+-(?: (?P<msg>.*))?"
)
# Python logging and most tools: an ISO timestamp first, an optional level, then the message.
_ISO_PREFIX = re.compile(
    r"(?P<ts>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2}| ?UTC)?)"
    r"(?P<logger>)\s*(?:[-|]\s*)?(?:\[?(?P<level>DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL)\]?(?:\s*[-:|])?\s+)?"
    r"(?P<msg>.*)"
)
_ANSI = re.compile(r"\x1b(?:\[[0-9;?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# Extra keys of a JSON record that carry failure facts (``Process exited exit_code=-9 signal_sent=SIGKILL``).
_JSON_EXTRA_KEYS = ("exit_code", "return_code", "signal_sent", "signal", "reason", "error", "state")


class LogLine(NamedTuple):
    """One rendered line of a task log (a named tuple: a 100 MB log makes a million of them).

    ``number`` is the 1-based physical line of the original log; the lines rendered from one JSON record (a
    multi-line message or its traceback) share it.  It is the one line number DAGnostics shows anywhere: the
    heuristic reasoning's "log line N" and the gutter of the log context (:mod:`context_lines`).
    ``continuation`` marks a line without a prefix of its own: it belongs to the record above and inherits its
    timestamp, level and logger.
    """

    number: int
    timestamp: str | None
    level: str | None
    logger: str | None
    text: str
    continuation: bool = False


class LogReader:
    """Incremental parser; its counters describe the stream once it has been read."""

    def __init__(self) -> None:
        self.physical_lines = 0
        self.truncated_lines = 0
        self._record: LogLine | None = None
        self._pending = bytearray()
        self._dropping = False
        self._number = 0

    @property
    def record(self) -> LogLine | None:
        """The last line with a prefix (or JSON record): the one that unprefixed lines continue."""
        return self._record

    @record.setter
    def record(self, line: LogLine | None) -> None:
        self._record = line

    def lines(self, chunks: Iterable[bytes | str]) -> Iterator[LogLine]:
        """Yield the rendered lines of a log given as chunks of bytes or text, in order."""
        for number, raw in self._physical(chunks):
            yield from self.render(number, raw)

    def render(self, number: int, raw: bytes) -> Iterator[LogLine]:
        """Yield the rendered lines of one physical line, updating the counters and the record it continues."""
        self.physical_lines = number
        text = _clean(raw.decode("utf-8", "replace"))
        if text.lstrip()[:1] == "{":
            record = _json_record(text.strip())
            if record is not None:
                yield from self._structured(number, record)
                return
        yield self._text_line(number, text)

    def blocks(self, chunks: Iterable[bytes | str]) -> Iterator[tuple[int, bytes]]:
        """Split chunks into blocks of whole physical lines, for scanners that look at many lines at once.

        Yields ``(number, block)``: ``block.split(b"\\n")`` are the physical lines numbered from ``number`` on, cut
        exactly as :meth:`lines` cuts them (an overlong line keeps its first :data:`MAX_RECORD_BYTES`).  Small chunks
        are gathered up to :data:`BLOCK_BYTES` so that the per-block cost stays small next to the per-byte cost;
        at most one block, one chunk and one bounded partial line are held at a time.  The counters are left to
        the caller, who decides which lines it renders.
        """
        self._pending = bytearray()
        self._dropping = False  # inside an overlong line: the rest of it is discarded up to its newline
        self._number = 0
        buffered: list[bytes] = []
        size = 0
        for chunk in chunks:
            data = chunk.encode("utf-8", "replace") if isinstance(chunk, str) else bytes(chunk)
            if not data:
                continue
            buffered.append(data)
            size += len(data)
            if size >= BLOCK_BYTES:
                block = self._block(buffered[0] if len(buffered) == 1 else b"".join(buffered))
                buffered, size = [], 0
                if block is not None:
                    yield block
        if buffered:
            block = self._block(b"".join(buffered))
            if block is not None:
                yield block
        if self._pending or self._dropping:
            yield self._number + 1, bytes(self._pending)

    def _block(self, data: bytes) -> tuple[int, bytes] | None:
        """The whole lines that ``data`` completes (None if it ends none); the partial last line is kept."""
        end = data.rfind(b"\n")
        if end < 0:
            self._hold(data)
            return None
        first = data.find(b"\n")
        pending = self._pending
        if not self._dropping:
            pending += data[:first][: MAX_RECORD_BYTES - len(pending)]
        if first == end:
            block = bytes(pending)
        else:
            body = data[first + 1 : end]
            if len(body) > MAX_RECORD_BYTES and max(map(len, body.split(b"\n"))) > MAX_RECORD_BYTES:
                body = b"\n".join(line[:MAX_RECORD_BYTES] for line in body.split(b"\n"))
            block = bytes(pending) + b"\n" + body
        number = self._number + 1
        self._number += block.count(b"\n") + 1
        pending.clear()
        self._dropping = False
        self._hold(data[end + 1 :])
        return number, block

    def _hold(self, tail: bytes) -> None:
        if not self._dropping:
            room = MAX_RECORD_BYTES - len(self._pending)
            self._pending += tail[:room]
            self._dropping = len(tail) > room

    @staticmethod
    def _physical(chunks: Iterable[bytes | str]) -> Iterator[tuple[int, bytes]]:
        """Split chunks into physical lines, holding at most one bounded partial line between chunks."""
        pending = bytearray()
        dropping = False  # inside an overlong line: the rest of it is discarded up to its newline
        number = 0
        for chunk in chunks:
            data = chunk.encode("utf-8", "replace") if isinstance(chunk, str) else bytes(chunk)
            if not data:
                continue
            parts = data.split(b"\n")
            if len(parts) > 1:
                if not dropping:
                    pending += parts[0][: MAX_RECORD_BYTES - len(pending)]
                number += 1
                yield number, bytes(pending)
                for part in parts[1:-1]:
                    number += 1
                    yield number, part[:MAX_RECORD_BYTES]
                pending.clear()
                dropping = False
            last = parts[-1]
            if not dropping:
                room = MAX_RECORD_BYTES - len(pending)
                pending += last[:room]
                dropping = len(last) > room
        if pending or dropping:
            yield number + 1, bytes(pending)

    def _text_line(self, number: int, text: str) -> LogLine:
        match = _AIRFLOW_PREFIX.match(text) if text[:1] == "[" else None
        if match is None and text[:1].isdigit():
            match = _ISO_PREFIX.match(text)
        if match is not None:
            timestamp, logger, level, message = match.group("ts", "logger", "level", "msg")
            line = LogLine(number, timestamp, _LEVELS.get(level, level), logger or None, self._bound(message or ""))
            self._record = line
            return line
        record = self._record
        if record is None:
            return LogLine(number, None, None, None, self._bound(text))
        return LogLine(number, record.timestamp, record.level, record.logger, self._bound(text), continuation=True)

    def _bound(self, text: str) -> str:
        if len(text) <= MAX_LINE_CHARS:
            return text
        self.truncated_lines += 1
        return text[:MAX_LINE_CHARS]

    def _structured(self, number: int, record: dict[str, Any]) -> Iterator[LogLine]:
        timestamp = _string(record.get("timestamp"))
        level = _level(_string(record.get("level")))
        logger = _string(record.get("logger"))
        event = record.get("event")
        message = event if isinstance(event, str) else ("" if event is None else _compact(event))
        extras = [f"{key}={_compact(record[key])}" for key in _JSON_EXTRA_KEYS if record.get(key) not in (None, "")]
        if extras:
            message = f"{message} {' '.join(extras)}" if message else " ".join(extras)
        rendered = message.split("\n")
        detail = record.get("error_detail")
        if detail is None:
            detail = record.get("exception")
        if detail:
            rendered.extend(render_error_detail(detail))
        first = LogLine(number, timestamp, level, logger, self._bound(_clean(rendered[0])))
        self._record = first
        yield first
        for text in rendered[1:]:
            yield LogLine(number, timestamp, level, logger, self._bound(_clean(text)), continuation=True)


# What :func:`plain_line_kind` says about the record a plain line leaves behind for the lines after it.
NOT_A_RECORD = 0  # the line continues the record above; it does not replace it
A_RECORD = 1  # the line has a prefix: it becomes the record
MAYBE_A_RECORD = 2  # a JSON-looking line: it becomes the record if it parses as one

# A JSON line whose rendering needs a closer look: an event that is not a plain string (null, empty, a number, an
# object, leading blanks), or a key that adds text or lines (extras, exception details).
_JSON_NOT_PLAIN = re.compile(
    r'"(?:event"\s*:\s*(?!"[^"\s])|(?:'
    + "|".join(re.escape(key) for key in (*_JSON_EXTRA_KEYS, "error_detail", "exception"))
    + r')"\s*:)'
)


def plain_line_kind(text: str) -> int | None:
    """Whether a physical line renders simply, and if so, whether it becomes the record (see :data:`A_RECORD`).

    A line renders simply when it gives exactly one :class:`LogLine` whose text is not blank, is not truncated and is
    a substring of ``text``; for any other line this returns None.  ``text`` must be printable ASCII (``_clean``
    leaves it unchanged).  The answer depends only on the shape of the line, not on which digits it has, so a caller
    may ask once for all lines that differ only in their digits.  This lets a scanner skip most lines of a big log
    without rendering them while knowing exactly what rendering them would have given.
    """
    if not text or text[0] == " " or len(text) > MAX_LINE_CHARS:
        return None
    if text[0] == "{":
        # Without escapes, the event of a record is a substring of the line; anything else is not simple.
        return None if "\\" in text or _JSON_NOT_PLAIN.search(text) else MAYBE_A_RECORD
    match = _AIRFLOW_PREFIX.match(text) if text[0] == "[" else None
    if match is None and text[0].isdigit():
        match = _ISO_PREFIX.match(text)
    if match is None:
        return NOT_A_RECORD
    return A_RECORD if (match.group("msg") or "").strip() else None  # a prefix with no message renders blank


def iter_log_lines(chunks: Iterable[bytes | str]) -> Iterator[LogLine]:
    """Yield the rendered lines of a log streamed as chunks (bytes or text); never raises on junk input."""
    return LogReader().lines(chunks)


def render_error_detail(detail: Any) -> list[str]:
    """Render Airflow 3's ``error_detail`` (structlog's exception dicts) as the equivalent Python traceback text.

    structlog lists the raised exception first and its causes after it, each flagged ``is_cause`` (``__cause__``)
    or not (``__context__``); Python prints the innermost cause first, so the list is walked backwards.
    """
    if isinstance(detail, str):
        return detail.split("\n")
    if not isinstance(detail, list):
        return [_compact(detail)]
    return _render_stacks(detail, depth=0)


def _render_stacks(stacks: list[Any], depth: int) -> list[str]:
    stacks = [s for s in stacks if isinstance(s, dict)][:MAX_STACKS]
    lines: list[str] = []
    for i in range(len(stacks) - 1, -1, -1):
        lines.extend(_render_stack(stacks[i], depth))
        if i > 0:
            lines.extend(["", CAUSE_SEPARATOR if stacks[i].get("is_cause") else CONTEXT_SEPARATOR, ""])
    return lines


def _render_stack(stack: dict[str, Any], depth: int) -> list[str]:
    lines: list[str] = []
    frames = [f for f in stack.get("frames") or [] if isinstance(f, dict)]
    if frames:
        lines.append(TRACEBACK_HEADER)
        if len(frames) > MAX_FRAMES_PER_STACK:
            lines.append(f"  [{len(frames) - MAX_FRAMES_PER_STACK} frames omitted]")
            frames = frames[-MAX_FRAMES_PER_STACK:]
        for frame in frames:
            filename, lineno, name = frame.get("filename", "?"), frame.get("lineno", "?"), frame.get("name", "?")
            lines.append(f'  File "{filename}", line {lineno}, in {name}')
    syntax = stack.get("syntax_error")
    if isinstance(syntax, dict):
        lines.append(f'  File "{syntax.get("filename", "?")}", line {syntax.get("lineno", "?")}')
        source = str(syntax.get("line") or "").strip()
        if source:
            offset = syntax.get("offset")
            lines.append(f"    {source}")
            if isinstance(offset, int) and offset > 0:
                lines.append("    " + " " * (offset - 1) + "^")
    exc_type = str(stack.get("exc_type") or "Exception")
    exc_value = str(stack.get("exc_value") or "")
    value_lines = exc_value.split("\n")
    lines.append(f"{exc_type}: {value_lines[0]}" if exc_value else exc_type)
    lines.extend(value_lines[1:])
    lines.extend(str(note) for note in stack.get("exc_notes") or [])
    if stack.get("is_group") and depth < MAX_GROUP_DEPTH:
        for index, trace in enumerate(stack.get("exceptions") or [], start=1):
            if isinstance(trace, dict):
                lines.append(f"+---------------- {index} ----------------")
                lines.extend(_render_stacks(trace.get("stacks") or [], depth + 1))
    return lines


def _json_record(text: str) -> dict[str, Any] | None:
    try:
        record = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if isinstance(record, dict) and ("event" in record or "error_detail" in record):
        return record
    return None


def _clean(text: str) -> str:
    """Drop what a terminal would not show: line-end CR, text overwritten by a bare CR, escapes, control bytes."""
    if "\r" in text:
        text = text.rstrip("\r")
        if "\r" in text:
            text = next((part for part in reversed(text.split("\r")) if part.strip()), "")
    if text.isascii() and text.isprintable():  # the common case, checked in C
        return text
    if "\x1b" in text:
        text = _ANSI.sub("", text)
    return _CONTROL.sub("", text)


def _level(value: str | None) -> str | None:
    if not value:
        return None
    value = value.upper()
    return _LEVELS.get(value, value)


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) else (None if value is None else str(value))


def _compact(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)[:MAX_LINE_CHARS]
    except (TypeError, ValueError, RecursionError):
        return str(value)[:MAX_LINE_CHARS]
