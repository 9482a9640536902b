"""Root-cause rules as data: load, validate and merge the built-in ``rules.yaml`` with a user's own file.

Rules are data rather than code so that an operator can teach DAGnostics about an in-house tool's error lines
without a release: ``[dagnostics] rules_file`` names a YAML file whose rules are tried before the built-in ones.
The format is documented in ``docs/rules.md``.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from dagnostics_provider.analysis.schema import CATEGORIES, SEVERITIES

BUILTIN_RULES = "rules.yaml"
_RULE_KEYS = {"id", "pattern", "category", "severity", "weight", "wrapper", "reasoning", "actions"}
_TOP_KEYS = {"triggers", "boilerplate", "side_effects", "aftermath", "aftermath_ends", "rules"}


class RulesError(ValueError):
    """A rules file that cannot be used; the message names the file and the rule."""


@dataclass(frozen=True)
class Rule:
    """One pattern and what a line matching it means.

    ``weight`` (0-100) says how specific the evidence is: the extractor ranks candidate lines by it, so a specific
    database error outranks a generic wrapper such as ``Bash command failed``.  ``wrapper`` marks lines that only
    report that something below failed; they are chosen only when nothing more specific exists.
    """

    id: str
    pattern: re.Pattern[str]
    category: str
    severity: str
    weight: int
    wrapper: bool
    reasoning: str
    actions: tuple[str, ...]
    source: str


@dataclass(frozen=True)
class RuleSet:
    """Rules in precedence order (user rules first) plus the boilerplate, side-effect and trigger filters."""

    rules: tuple[Rule, ...]
    boilerplate: re.Pattern[str] | None
    side_effects: re.Pattern[str] | None
    triggers: re.Pattern[str]
    aftermath: re.Pattern[str] | None = None
    aftermath_ends: re.Pattern[str] | None = None

    def match(self, text: str) -> tuple[Rule, re.Match[str]] | None:
        """The first rule, in precedence order, whose pattern occurs in ``text``."""
        for rule in self.rules:
            found = rule.pattern.search(text)
            if found is not None:
                return rule, found
        return None

    def is_boilerplate(self, text: str) -> bool:
        """True for Airflow's own chatter, which never explains a failure."""
        return self.boilerplate is not None and self.boilerplate.search(text) is not None

    def is_side_effect(self, text: str) -> bool:
        """True for a record about work done after the failure (alert e-mail, callback): not the cause."""
        return self.side_effects is not None and self.side_effects.search(text) is not None

    def starts_aftermath(self, text: str) -> bool:
        """True for a record after which the task is already failing or stopped (``Received SIGTERM``, ``Task
        failed with exception``): errors logged after it are consequences (callbacks, cleanup, the killed process)."""
        return self.aftermath is not None and self.aftermath.search(text) is not None

    def ends_aftermath(self, text: str) -> bool:
        """True for a record that starts a new try in the same log (``Starting attempt 2 of 3``)."""
        return self.aftermath_ends is not None and self.aftermath_ends.search(text) is not None

    def is_triggered(self, text: str) -> bool:
        """Cheap pre-filter: only lines with a trigger word are matched against every rule (logs are big)."""
        return self.triggers.search(text.lower()) is not None


def load_rules(rules_file: str | os.PathLike[str] | None = None) -> RuleSet:
    """The built-in rules with ``rules_file``'s rules in front; cached per file and modification time."""
    if not rules_file:
        return _load(None, None)
    path = Path(rules_file).expanduser()
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as exc:
        raise RulesError(f"rules file {path}: cannot read it ({exc.strerror or exc})") from None
    return _load(str(path), mtime)


def configured_rules() -> RuleSet:
    """The rules the ``[dagnostics] rules_file`` option asks for."""
    from dagnostics_provider import config

    return load_rules(config.get("rules_file").strip() or None)


