"""Root-cause extraction: find the one log line an on-call engineer needs, and the context an LLM should see.

A failed task's log ends with Airflow's wrapper ("Task failed with exception", ``AirflowException: Bash command
failed``); the cause is usually further up: a database error in the command's output, the innermost exception of
a chain, the ``Caused by:`` of a Java trace.  Lines are matched against :mod:`rules` (data, extendable by users)
and ranked by how specific their evidence is, with structure (traceback chains, Java causes, side-effect records,
warning levels) adjusting the rank.

The log is read once as a stream.  Only bounded state is kept: ring buffers of recent lines, the best candidate
lines with a few neighbours each, and the last tracebacks, so a 100 MB log costs the same memory as a small one.
The context is a pure function of the log, so the same log always gives a byte-identical prompt.  Each of its lines
carries the number of the log line it comes from (:mod:`context_lines`), the same number the heuristic reasoning
cites, so the prompt, the review page and the training text all refer to the log's own line numbers.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from operator import itemgetter

from dagnostics_provider.analysis.block_scan import BlockScanner, SkippedRun, plain_triggers
from dagnostics_provider.analysis.context_lines import GAP, gutter
from dagnostics_provider.analysis.fingerprint import normalise_message
from dagnostics_provider.analysis.log_lines import (
    CAUSE_SEPARATOR,
    CONTEXT_SEPARATOR,
    TRACEBACK_HEADER,
    LogLine,
    LogReader,
)
from dagnostics_provider.analysis.rules import Rule, RuleSet, configured_rules

# Bounds on what the scan keeps.
WINDOW_LINES = 3
MAX_CANDIDATES = 256
MAX_TRACEBACKS = 8
MAX_FRAME_LINES = 8
MAX_MESSAGE_LINES = 40
TOP_CANDIDATES = 20
MAX_ERROR_LINES = 6
CONTEXT_LINE_CHARS = 1_000
CONTEXT_TAIL_LINES = 30
NARRATIVE_LINES = 4 * CONTEXT_TAIL_LINES  # kept before boilerplate is dropped from them
_TEXT_CHUNK_CHARS = 1 << 20

# Weights of lines no rule explains, on the rules' 0-100 scale.
EXCEPTION_WEIGHT = 50
JAVA_EXCEPTION_WEIGHT = 45
ERROR_LINE_WEIGHT = 30
VAGUE_LINE_WEIGHT = 12
# Structural adjustments.
SIDE_EFFECT_PENALTY = 80
LEVEL_PENALTY = {"WARNING": 20, "DEBUG": 25}
HANDLED_PENALTY = 20
NOT_AN_ERROR_PENALTY = 15
FINAL_CHAIN_BONUS = 6
CHAIN_DEPTH_BONUS = 2
SUPERSEDED_PENALTY = 20
JAVA_CAUSE_BONUS = 2
EARLINESS_BONUS = 2
# An exception raised while handling another is usually the real failure, unless it is a bug in the handler itself.
HANDLER_BUG_TYPES = frozenset({"NameError", "UnboundLocalError", "AttributeError"})

_PY_EXCEPTION = re.compile(r"(?P<type>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)(?::(?:\s.*)?)?")
_JAVA_EXCEPTION = re.compile(
    r"(?:(?P<caused>Caused by:)\s*|:\s|Exception in thread \"[^\"]*\"\s)?"
    r"(?P<type>(?:[a-z_$][\w$]*\.)+[A-Z][\w$]*(?:Exception|Error|Throwable|Failure))(?::\s?.*)?"
)
_FRAME = re.compile(r"\s+(?:at [\w$.<>/]+\(|File \"[^\"]*\", line \d+|\.\.\. \d+ (?:more|common frames))")
_STRONG = re.compile(
    r"(?i)\b(?:error|errors|exception|fatal|failed|failure|critical|panic|abort(?:ed)?)\b|could not|unable to"
    r"|cannot|can't|denied|refused|timed out|not found|does not exist|no such"
)
# A tool's own WARN level or a Python warning inside the message, e.g. "24/05/11 05:17:02 WARN TaskSetManager: ...".
_INNER_WARNING = re.compile(r"^.{0,60}?\b(?:WARN|WARNING|NOTICE)\b|\b[A-Z]\w*Warning: ")
# The message says the problem was handled: "..., skipping", "falling back to ...", "retrying in 5s".
_HANDLED = re.compile(
    r"(?i)\b(?:skipping|skipped|leaving (?:it |them )?(?:blank|empty|as is)|falling back|fall(?:s|ing)? back to"
    r"|using (?:the )?defaults?|ignoring|ignored|retrying|will retry|retry in|continuing|proceeding anyway)\b"
)
_NOT_AN_ERROR = re.compile(
    r"(?i)\b(?:0|no|zero) (?:errors?|failures?|failed|exceptions?)\b"
    r"|\b(?:errors?|failures?|failed|exceptions?)\s*[=:]\s*0\b|\bwithout errors?\b|\bsucceeded\b|\bsuccessfully\b"
)


@dataclass(eq=False)
class Candidate:
    """A line that may be the root cause, with the evidence behind its rank.

    ``kind`` is ``exception`` (the exception line of a Python traceback), ``java`` (a Java exception or its
    ``Caused by:``) or ``line`` (any other error line).  ``count`` is how often the same message (ids and numbers
    aside) occurred; ``line`` is its first occurrence.
    """

    line: LogLine
    kind: str
    rule: Rule | None
    exception_type: str | None
    weight: int
    score: float = 0.0
    count: int = 1
    seq: int = 0
    level_penalty: int = 0
    side_effect: bool = False
    not_an_error: bool = False
    chain: int | None = None
    chain_position: int = 0
    java_depth: int = 0
    window: list[tuple[int, LogLine]] = field(default_factory=list, repr=False)

    @property
    def wrapper(self) -> bool:
        return self.rule is not None and self.rule.wrapper

    def provisional_score(self) -> float:
        """Rank before the whole log is known; used to decide which candidates to keep when there are too many."""
        score = self.weight - self.level_penalty
        if self.side_effect:
            score -= SIDE_EFFECT_PENALTY
        if self.not_an_error:
            score -= NOT_AN_ERROR_PENALTY
        return score


@dataclass
class _Traceback:
    chain: int
    position: int  # 0 for the innermost exception of a chain, as Python prints it first
    header: tuple[int, LogLine]
    separator: tuple[int, LogLine] | None = None
    frames: deque[tuple[int, LogLine]] = field(default_factory=lambda: deque(maxlen=MAX_FRAME_LINES))
    exception: tuple[int, LogLine] | None = None
    exception_type: str | None = None
    message: list[tuple[int, LogLine]] = field(default_factory=list)
    side_effect: bool = False


@dataclass(frozen=True)
class Extraction:
    """What the extractor found in one log.

    ``root_cause`` is the chosen line (``None`` when the log has no error line at all), ``error_lines`` the
    root-cause text followed by a few supporting lines, ``context`` the bounded text an LLM sees, ``candidates``
    the best-ranked lines (best first).  ``truncated`` says that a bound cut something: an overlong line, the
    context budget, or candidates dropped from a log with very many distinct errors.
    """

    root_cause: LogLine | None
    error_lines: list[str]
    exception_type: str | None
    context: str
    candidates: list[Candidate]
    total_lines: int
    truncated: bool

    @property
    def best(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None


def extract(
    chunks: Iterable[bytes | str], *, rules: RuleSet | None = None, max_context_chars: int | None = None
) -> Extraction:
    """Extract the root cause and LLM context from a log streamed as chunks of bytes or text."""
    if rules is None:
        rules = configured_rules()
    if max_context_chars is None:
        from dagnostics_provider import config

        max_context_chars = config.get_int("max_context_chars")
    triggers = plain_triggers(rules.triggers.pattern, rules.triggers.flags)
    if triggers is None:  # triggers that are not a list of words: every line takes the per-line path
        return _extract_per_line(chunks, rules=rules, max_context_chars=max_context_chars)
    reader = LogReader()
    scanner = _Scanner(rules)
    blocks = BlockScanner(scanner, reader, triggers, window_lines=WINDOW_LINES, narrative_lines=NARRATIVE_LINES)
    for number, block in reader.blocks(chunks):
        blocks.feed(number, block)
    return scanner.finish(
        max(0, max_context_chars), total_lines=reader.physical_lines, cut_lines=reader.truncated_lines > 0
    )


def _extract_per_line(chunks: Iterable[bytes | str], *, rules: RuleSet, max_context_chars: int) -> Extraction:
    """Render and scan every line one by one: the path for trigger patterns the fast path cannot read, and the
    reference that the fast path must equal."""
    reader = LogReader()
    scanner = _Scanner(rules)
    for line in reader.lines(chunks):
        scanner.feed(line)
    return scanner.finish(
        max(0, max_context_chars), total_lines=reader.physical_lines, cut_lines=reader.truncated_lines > 0
    )


def extract_text(text: str, *, rules: RuleSet | None = None, max_context_chars: int | None = None) -> Extraction:
    """:func:`extract` for a log already in memory."""
    chunks = (text[i : i + _TEXT_CHUNK_CHARS] for i in range(0, len(text), _TEXT_CHUNK_CHARS))
    return extract(chunks, rules=rules, max_context_chars=max_context_chars)


class _Scanner:
    """One pass over the lines, keeping bounded state."""

    def __init__(self, rules: RuleSet) -> None:
        self.rules = rules
        self.seq = -1
        self.recent: deque[tuple[int, LogLine]] = deque(maxlen=WINDOW_LINES)  # what comes before a new candidate
        self.narrative: deque[tuple[int, LogLine]] = deque(maxlen=NARRATIVE_LINES)  # the tail, less tracebacks
        self.candidates: dict[str, Candidate] = {}
        self.pruned = False
        self.open_windows: list[Candidate] = []
        self.tracebacks: deque[_Traceback] = deque(maxlen=MAX_TRACEBACKS)
        self.traceback: _Traceback | None = None  # the traceback whose frames or message are being read
        self.in_message = False
        self.message_blank = False
        self.pending_separator: tuple[int, LogLine] | None = None
        self.chains = 0
        self.java_depth: int | None = None
        self.side_effect = False
        # After a record such as "Received SIGTERM" or "Task failed with exception" (and its own traceback), what
        # is logged is a consequence: it ranks as a side effect until a new try starts in the same log.
        self.aftermath = False
        self.aftermath_pending = False
        self.skipped: deque[SkippedRun] = deque()  # plain lines that were only counted, for the narrative
        self.skipped_lines = 0

    # -- the pass ----------------------------------------------------------------------------------------------

    def feed(self, line: LogLine) -> None:
        text = line.text
        stripped = text.strip()
        # Blank lines share the position of the line above, so the context marks no gap where only they are left out.
        if stripped or self.seq < 0:
            self.seq += 1
        seq = self.seq
        triggered = bool(stripped) and self.rules.is_triggered(stripped)
        if not line.continuation:
            if self.aftermath_pending:
                self.aftermath, self.aftermath_pending = True, False
            if self.aftermath and self.rules.ends_aftermath(stripped):
                self.aftermath = False
            elif triggered and self.rules.starts_aftermath(stripped):
                self.aftermath_pending = True  # the record's own traceback (its continuation lines) still counts
            self.side_effect = self.aftermath or (triggered and self.rules.is_side_effect(stripped))
        role = self._traceback_role(seq, line, stripped)
        if role == "exception" or (triggered and role in ("message", "line")):
            self._consider(seq, line, stripped, role)
        if self.open_windows:
            for candidate in self.open_windows:
                candidate.window.append((seq, line))
            self.open_windows = [c for c in self.open_windows if seq - c.seq < WINDOW_LINES]
        if not (self.side_effect and line.continuation):
            self.recent.append((seq, line))
            if role == "line":
                self.narrative.append((seq, line))

    @property
    def busy(self) -> bool:
        """True while the next line can change more than the counters and the ring buffers (see :meth:`skip`)."""
        return bool(
            self.traceback is not None
            or self.pending_separator is not None
            or self.open_windows
            or self.side_effect
            or self.aftermath_pending
        )

    def skip(self, lines: list[bytes], *, seq: int, number: int, record: LogLine | None) -> None:
        """Note plain lines that were counted instead of fed; they may still belong to the narrative.

        While the scanner is not :attr:`busy`, a plain line (no trigger word, not part of a traceback, rendering to
        one non-blank line) only moves the ring buffers on.  ``recent`` is refilled by the lines fed after a skip,
        but the narrative reaches further back, so the last :data:`NARRATIVE_LINES` skipped lines are kept raw with
        what rendering them needs, and rendered only in :meth:`finish` if they are still among the last ones.
        """
        if not lines:
            return
        self.skipped.append(SkippedRun(seq, number, record, lines))
        self.skipped_lines += len(lines)
        while len(self.skipped) > 1:
            oldest = self.skipped[0]
            last = oldest.seq + len(oldest.lines) - 1
            newer = self.skipped_lines - len(oldest.lines)
            for item_seq, _ in reversed(self.narrative):
                if item_seq <= last or newer >= NARRATIVE_LINES:
                    break
                newer += 1
            if newer < NARRATIVE_LINES:
                break
            self.skipped.popleft()
            self.skipped_lines -= len(oldest.lines)

    def _narrative(self) -> deque[tuple[int, LogLine]]:
        """The last :data:`NARRATIVE_LINES` narrative lines, whether they were fed or skipped."""
        if not self.skipped:
            return self.narrative
        items = list(self.narrative)
        for run in self.skipped:
            items.extend(run.rendered())
        items.sort(key=itemgetter(0))
        return deque(items[-NARRATIVE_LINES:], maxlen=NARRATIVE_LINES)

    def _traceback_role(self, seq: int, line: LogLine, stripped: str) -> str:
        """Follow Python tracebacks and chains; say what part of one (if any) this line is."""
        if TRACEBACK_HEADER in stripped:
            self._start_traceback(seq, line)
            return "header"
        if stripped in (CAUSE_SEPARATOR, CONTEXT_SEPARATOR):
            self.traceback, self.in_message = None, False
            self.pending_separator = (seq, line) if self.tracebacks else None
            return "separator"
        if not stripped and self.pending_separator is not None:
            return "blank"
        self.pending_separator = None
        traceback = self.traceback
        if traceback is not None and not self.in_message:
            if not stripped or line.text[:1] in (" ", "\t"):
                traceback.frames.append((seq, line))
                return "frame"
            match = _PY_EXCEPTION.fullmatch(stripped)
            traceback.exception = (seq, line)
            traceback.exception_type = match.group("type") if match else None
            self.in_message, self.message_blank = True, False
            return "exception"
        if traceback is not None:
            exception_line = traceback.exception[1] if traceback.exception else line
            if not stripped:
                self.message_blank = True
                return "blank"
            if (
                not self.message_blank
                and len(traceback.message) < MAX_MESSAGE_LINES
                and (line.continuation or not exception_line.continuation)
            ):
                traceback.message.append((seq, line))
                return "message" if not _FRAME.match(line.text) else "frame"
            self.traceback, self.in_message = None, False
        if _FRAME.match(line.text):
            return "frame"
        return "line" if stripped else "blank"

    def _start_traceback(self, seq: int, line: LogLine) -> None:
        separator, previous = self.pending_separator, self.tracebacks[-1] if self.tracebacks else None
        if separator is not None and previous is not None:
            chain, position = previous.chain, previous.position + 1
        else:
            self.chains += 1
            chain, position = self.chains, 0
        self.traceback = _Traceback(chain, position, (seq, line), separator, side_effect=self.side_effect)
        self.tracebacks.append(self.traceback)
        self.in_message = False
        self.pending_separator = None

    def _consider(self, seq: int, line: LogLine, stripped: str, role: str) -> None:
        if role != "exception" and self.rules.is_boilerplate(stripped):
            return
        key = normalise_message(stripped)
        known = self.candidates.get(key)
        if known is not None:
            known.count += 1
            return
        java = _JAVA_EXCEPTION.fullmatch(stripped) if role != "exception" else None
        if java is not None:
            self.java_depth = (self.java_depth or 0) + 1 if java.group("caused") else 0
        elif role == "line":
            self.java_depth = None
        found = self.rules.match(stripped)
        rule = found[0] if found else None
        traceback = self.traceback
        if role == "exception":
            kind, exception_type = "exception", traceback.exception_type if traceback else None
        elif java is not None:
            kind, exception_type = "java", java.group("type")
        else:
            kind = "line"
            exception_type = traceback.exception_type if traceback is not None and role == "message" else None
        if rule is not None:
            weight = rule.weight
        elif kind == "exception":
            weight = EXCEPTION_WEIGHT
        elif kind == "java":
            weight = JAVA_EXCEPTION_WEIGHT
        else:
            weight = ERROR_LINE_WEIGHT if _STRONG.search(stripped) else VAGUE_LINE_WEIGHT
        candidate = Candidate(
            line=line,
            kind=kind,
            rule=rule,
            exception_type=exception_type,
            weight=weight,
            seq=seq,
            level_penalty=_level_penalty(line, stripped),
            side_effect=self.side_effect or bool(traceback and traceback.side_effect),
            not_an_error=rule is None and kind == "line" and _NOT_AN_ERROR.search(stripped) is not None,
            chain=traceback.chain if traceback is not None else None,
            chain_position=traceback.position if traceback is not None else 0,
            java_depth=(self.java_depth or 0) if kind == "java" else 0,
            window=[*self.recent, (seq, line)],
        )
        self.candidates[key] = candidate
        self.open_windows.append(candidate)
        if len(self.candidates) > 2 * MAX_CANDIDATES:
            self._prune()

    def _chain_bonuses(self, chain: list[_Traceback]) -> dict[int, float]:
        """Score adjustment per position in the fatal chain.

        An explicit cause (``raise ... from``) explains the exception it caused, so each cause link above a
        position earns a bonus.  "During handling of the above exception" means the earlier exception was handled
        and a later one killed the task, so positions before such a link lose, unless the later exception is
        only a wrapper or a bug in the handler itself (a ``NameError`` in an ``except`` block).
        """
        bonuses: dict[int, float] = {}
        for traceback in chain:
            later = [t for t in chain if t.position > traceback.position and t.separator is not None]
            causes = sum(1 for t in later if t.separator[1].text.strip() == CAUSE_SEPARATOR)
            superseded = any(
                t.separator[1].text.strip() == CONTEXT_SEPARATOR and not self._handler_failure(t) for t in later
            )
            bonuses[traceback.position] = CHAIN_DEPTH_BONUS * causes - (SUPERSEDED_PENALTY if superseded else 0)
        return bonuses

    def _handler_failure(self, traceback: _Traceback) -> bool:
        """True when a traceback's exception is a wrapper or a bug of the handler, not a failure of its own."""
        if traceback.exception is None:
            return True
        found = self.rules.match(traceback.exception[1].text.strip())
        bare_type = (traceback.exception_type or "").rsplit(".", 1)[-1]
        return (found is not None and found[0].wrapper) or bare_type in HANDLER_BUG_TYPES

    def _prune(self) -> None:
        """Keep the best candidates; ties keep the earlier line, as the final ranking does."""
        ranked = sorted(self.candidates.items(), key=lambda kv: (-kv[1].provisional_score(), kv[1].seq))
        self.candidates = dict(ranked[:MAX_CANDIDATES])
        kept = set(map(id, self.candidates.values()))
        self.open_windows = [c for c in self.open_windows if id(c) in kept]
        self.pruned = True

    # -- the result --------------------------------------------------------------------------------------------

    def finish(self, max_context_chars: int, *, total_lines: int, cut_lines: bool) -> Extraction:
        positions = self.seq + 1
        final = next((t for t in reversed(self.tracebacks) if not t.side_effect), None)
        final_chain = [t for t in self.tracebacks if final is not None and t.chain == final.chain]
        chain_bonus = self._chain_bonuses(final_chain)
        for candidate in self.candidates.values():
            score = candidate.provisional_score()
            if final is not None and candidate.chain == final.chain and not candidate.wrapper:
                score += FINAL_CHAIN_BONUS + chain_bonus.get(candidate.chain_position, 0)
            if candidate.kind == "java":
                score += JAVA_CAUSE_BONUS * min(candidate.java_depth, 5)
            score += EARLINESS_BONUS * (1 - candidate.seq / max(positions, 1))
            candidate.score = round(score, 6)
        ranked = sorted(self.candidates.values(), key=lambda c: (-c.score, c.seq))[:TOP_CANDIDATES]
        root = ranked[0] if ranked else None
        context, context_cut = _Context(max_context_chars).build(
            root, ranked, final_chain, self._narrative(), self.rules
        )
        return Extraction(
            root_cause=root.line if root else None,
            error_lines=_error_lines(root, ranked),
            exception_type=root.exception_type if root else None,
            context=context,
            candidates=ranked,
            total_lines=total_lines,
            truncated=cut_lines or context_cut or self.pruned,
        )


