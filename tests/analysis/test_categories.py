"""One category taxonomy: docs/categories.md, the code table, the prompt and the rules agree (review form: tests/ui)."""

from __future__ import annotations

import re
from pathlib import Path

from dagnostics_provider import prompt_format
from dagnostics_provider.analysis.rules import load_rules
from dagnostics_provider.analysis.schema import CATEGORIES, CATEGORY_DEFINITIONS, CATEGORY_EXAMPLES

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "categories.md"
RULES = ROOT / "dagnostics_provider" / "analysis" / "rules.yaml"


def _doc_table() -> dict[str, tuple[str, str]]:
    rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \| ([^|]+) \|$", DOC.read_text(encoding="utf-8"), re.M)
    return {name: (definition.strip(), examples.strip()) for name, definition, examples in rows}


def test_the_doc_defines_exactly_the_code_categories():
    table = _doc_table()
    assert list(table) == list(CATEGORY_DEFINITIONS)
    assert set(CATEGORY_DEFINITIONS) == set(CATEGORIES) == set(CATEGORY_EXAMPLES)
    for name, (definition, examples) in table.items():
        assert definition == CATEGORY_DEFINITIONS[name]
        assert examples == CATEGORY_EXAMPLES[name]


def test_the_prompt_lists_every_definition():
    for name, definition in CATEGORY_DEFINITIONS.items():
        assert f"{name}: {definition}" in prompt_format.INSTRUCTION
    assert prompt_format.PROMPT_VERSION != "dagnostics-v1", "the prompt changed, so its version must too"


def test_rules_cite_the_taxonomy_and_use_only_its_categories():
    assert "docs/categories.md" in RULES.read_text(encoding="utf-8").split("\n\n", 1)[0]
    assert {rule.category for rule in load_rules().rules} <= set(CATEGORIES)
