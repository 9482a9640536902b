"""Cutting the middle out of a log context keeps every kept line numbered (context lines carry a gutter)."""

from __future__ import annotations

import pytest

from dagnostics_provider.analysis.context_lines import GAP, numbered, parse_context
from dagnostics_provider.training import sft_data

CONTEXT = "\n".join(numbered(n, f"line {n} of the task log") for n in range(101, 121))


@pytest.mark.parametrize("keep", [0, 3, 8, 20, 40, 60, 120, 300, len(CONTEXT) - 1])
def test_cut_middle_keeps_the_gutter_of_every_line(keep):
    cut = sft_data.cut_middle(CONTEXT, keep)
    parsed = parse_context(cut)
    assert parsed, cut
    numbers = [n for n, _ in parsed if n is not None]
    assert numbers == sorted(numbers)
    assert all(n is not None or text == GAP for n, text in parsed), cut
    assert (None, GAP) in parsed


def test_cut_middle_keeps_whole_numbered_lines_from_both_ends():
    cut = sft_data.cut_middle(CONTEXT, 120)
    lines = cut.split("\n")
    assert lines[0] == "101| line 101 of the task log" and lines[-1] == "120| line 120 of the task log"
    assert GAP in lines and all(line == GAP or line in CONTEXT.split("\n") for line in lines)


def test_a_piece_of_a_long_last_line_keeps_that_lines_number():
    context = "\n".join([numbered(7, "short"), numbered(8, "x" * 200), numbered(1234, "y" * 200 + " the end")])
    cut = sft_data.cut_middle(context, 60)
    assert cut.split("\n")[-1].startswith("1234| ") and cut.endswith(" the end")
    assert parse_context(cut)[-1][0] == 1234


def test_legacy_contexts_are_cut_as_before():
    context = "\n".join(f"line {i}" for i in range(20))
    cut = sft_data.cut_middle(context, 40)
    assert cut.startswith("line 0\n") and cut.endswith("line 19") and f"\n{GAP}\n" in cut