def _level_penalty(line: LogLine, text: str) -> int:
    """Warnings and handled problems rarely stop a task: rank them lower.

    The record's level, a tool's own level inside the message and wording such as "skipping" all count.
    """
    penalty = LEVEL_PENALTY.get(line.level or "", 0)
    if not penalty and _INNER_WARNING.search(text):
        penalty = LEVEL_PENALTY["WARNING"]
    if _HANDLED.search(text):
        penalty += HANDLED_PENALTY
    return penalty


def _error_lines(root: Candidate | None, ranked: list[Candidate]) -> list[str]:
    """The root-cause text first, then the next best distinct lines in log order."""
    if root is None:
        return []
    others = [
        c
        for c in ranked[1:]
        if not c.side_effect
        and (c.rule is not None or c.weight >= ERROR_LINE_WEIGHT)
        and c.line.text.strip() != root.line.text.strip()
    ]
    others = sorted(others[: MAX_ERROR_LINES - 1], key=lambda c: c.seq)
    return [c.line.text.strip()[:CONTEXT_LINE_CHARS] for c in [root, *others]]


class _Context:
    """Pick lines by priority until the budget is spent, then print them in log order with gaps marked.

    Every line is printed with its log line number in front (:func:`context_lines.numbered`); the budget counts
    the whole printed line, gutter included.
    """

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.used = 0
        self.picked: dict[int, str] = {}
        self.cut = False

    def build(
        self,
        root: Candidate | None,
        ranked: list[Candidate],
        chain: list[_Traceback],
        narrative: deque[tuple[int, LogLine]],
        rules: RuleSet,
    ) -> tuple[str, bool]:
        def useful(item: tuple[int, LogLine]) -> bool:
            text = item[1].text.strip()
            return bool(text) and not rules.is_boilerplate(text)

        if root is not None:
            self._add(root.seq, root.line, force=True)
        for traceback in chain:
            for item in filter(None, [traceback.separator, traceback.exception, *traceback.message[:8]]):
                self._add(*item)
        if root is not None:
            for item in filter(useful, root.window):
                self._add(*item)
        for traceback in chain:
            for item in [traceback.header, *list(traceback.frames)[-6:]]:
                self._add(*item)
        others = [c for c in ranked if c is not root and not c.side_effect]
        for candidate in others[:10]:
            self._add(candidate.seq, candidate.line)
        for candidate in others[:5]:
            for item in filter(useful, candidate.window):
                self._add(*item)
        for item in [i for i in narrative if useful(i)][-CONTEXT_TAIL_LINES:][::-1]:
            self._add(*item)
        return self._render(), self.cut

    def _add(self, seq: int, line: LogLine, *, force: bool = False) -> None:
        text = line.text.rstrip()
        if seq in self.picked or not text.strip():
            return
        if len(text) > CONTEXT_LINE_CHARS:
            text = text[:CONTEXT_LINE_CHARS] + " [...]"
        text = gutter(line.number) + text
        cost = len(text) + 1 + len(GAP) + 1
        if self.used + cost > self.budget:
            if not force:
                self.cut = True
                return
            text = text[: max(0, self.budget - self.used - 1)]
            self.cut = True
            cost = len(text) + 1
        self.picked[seq] = text
        self.used += cost

    def _render(self) -> str:
        out: list[str] = []
        previous: int | None = None
        for seq in sorted(self.picked):
            if previous is not None and seq != previous + 1:
                out.append(GAP)
            out.append(self.picked[seq])
            previous = seq
        return "\n".join(out)[: self.budget]
