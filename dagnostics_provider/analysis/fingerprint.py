"""Failure fingerprints: one stable id for every repeat of the same failure.

Reviewers correct one analysis and apply it to the whole group, and the same error seen on a hundred runs should
not cost a hundred LLM calls, so two failures that differ only in run-specific details (ids, timestamps, paths,
hosts, literal values) must hash alike, while different errors must not.
"""

from __future__ import annotations

import hashlib
import re

# Error codes tell failures apart (HTTP 401 vs 404, errno 2 vs 13, ORA-00942, Teradata 3807), so their digits
# survive the masking of numbers.
_CODES = re.compile(
    r"(?i)\b(?:errno|error|failure|code|status|http|sqlstate|ora|tpt|pls|err|signal)[\s:=#-]{0,3}-?\d+\b"
    r"|\b[1-5]\d\d(?= (?:Client|Server) Error\b)|(?<=\()[1-5]\d\d(?=\))"
)
# Order matters: composite tokens (URLs, e-mails, timestamps) are masked before the numbers inside them.
_MASKS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\b([a-z][a-z0-9+.-]*://[^\s/?#\"'<>]*)[^\s\"'<>]*", re.I), r"\1/<url>"),
    (re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"), "<email>"),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I), "<uuid>"),
    (
        re.compile(
            r"\b\d{4}-\d{2}-\d{2}(?:[T ,]+\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2}|\s?UTC)?)?"
            r"|\b\d{2}/\d{2}/\d{2,4}(?: \d{2}:\d{2}:\d{2})?\b|\b\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?\b"
        ),
        "<ts>",
    ),
    (re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b"), "<ip>"),
    (re.compile(r"\b(?:[0-9a-f]{1,4}:){3,7}[0-9a-f]{1,4}\b", re.I), "<ip>"),
    (re.compile(r"(?<![\w.])(?:[A-Za-z]:)?(?:[/\\][\w.@%+=:,~-]+){2,}[/\\]?"), "<path>"),
    (re.compile(r"'[^'\n]{0,200}'|\"[^\"\n]{0,200}\"|`[^`\n]{0,200}`"), "'<str>'"),
    (re.compile(r"\b0x[0-9a-f]+\b|\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{8,}\b", re.I), "<hex>"),
    # Digits glued to a word's letters on the left and right are part of a name (``Py4J``, ``s3://``).
    (re.compile(r"(?<![A-Za-z])\d+(?:\.\d+)?|(?<=[A-Za-z])\d+\b(?!://)"), "<n>"),
    (re.compile(r"\s+"), " "),
)
# A protected code stands in the text as NUL + one private-use character (its index) + NUL while numbers are masked.
_PROTECTED = re.compile("\x00([\ue000-\uf8ff])\x00")
_MAX_CODES = 0xF8FF - 0xE000
_MAX_NORMALISED_CHARS = 1_000


def normalise_message(message: str) -> str:
    """``message`` with run-specific details replaced by placeholders such as ``<n>``, ``<path>`` and ``<ts>``."""
    codes: list[str] = []

    def protect(match: re.Match[str]) -> str:
        if len(codes) >= _MAX_CODES:
            return match.group(0)
        codes.append(match.group(0))
        return f"\x00{chr(0xE000 + len(codes) - 1)}\x00"

    text = _CODES.sub(protect, message.replace("\x00", "").strip()[: 4 * _MAX_NORMALISED_CHARS])
    for pattern, placeholder in _MASKS:
        text = pattern.sub(placeholder, text)
    text = _PROTECTED.sub(lambda m: codes[ord(m.group(1)) - 0xE000], text)
    return text.strip()[:_MAX_NORMALISED_CHARS]


def fingerprint(exception_type: str | None, message: str) -> str:
    """SHA-256 (64 hex characters) of the bare exception type and the normalised root-cause message."""
    bare_type = (exception_type or "").strip().rsplit(".", 1)[-1]
    digest = hashlib.sha256(f"{bare_type}\n{normalise_message(message)}".encode("utf-8", "replace"))
    return digest.hexdigest()
