"""Integrity of the real-log corpus (tests/real_corpus): provenance, verbatim labels, diversity and the split.

Only the corpus files are read here, never dagnostics_provider, so the ground truth is checked whatever state the
analyzer is in.  The last test guards the held-out split: no rule, prompt, test or benchmark may name a held-out
case, so nothing can be tuned on it by accident.
"""

from __future__ import annotations

import collections
import hashlib
import json
import re
from pathlib import Path

import pytest

from tests.real_corpus.corpus_meta import (
    CORPUS_DIR,
    README_PATH,
    hashed_split,
    load_labels,
    readme_with_counts,
    split_labels,
)

REPO_ROOT = CORPUS_DIR.parents[1]
LOGS_DIR = CORPUS_DIR / "logs"
FORMATS = {"airflow1_text", "airflow2_text", "airflow3_text", "airflow3_json"}
CATEGORIES = {
    "timeout_error",
    "resource_error",
    "permission_error",
    "configuration_error",
    "dependency_failure",
    "data_quality",
    "unknown",
}
SEVERITIES = {"low", "medium", "high", "critical"}
REQUIRED_KEYS = {
    "id",
    "file",
    "repo",
    "provenance",
    "path",
    "commit",
    "excerpt",
    "masked",
    "format",
    "root_cause",
    "category",
    "severity",
    "deliberate",
    "note",
    "split",
}
OPTIONAL_KEYS = {"lines"}
MIN_LOGS = 200
MIN_REPOS = 40
MAX_SHARE_PER_REPO = 0.10
MIN_HELDOUT_SHARE = 0.30
GENERIC_ROOT_CAUSES = {"error", "exception", "traceback", "failed", "failure", "task failed with exception"}
LEVEL_PREFIX = re.compile(r"^(?:\[[^\]]*\]\s*)?(?:\{[^}]*\}\s*)?(?:DEBUG|INFO|WARNING|ERROR|CRITICAL) - ")
ID_PATTERN = re.compile(r"^[a-z0-9_-]+--[a-z0-9_.-]+--[a-z0-9_-]+$")
REPO_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*/[A-Za-z0-9._-]+$")
THREAD_URL = re.compile(r"^https://github\.com/(?P<repo>[^/]+/[^/]+)/(?:issues|pull|discussions)/\d+(?:#\S*)?$")
# Where a rule, prompt, test or benchmark could name a case; the corpus's own files are the only exception.
GUARDED_GLOBS = ("dagnostics_provider/**/*", "tests/**/*.py", "benchmarks/**/*.py", "docs/**/*.md", "scripts/**/*")
# A held-out root-cause string this long appearing in the rules or a test would be tuning on it.
MIN_GUARDED_ROOT_CAUSE_CHARS = 24

LABELS = load_labels()
IDS = [entry["id"] for entry in LABELS]


def _text(entry: dict) -> str:
    return (CORPUS_DIR / entry["file"]).read_text(encoding="utf-8", errors="replace")


def _decoded_strings(text: str) -> list[str]:
    """The readable strings of a JSON-lines log once decoded: events plus exception types and values."""
    out: list[str] = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            out.append(line)
            continue
        if not isinstance(record, dict):
            continue
        out.append(str(record.get("event", "")))
        for exc in record.get("error_detail") or []:
            if isinstance(exc, dict):
                out.append(f"{exc.get('exc_type', '')}: {exc.get('exc_value', '')}")
    return out


def test_corpus_size_and_diversity():
    repos = collections.Counter(entry["repo"] for entry in LABELS)
    assert len(LABELS) >= MIN_LOGS
    assert len(repos) >= MIN_REPOS
    repo, most = repos.most_common(1)[0]
    assert most / len(LABELS) <= MAX_SHARE_PER_REPO, f"{repo} has {most} of {len(LABELS)} logs"


def test_every_log_is_labelled_once():
    assert len(set(IDS)) == len(IDS)
    on_disk = {p.name for p in LOGS_DIR.glob("*.log")}
    labelled = {Path(entry["file"]).name for entry in LABELS}
    assert on_disk == labelled


def test_no_log_is_in_the_corpus_twice():
    digests = collections.Counter(hashlib.sha256((CORPUS_DIR / e["file"]).read_bytes()).hexdigest() for e in LABELS)
    assert max(digests.values()) == 1


@pytest.mark.parametrize("entry", LABELS, ids=IDS)
def test_label_fields(entry):
    assert REQUIRED_KEYS <= set(entry) <= REQUIRED_KEYS | OPTIONAL_KEYS
    assert ID_PATTERN.match(entry["id"]), entry["id"]
    assert entry["file"] == f"logs/{entry['id']}.log"
    assert entry["format"] in FORMATS
    assert entry["category"] in CATEGORIES
    assert entry["severity"] in SEVERITIES
    assert isinstance(entry["deliberate"], bool) and isinstance(entry["excerpt"], bool)
    assert isinstance(entry["masked"], list)
    assert entry["note"].strip()
    if "lines" in entry:
        first, last = entry["lines"]
        assert entry["excerpt"] and 1 <= first <= last