@functools.lru_cache(maxsize=8)
def _load(user_path: str | None, _mtime: int | None) -> RuleSet:
    builtin = resources.files("dagnostics_provider.analysis").joinpath(BUILTIN_RULES).read_text(encoding="utf-8")
    files = [(f"built-in {BUILTIN_RULES}", builtin)]
    if user_path is not None:
        try:
            files.insert(0, (user_path, Path(user_path).read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            raise RulesError(f"rules file {user_path}: cannot read it ({exc})") from None
    rules: list[Rule] = []
    boilerplate: list[str] = []
    side_effects: list[str] = []
    aftermath: list[str] = []
    aftermath_ends: list[str] = []
    triggers: list[str] = []
    seen: set[str] = set()
    for source, text in files:
        data = _document(source, text)
        for rule in _rules(source, _listed(data, "rules")):
            if rule.id not in seen:  # a user rule with a built-in's id replaces it
                seen.add(rule.id)
                rules.append(rule)
        boilerplate.extend(_patterns(source, "boilerplate", _listed(data, "boilerplate")))
        side_effects.extend(_patterns(source, "side_effects", _listed(data, "side_effects")))
        aftermath.extend(_patterns(source, "aftermath", _listed(data, "aftermath")))
        aftermath_ends.extend(_patterns(source, "aftermath_ends", _listed(data, "aftermath_ends")))
        triggers.extend(_words(source, _listed(data, "triggers")))
    return RuleSet(
        rules=tuple(rules),
        boilerplate=_any_of(boilerplate),
        side_effects=_any_of(side_effects),
        triggers=re.compile(trie_pattern(triggers)),
        aftermath=_any_of(aftermath),
        aftermath_ends=_any_of(aftermath_ends),
    )


def trie_pattern(words: list[str]) -> str:
    """One regex for "contains any of these words", factored as a trie.

    The trigger test runs on every line of logs that can be 100 MB; Python's regex engine tries the branches of a
    flat alternation one by one at every position, and a trie (plus dropping words that contain another) makes it
    several times cheaper.
    """
    unique = set(words)
    needed = sorted(w for w in unique if not any(v != w and v in w for v in unique))
    trie: dict[str, dict] = {}
    for word in needed:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def build(node: dict[str, dict]) -> str:
        branches = [re.escape(char) + build(child) for char, child in sorted(node.items()) if char]
        if "" in node:  # a word ends here, and no needed word extends it (those were dropped)
            return ""
        return branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"

    return build(trie) if needed else "(?!)"


def _listed(data: dict[str, Any], key: str) -> Any:
    """A top-level entry, with an empty key (``rules:`` and nothing else) read as an empty list."""
    value = data.get(key)
    return [] if value is None else value


def _any_of(patterns: list[str]) -> re.Pattern[str] | None:
    return re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None


def _document(source: str, text: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RulesError(f"rules file {source}: not valid YAML ({exc})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RulesError(f"rules file {source}: expected a mapping with the keys {', '.join(sorted(_TOP_KEYS))}")
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise RulesError(f"rules file {source}: unknown top-level keys {sorted(unknown)}; allowed: {sorted(_TOP_KEYS)}")
    return data


def _rules(source: str, entries: Any) -> list[Rule]:
    if not isinstance(entries, list):
        raise RulesError(f"rules file {source}: 'rules' must be a list")
    return [_rule(source, index, entry) for index, entry in enumerate(entries, start=1)]


def _rule(source: str, index: int, entry: Any) -> Rule:
    name = f"rule #{index}"
    if isinstance(entry, dict) and isinstance(entry.get("id"), str):
        name = f"rule #{index} ({entry['id']!r})"

    def fail(problem: str) -> RulesError:
        return RulesError(f"rules file {source}, {name}: {problem}")

    if not isinstance(entry, dict):
        raise fail("must be a mapping")
    unknown = set(entry) - _RULE_KEYS
    if unknown:
        raise fail(f"unknown keys {sorted(unknown)}; allowed: {sorted(_RULE_KEYS)}")
    for key in ("id", "pattern", "category"):
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            raise fail(f"'{key}' is required and must be a non-empty string")
    try:
        pattern = re.compile(entry["pattern"])
    except re.error as exc:
        raise fail(f"'pattern' is not a valid regular expression ({exc})") from None
    if entry["category"] not in CATEGORIES:
        raise fail(f"'category' must be one of {', '.join(CATEGORIES)}, got {entry['category']!r}")
    severity = entry.get("severity", "high")
    if severity not in SEVERITIES:
        raise fail(f"'severity' must be one of {', '.join(SEVERITIES)}, got {severity!r}")
    weight = entry.get("weight", 70)
    if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
        raise fail(f"'weight' must be an integer from 0 to 100, got {weight!r}")
    wrapper = entry.get("wrapper", False)
    if not isinstance(wrapper, bool):
        raise fail(f"'wrapper' must be true or false, got {wrapper!r}")
    reasoning = entry.get("reasoning", "")
    if not isinstance(reasoning, str):
        raise fail("'reasoning' must be a string")
    actions = entry.get("actions", [])
    if not isinstance(actions, list) or not all(isinstance(a, str) for a in actions):
        raise fail("'actions' must be a list of strings")
    return Rule(
        id=entry["id"],
        pattern=pattern,
        category=entry["category"],
        severity=severity,
        weight=weight,
        wrapper=wrapper,
        reasoning=reasoning.strip(),
        actions=tuple(a.strip() for a in actions if a.strip()),
        source=source,
    )


def _patterns(source: str, key: str, entries: Any) -> list[str]:
    if not isinstance(entries, list):
        raise RulesError(f"rules file {source}: '{key}' must be a list of regular expressions")
    for index, pattern in enumerate(entries, start=1):
        if not isinstance(pattern, str):
            raise RulesError(f"rules file {source}, {key} #{index}: must be a string")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise RulesError(f"rules file {source}, {key} #{index}: not a valid regular expression ({exc})") from None
    return list(entries)


def _words(source: str, entries: Any) -> list[str]:
    if not isinstance(entries, list) or not all(isinstance(w, str) and w.strip() for w in entries):
        raise RulesError(f"rules file {source}: 'triggers' must be a list of non-empty strings")
    return [w.lower() for w in entries]
