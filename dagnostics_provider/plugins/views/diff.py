"""Per-field differences between the AI's suggestion and a reviewer's correction, ready for display.

Text fields get a word-level diff so a one-word fix in a long error message stands out; list fields compare
line by line.  Segments carry plain text only; the template escapes it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dagnostics_provider.store.reviews import REVIEW_FIELDS, changed_fields

FIELD_LABELS: dict[str, str] = {
    "error_message": "Error message",
    "category": "Category",
    "severity": "Severity",
    "confidence": "Confidence",
    "reasoning": "Reasoning",
    "error_lines": "Error lines",
    "suggested_actions": "Suggested actions",
}
_WORDS = re.compile(r"\s+|\S+\s*")  # a word with the spaces after it: runs of changed words stay one run


@dataclass(frozen=True)
class Segment:
    kind: str  # "same" | "removed" | "added"
    text: str


@dataclass(frozen=True)
class FieldDiff:
    name: str
    label: str
    changed: bool
    before: str
    after: str
    segments: list[Segment]


def _as_text(name: str, value: Any) -> str:
    if isinstance(value, list):
        return "\n".join(str(item) for item in value)
    if name == "confidence" and value is not None:
        return f"{float(value):.2f}"
    return "" if value is None else str(value)


def _lines(text: str) -> list[str]:
    """Whole lines, each ending in a newline, so a kept last line does not count as changed."""
    return [line + "\n" for line in text.splitlines()]


def _segments(before: str, after: str, multiline: bool) -> list[Segment]:
    old, new = (_lines(before), _lines(after)) if multiline else (_WORDS.findall(before), _WORDS.findall(after))
    segments: list[Segment] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes():
        if tag == "equal":
            segments.append(Segment("same", "".join(old[i1:i2])))
            continue
        if i2 > i1:
            segments.append(Segment("removed", "".join(old[i1:i2])))
        if j2 > j1:
            segments.append(Segment("added", "".join(new[j1:j2])))
    return segments


def field_diffs(suggestion: Mapping[str, Any], correction: Mapping[str, Any]) -> list[FieldDiff]:
    """One entry per reviewable field, in schema order; ``changed`` follows the store's rule."""
    changed = set(changed_fields(suggestion, correction))
    diffs = []
    for name in REVIEW_FIELDS:
        before, after = _as_text(name, suggestion.get(name)), _as_text(name, correction.get(name))
        multiline = isinstance(suggestion.get(name), list)
        diffs.append(
            FieldDiff(
                name=name,
                label=FIELD_LABELS[name],
                changed=name in changed,
                before=before,
                after=after,
                segments=_segments(before, after, multiline) if name in changed else [Segment("same", after)],
            )
        )
    return diffs
