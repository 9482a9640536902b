"""The correction form's fields, turned into the correction the store validates.

Browsers send every field as text; list fields are one entry per line.  Only the conversion happens here; the
rules (allowed categories, bounds, lengths) are the analysis schema's, applied by
:func:`dagnostics_provider.store.reviews.submit_review`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dagnostics_provider.store.reviews import REVIEW_FIELDS, ReviewRejected

LIST_FIELDS = ("error_lines", "suggested_actions")


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def correction_from_form(form: Mapping[str, str]) -> dict[str, Any]:
    correction: dict[str, Any] = {}
    for name in REVIEW_FIELDS:
        raw = form.get(name, "")
        if name in LIST_FIELDS:
            correction[name] = _lines(raw)
        elif name == "confidence":
            try:
                correction[name] = float(raw)
            except ValueError:
                raise ReviewRejected("confidence must be a number from 0 to 1") from None
        else:
            correction[name] = raw
    return correction


def form_values(correction: Mapping[str, Any]) -> dict[str, str]:
    """Correction values as the form shows them (lists one per line, confidence with two decimals)."""
    values = {}
    for name in REVIEW_FIELDS:
        value = correction.get(name)
        if name in LIST_FIELDS:
            values[name] = "\n".join(value or [])
        elif name == "confidence":
            values[name] = f"{float(value):.2f}" if isinstance(value, (int, float)) else str(value or "")
        else:
            values[name] = "" if value is None else str(value)
    return values
