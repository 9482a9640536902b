"""The review page's log panel: numbered lines of the log context, marked where the AI and the reviewer point.

The numbers are the log's own line numbers, read from the gutter every context line carries
(:mod:`dagnostics_provider.analysis.context_lines`): the numbers Airflow's log view shows and the heuristic
reasoning cites ("log line 12").  The gutter itself is not shown; the text is the log line.  Gap rows (where
extraction left lines out) have no number.  A context stored before contexts carried gutters (or the listener's
error text, shown when no context was stored) has no numbers: its rows, gap rows included, are numbered 1..n by
position, as the panel always did.

Lines are plain text all the way to the template, which escapes them: logs are attacker-controlled and may hold
HTML.  A line counts as one of the analysis' ``error_lines`` when its text (without the gutter) equals one after
trimming, the same rule the "apply to the fingerprint group" action uses to carry error lines over to another item.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from dagnostics_provider.analysis.context_lines import GAP, parse_context

GAP_MARKER = GAP  # what root-cause extraction writes where it left lines out


@dataclass(frozen=True)
class PanelLine:
    number: int | None  # the log line number; None for a gap row of a numbered context
    text: str
    gap: bool  # lines were left out here
    ai: bool  # one of the AI's error lines
    selected: bool  # one of the correction's error lines (the AI's, until the reviewer changes them)


def panel_lines(context: str | None, ai_lines: Iterable[str], selected_lines: Iterable[str]) -> list[PanelLine]:
    ai = {line.strip() for line in ai_lines if line.strip()}
    selected = {line.strip() for line in selected_lines if line.strip()}
    parsed = parse_context(context)
    if any(number is not None for number, _ in parsed):
        rows = [(number, text, number is None) for number, text in parsed]  # a line "..." of the log is no gap
    else:  # a legacy context: numbered by position, gap rows included
        rows = [(position, text, text.strip() == GAP_MARKER) for position, (_, text) in enumerate(parsed, start=1)]
    return [
        PanelLine(
            number=number,
            text=text,
            gap=gap,
            ai=not (gap and number is None) and text.strip() in ai,
            selected=not (gap and number is None) and text.strip() in selected,
        )
        for number, text, gap in rows
    ]