@pytest.mark.parametrize("entry", LABELS, ids=IDS)
def test_provenance(entry):
    """A committed file at a commit, or a GitHub thread of the same repository."""
    assert REPO_PATTERN.match(entry["repo"]), entry["repo"]
    if entry["commit"] is not None:
        assert re.fullmatch(r"[0-9a-f]{40}", entry["commit"])
        assert entry["path"]
        prefix = f"https://github.com/{entry['repo']}/blob/{entry['commit']}/"
        assert entry["provenance"].startswith(prefix), entry["provenance"]
    else:
        assert entry["path"] is None and entry["excerpt"], "a thread is always an excerpt"
        thread = THREAD_URL.match(entry["provenance"])
        assert thread and thread["repo"].lower() == entry["repo"].lower(), entry["provenance"]


@pytest.mark.parametrize("entry", LABELS, ids=IDS)
def test_root_cause_is_verbatim(entry):
    text = _text(entry)
    assert entry["root_cause"]
    for accepted in entry["root_cause"]:
        assert accepted.strip().lower() not in GENERIC_ROOT_CAUSES
        assert len(accepted.strip()) >= 6, accepted
        # The analysis reports a line's message; Airflow's "[ts] {file.py:1} ERROR - " prefix is not part of it.
        assert not LEVEL_PREFIX.match(accepted), f"{accepted!r} starts with the record prefix, not the message"
        assert accepted in text, f"{accepted!r} is not in {entry['file']}"
        if entry["format"] == "airflow3_json":
            assert not set(accepted) & {'"', "\\", "\n"}, accepted
            assert any(accepted in s for s in _decoded_strings(text)), accepted


def test_split_is_by_repository():
    for entry in LABELS:
        assert entry["split"] == hashed_split(entry["repo"]), entry["id"]
    heldout = split_labels(LABELS, "heldout")
    assert len(heldout) / len(LABELS) >= MIN_HELDOUT_SHARE
    assert not {e["repo"] for e in heldout} & {e["repo"] for e in split_labels(LABELS, "dev")}


def test_readme_counts_are_current():
    readme = README_PATH.read_text(encoding="utf-8")
    assert readme_with_counts(readme, LABELS) == readme, "run python tests/real_corpus/corpus_meta.py"


# Wording with no name, path, number or quoted value in it ("unexpected EOF while looking for matching") is a
# library's message, not a case's, and may well be in a rule written for another log.
_CASE_SPECIFIC = re.compile(r"['\"/=_\d]|\w\.\w")


def _generic_texts() -> set[str]:
    """Held-out root-cause texts that are a library's message rather than one case's: plain wording, or found in the
    logs of another repository (either split) or in the hand-written unit corpus."""
    logs_by_repo = collections.defaultdict(list)
    for entry in LABELS:
        logs_by_repo[entry["repo"]].append(_text(entry))
    unit_logs = "\n".join(
        p.read_text(encoding="utf-8") for p in (REPO_ROOT / "tests" / "corpus" / "logs").glob("*.log")
    )
    generic = set()
    for entry in split_labels(LABELS, "heldout"):
        others = "\n".join(t for repo, texts in logs_by_repo.items() if repo != entry["repo"] for t in texts)
        generic |= {s for s in entry["root_cause"] if not _CASE_SPECIFIC.search(s) or s in others or s in unit_logs}
    return generic


def test_nothing_names_a_heldout_case():
    """Nothing outside the corpus names a held-out case; the analyzer's rules and prompt never quote its root cause.

    Names (ids, file names) are guarded everywhere: rules, prompts, tests, benchmarks, docs and scripts.  Root-cause
    text is guarded in the package (rules.yaml, the prompt, the analyzer), where quoting it would tune on it; text
    that other repositories' logs carry too is a library's message, not the case's.
    """
    heldout = split_labels(LABELS, "heldout")
    names = {e["id"] for e in heldout}
    texts = {s for e in heldout for s in e["root_cause"] if len(s) >= MIN_GUARDED_ROOT_CAUSE_CHARS} - _generic_texts()
    offenders = []
    for pattern in GUARDED_GLOBS:
        for path in REPO_ROOT.glob(pattern):
            if not path.is_file() or CORPUS_DIR in path.parents or "__pycache__" in path.parts:
                continue
            content = path.read_text(encoding="utf-8", errors="replace")
            where = path.relative_to(REPO_ROOT)
            offenders += [f"{where} names {n}" for n in names if n in content]
            if where.parts[0] == "dagnostics_provider":
                offenders += [f"{where} quotes {t!r}" for t in texts if t in content]
    assert not offenders, offenders
