"""The review page's log panel: numbered lines of the log context, marked where the AI and the reviewer point.

Lines are plain text all the way to the template, which escapes them: logs are attacker-controlled and may hold
HTML.  A line counts as one of the analysis' ``error_lines`` when it equals one after trimming, the same rule the
"apply to the fingerprint group" action uses to carry error lines over to another item.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

GAP_MARKER = "..."  # what root-cause extraction writes where it left lines out


@dataclass(frozen=True)
class PanelLine:
    number: int
    text: str
    gap: bool  # lines were left out here
    ai: bool  # one of the AI's error lines
    selected: bool  # one of the correction's error lines (the AI's, until the reviewer changes them)


def panel_lines(context: str | None, ai_lines: Iterable[str], selected_lines: Iterable[str]) -> list[PanelLine]:
    ai = {line.strip() for line in ai_lines if line.strip()}
    selected = {line.strip() for line in selected_lines if line.strip()}
    return [
        PanelLine(
            number=number,
            text=text,
            gap=text.strip() == GAP_MARKER,
            ai=text.strip() in ai,
            selected=text.strip() in selected,
        )
        for number, text in enumerate((context or "").splitlines(), start=1)
    ]
