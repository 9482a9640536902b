"""The fast path of root-cause extraction: look at whole blocks of log lines, feed the scanner only those that matter.

A big log is mostly plain lines: progress, row counts, HTTP 200s.  Rendering and scanning each of them in Python
costs microseconds, so :class:`BlockScanner` looks at whole blocks of lines with a few C-speed operations and hands
the scanner only the lines that can matter.  Lines are compared by their *shape*, the line with every digit made 0:
a 100 MB log has few shapes, and each is classified once.  The result is identical to scanning every line
(tests/analysis/test_extraction_fast_path.py compares the two on every corpus log and on generated ones).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from itertools import compress, count
from typing import TYPE_CHECKING

from dagnostics_provider.analysis.log_lines import (
    CAUSE_SEPARATOR,
    CONTEXT_SEPARATOR,
    TRACEBACK_HEADER,
    LogLine,
    LogReader,
    plain_line_kind,
)
from dagnostics_provider.analysis.rules import trie_pattern

if TYPE_CHECKING:
    from dagnostics_provider.analysis.extraction import _Scanner

_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_PRINTABLE = bytes(range(0x20, 0x7F))
_DIGIT_TO_ZERO_TEXT = str.maketrans("123456789", "000000000")
# A line whose shape contains one of these may be part of a traceback, whatever its level.  Substrings of what
# ``_traceback_role`` and ``_FRAME`` look for, so that they hold for the rendered text inside the line too.
_STRUCTURE = re.compile(
    "|".join(
        [
            re.escape(TRACEBACK_HEADER),
            re.escape(CAUSE_SEPARATOR),
            re.escape(CONTEXT_SEPARATOR),
            r'File "',
            r" at [\w$.<>/]+\(",
            r"\.\.\. \d+ (?:more|common frames)",
        ]
    )
)
_PLAIN = 0  # with the record kind of :func:`plain_line_kind` in the low bits
_CHECK = 4  # plain, unless the line has a trigger word with digits (its shape has the word with digits made 0)
_FEED = 8  # the line goes through the per-line path
_SHAPES_KEPT = 8_192  # bound on the shape cache; it is emptied when full
_MIN_SKIP = 16  # shorter runs of plain lines are fed: skipping them saves less than it costs


@dataclass(frozen=True)
class Triggers:
    """The trigger words, compiled for shapes and for raw lines."""

    words: re.Pattern[str]  # the words without digits, on a lower-cased shape
    digit_words: dict[str, frozenset[bytes]]  # the words with digits, by their shape (digits made 0)


@functools.lru_cache(maxsize=8)
def plain_triggers(pattern: str, flags: int) -> Triggers | None:
    """Compile the trigger words for the fast path; None if ``pattern`` is not the trie of a word list.

    ``RuleSet.triggers`` is one regex built by :func:`rules.trie_pattern`; the words are read back from it and it
    is rebuilt to check that they are exactly its words.  Words that are not ASCII are left out: they can only
    occur in lines that are not ASCII, and those always take the per-line path.
    """
    words = _trie_words(pattern)
    if words is None or flags != re.UNICODE or trie_pattern(words) != pattern:
        return None
    words = [word for word in words if word.isascii()]
    plain = [word for word in words if set(word).isdisjoint("0123456789")]
    digit_words: dict[str, set[bytes]] = {}
    for word in words:
        if word not in plain:
            digit_words.setdefault(word.translate(_DIGIT_TO_ZERO_TEXT), set()).add(word.encode("ascii"))
    return Triggers(
        words=re.compile(trie_pattern(plain)),
        digit_words={shape: frozenset(originals) for shape, originals in digit_words.items()},
    )


def _trie_words(pattern: str) -> list[str] | None:
    """The words of a pattern made by :func:`rules.trie_pattern` (escaped characters and ``(?:a|b)`` groups)."""
    if pattern == "(?!)":
        return []
    position = 0

    def sequence() -> list[str]:
        nonlocal position
        words = [""]
        while position < len(pattern) and pattern[position] not in "|)":
            if pattern.startswith("(?:", position):
                position += 3
                branches = [*sequence()]
                while position < len(pattern) and pattern[position] == "|":
                    position += 1
                    branches.extend(sequence())
                if position >= len(pattern) or pattern[position] != ")":
                    raise ValueError(pattern)
                position += 1
                words = [word + branch for word in words for branch in branches]
            elif pattern[position] == "\\" and position + 1 < len(pattern):
                words = [word + pattern[position + 1] for word in words]
                position += 2
            elif pattern[position] in "()[]{}?*+.^$":
                raise ValueError(pattern)
            else:
                words = [word + pattern[position] for word in words]
                position += 1
        return words

    try:
        words = sequence()
    except ValueError:
        return None
    return words if position == len(pattern) and all(words) else None


@dataclass
class SkippedRun:
    """The last plain lines of a skipped run, raw, with the record that their unprefixed lines continue."""

    seq: int
    number: int
    record: LogLine | None
    lines: list[bytes]

    def rendered(self) -> list[tuple[int, LogLine]]:
        reader = LogReader()
        reader.record = self.record
        # A plain line renders to exactly one line, so positions and numbers follow the raw lines one to one.
        return [
            (self.seq + i, line) for i, raw in enumerate(self.lines) for line in reader.render(self.number + i, raw)
        ]


class BlockScanner:
    """Feed a :class:`_Scanner` block by block, rendering only the lines that can change what it finds.

    A line is fed one by one when its shape is not plain: a trigger word, a traceback marker, a byte that is not
    printable ASCII (escapes, CR, UTF-8, NUL), a leading blank, an empty or overlong line, a JSON record that is not
    a simple event (see :func:`log_lines.plain_line_kind`).  Between two such lines lies a run of plain lines.  While
    the scanner is :attr:`_Scanner.busy` they are fed too; then the head of the run is only counted, the record that
    its unprefixed lines would leave behind is found from its last prefixed line, and the last
    :attr:`window_lines` lines are fed so that ``recent`` is right for the next candidate.
    """

    def __init__(
        self, scanner: _Scanner, reader: LogReader, triggers: Triggers, *, window_lines: int, narrative_lines: int
    ) -> None:
        self.scanner = scanner
        self.window_lines = window_lines  # the lines before a candidate that the scanner keeps
        self.narrative_lines = narrative_lines  # the tail of plain lines the context may show
        self.reader = reader
        self.triggers = triggers
        self.codes: dict[bytes, int] = {}  # shape -> _PLAIN | _CHECK | _FEED, with the record kind
        self.flagged: set[bytes] = set()  # the shapes that are not _PLAIN
        # For a _CHECK shape: where its lines may have a trigger word with digits, and the words that may be there.
        self.windows: dict[bytes, list[tuple[int, int, frozenset[bytes]]]] = {}

    def feed(self, number: int, block: bytes) -> None:
        """Scan the physical lines of ``block``, the first of which has the 1-based ``number``."""
        lines = block.split(b"\n")
        shapes = block.translate(_DIGITS_TO_ZERO).split(b"\n")
        codes, flagged, windows = self.codes, self.flagged, self.windows
        new = set(shapes).difference(codes)
        if len(codes) + len(new) > _SHAPES_KEPT:
            codes.clear()
            flagged.clear()
            windows.clear()
            new = set(shapes)
        for shape in new:
            code = codes[shape] = self._classify(shape)
            if code >= _CHECK:
                flagged.add(shape)
        start = 0
        for i in compress(count(), map(flagged.__contains__, shapes)):
            if codes[shapes[i]] < _FEED:
                # Lines of one shape have the same characters at the same places but their digits, so the words
                # with digits that its shape may hold are checked where they would be.
                line = lines[i]
                for at, end, words in windows[shapes[i]]:
                    if line[at:end].lower() in words:
                        break
                else:
                    continue
            if i > start:
                self._run(number, lines, shapes, start, i)
            self._feed_line(number + i, lines[i])
            start = i + 1
        if start < len(lines):
            self._run(number, lines, shapes, start, len(lines))

    def _classify(self, shape: bytes) -> int:
        if shape.translate(None, _PRINTABLE):
            return _FEED
        text = shape.decode("ascii")
        kind = plain_line_kind(text)
        if kind is None or _STRUCTURE.search(text):
            return _FEED
        lowered = text.lower()
        if self.triggers.words.search(lowered):
            return _FEED
        places = []
        for word, originals in self.triggers.digit_words.items():
            at = lowered.find(word)
            while at >= 0:
                places.append((at, at + len(word), originals))
                at = lowered.find(word, at + 1)
        if places:
            self.windows[shape] = places
            return _CHECK | kind
        return _PLAIN | kind

    def _feed_line(self, number: int, raw: bytes) -> None:
        feed = self.scanner.feed
        for line in self.reader.render(number, raw):
            feed(line)

    def _run(self, number: int, lines: list[bytes], shapes: list[bytes], start: int, end: int) -> None:
        """Handle the plain lines ``start`` to ``end`` (exclusive) of a block."""
        scanner, reader = self.scanner, self.reader
        while start < end and scanner.busy:
            self._feed_line(number + start, lines[start])
            start += 1
        fed_from = end - self.window_lines
        if fed_from - start < _MIN_SKIP:
            for i in range(start, end):
                self._feed_line(number + i, lines[i])
            return
        kept_from = max(start, fed_from - self.narrative_lines)
        before = reader.record
        found = self._last_record(number, lines, shapes, start, fed_from)
        if found is None:
            record_at_kept = record_at_fed = before
        else:
            record_at_fed = found[1]
            if found[0] < kept_from:
                record_at_kept = record_at_fed
            else:
                earlier = self._last_record(number, lines, shapes, start, kept_from)
                record_at_kept = before if earlier is None else earlier[1]
        scanner.skip(
            lines[kept_from:fed_from],
            seq=scanner.seq + 1 + kept_from - start,
            number=number + kept_from,
            record=record_at_kept,
        )
        scanner.seq += fed_from - start  # plain lines are never blank: each one takes a position
        reader.record = record_at_fed
        reader.physical_lines = number + fed_from - 1
        for i in range(fed_from, end):
            self._feed_line(number + i, lines[i])

    def _last_record(
        self, number: int, lines: list[bytes], shapes: list[bytes], start: int, end: int
    ) -> tuple[int, LogLine] | None:
        """The last line before ``end`` (and from ``start``) that becomes the record, rendered."""
        codes = self.codes
        for i in range(end - 1, start - 1, -1):
            if codes[shapes[i]] & 3:
                scratch = LogReader()
                for _ in scratch.render(number + i, lines[i]):
                    pass
                if scratch.record is not None:
                    return i, scratch.record
        return None
