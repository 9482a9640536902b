"""Integrity checks for the labelled failed-task log corpus (tests/corpus).

These tests only look at the corpus files themselves; they do not import dagnostics_provider, so they keep
passing (and keep the ground truth honest) whatever state the root-cause extractor is in.
"""

from __future__ import annotations

import collections
import hashlib
import json
import re
from datetime import datetime
from pathlib import Path

import pytest

CORPUS_DIR = Path(__file__).parent
LOGS_DIR = CORPUS_DIR / "logs"
LABELS_PATH = CORPUS_DIR / "labels.json"

FORMATS = {"airflow2_text", "airflow3_json"}
SOURCES = {"python", "sql", "shell", "spark", "kubernetes", "http", "cloud_storage", "airflow"}
CATEGORIES = {
    "resource_error",
    "data_quality",
    "dependency_failure",
    "configuration_error",
    "permission_error",
    "timeout_error",
    "unknown",
}
SEVERITIES = {"low", "medium", "high", "critical"}
JSON_LEVELS = {"debug", "info", "warning", "error", "critical"}
LABEL_KEYS = {"file", "format", "source", "root_cause", "category", "severity", "note"}

MIN_LOGS = 66
MIN_PER_SOURCE = 5
MIN_PER_FORMAT = 25
# A real Airflow 3 log of a one-command BashOperator task is 14 lines (af3_json_bash_sigkill_with_listener_line).
MIN_LINES, MAX_LINES = 12, 120
# Substrings this generic would let almost any chosen line count as "correct".
GENERIC_ROOT_CAUSES = {"error", "exception", "traceback", "failed", "failure", "task failed with exception"}
AIRFLOW2_LINE = re.compile(
    r"^\[(\d{4}-\d{2}-\d{2}, \d{2}:\d{2}:\d{2} UTC|\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}[+-]\d{4})\] "
    r"\{[\w.]+:\d+\} (DEBUG|INFO|WARNING|ERROR|CRITICAL) - "
)
EXC_RECORD_KEYS = {"exc_type", "exc_value", "exc_notes", "syntax_error", "is_cause", "frames", "is_group", "exceptions"}


def _labels() -> list[dict]:
    return json.loads(LABELS_PATH.read_text(encoding="utf-8"))


LABELS = _labels()
IDS = [entry["file"] for entry in LABELS]


def _text(entry: dict) -> str:
    return (CORPUS_DIR / entry["file"]).read_text(encoding="utf-8")


def _json_records(entry: dict) -> list[dict]:
    return [json.loads(line) for line in _text(entry).splitlines()]


def _decoded_strings(records: list[dict]) -> list[str]:
    """Every human-readable string of a JSON log once decoded: events plus exception types/values."""
    out: list[str] = []
    for rec in records:
        out.append(str(rec.get("event", "")))
        for exc in rec.get("error_detail") or []:
            out.append(f"{exc.get('exc_type', '')}: {exc.get('exc_value', '')}")
    return out


def test_corpus_size():
    assert len(LABELS) >= MIN_LOGS


def test_label_entries_are_well_formed():
    files = [entry["file"] for entry in LABELS]
    assert len(files) == len(set(files)), "duplicate file entries in labels.json"
    for entry in LABELS:
        assert set(entry) == LABEL_KEYS, entry["file"]
        assert entry["file"].startswith("logs/") and entry["file"].endswith(".log"), entry["file"]
        assert entry["format"] in FORMATS, entry["file"]
        assert entry["source"] in SOURCES, entry["file"]
        assert entry["category"] in CATEGORIES, entry["file"]
        assert entry["severity"] in SEVERITIES, entry["file"]
        assert isinstance(entry["note"], str) and len(entry["note"]) > 20, entry["file"]
        assert isinstance(entry["root_cause"], list) and entry["root_cause"], entry["file"]
        for rc in entry["root_cause"]:
            assert isinstance(rc, str) and len(rc.strip()) >= 8, (entry["file"], rc)
            assert rc.strip().lower() not in GENERIC_ROOT_CAUSES, (entry["file"], rc)


def test_every_log_file_is_labelled():
    on_disk = {f"logs/{p.name}" for p in LOGS_DIR.glob("*.log")}
    assert on_disk == {entry["file"] for entry in LABELS}


def test_coverage_per_source_format_and_category():
    by_source = collections.Counter(entry["source"] for entry in LABELS)
    by_format = collections.Counter(entry["format"] for entry in LABELS)
    by_category = collections.Counter(entry["category"] for entry in LABELS)
    for source in SOURCES:
        assert by_source[source] >= MIN_PER_SOURCE, (source, by_source[source])
    for fmt in FORMATS:
        assert by_format[fmt] >= MIN_PER_FORMAT, (fmt, by_format[fmt])
    for category in CATEGORIES:
        assert by_category[category] >= 2, (category, by_category[category])
    assert by_category["unknown"] <= 5, "unknown is for logs where nothing specific can be determined"


def test_no_two_logs_identical():
    digests = collections.defaultdict(list)
    for entry in LABELS:
        digests[hashlib.sha256(_text(entry).encode("utf-8")).hexdigest()].append(entry["file"])
    duplicates = [files for files in digests.values() if len(files) > 1]
    assert not duplicates, duplicates


@pytest.mark.parametrize("entry", LABELS, ids=IDS)
def test_log_exists_and_has_realistic_length(entry):
    path = CORPUS_DIR / entry["file"]
    assert path.is_file()
    text = _text(entry)
    assert text.strip(), "empty log"
    assert MIN_LINES <= len(text.splitlines()) <= MAX_LINES


@pytest.mark.parametrize("entry", LABELS, ids=IDS)
def test_root_cause_substrings_occur_in_log(entry):
    text = _text(entry)
    for rc in entry["root_cause"]:
        assert rc in text, f"{rc!r} not found in {entry['file']}"


@pytest.mark.parametrize(
    "entry",
    [e for e in LABELS if e["format"] == "airflow3_json"],
    ids=[e["file"] for e in LABELS if e["format"] == "airflow3_json"],
)
def test_json_log_lines_are_structured_events(entry):
    records = _json_records(entry)
    assert records
    for rec in records:
        assert isinstance(rec, dict)
        assert {"timestamp", "level", "event"} <= set(rec), rec
        assert rec["level"] in JSON_LEVELS, rec["level"]
        assert isinstance(rec["event"], str)
        datetime.fromisoformat(rec["timestamp"].replace("Z", "+00:00"))
        if "error_detail" in rec:
            assert isinstance(rec["error_detail"], list) and rec["error_detail"]
            for i, exc in enumerate(rec["error_detail"]):
                assert set(exc) == EXC_RECORD_KEYS, exc.keys()
                assert isinstance(exc["exc_type"], str) and exc["exc_type"]
                assert isinstance(exc["exc_value"], str)
                assert isinstance(exc["is_cause"], bool)
                if i == 0:
                    assert exc["is_cause"] is False, "the outermost exception is never a cause"
                for frame in exc["frames"]:
                    assert set(frame) == {"filename", "lineno", "name"}
    timestamps = [datetime.fromisoformat(rec["timestamp"].replace("Z", "+00:00")) for rec in records]
    assert timestamps == sorted(timestamps), "timestamps must not go backwards"
    assert any(rec["level"] in {"error", "critical"} for rec in records), "a failed task logs at least one error"


@pytest.mark.parametrize(
    "entry",
    [e for e in LABELS if e["format"] == "airflow3_json"],
    ids=[e["file"] for e in LABELS if e["format"] == "airflow3_json"],
)
def test_json_root_causes_match_decoded_text_too(entry):
    # JSON-escaping turns " into \" and newlines into \n, so substrings for JSON logs avoid both: then they match
    # the raw file and the decoded event / exc_value text alike.
    decoded = _decoded_strings(_json_records(entry))
    for rc in entry["root_cause"]:
        assert '"' not in rc and "\\" not in rc and "\n" not in rc, rc
        assert any(rc in s for s in decoded), f"{rc!r} not in any decoded event/exception of {entry['file']}"


@pytest.mark.parametrize(
    "entry",
    [e for e in LABELS if e["format"] == "airflow2_text"],
    ids=[e["file"] for e in LABELS if e["format"] == "airflow2_text"],
)
def test_text_logs_look_like_airflow2_task_logs(entry):
    lines = _text(entry).splitlines()
    assert AIRFLOW2_LINE.match(lines[0]), lines[0]
    prefixed = [line for line in lines if AIRFLOW2_LINE.match(line)]
    assert len(prefixed) >= 10
    assert any(" ERROR - " in line for line in prefixed), "a failed task logs at least one ERROR line"
    stamps = [_airflow2_timestamp(AIRFLOW2_LINE.match(line).group(1)) for line in prefixed]
    assert stamps == sorted(stamps), "timestamps must not go backwards"


def _airflow2_timestamp(raw: str) -> datetime:
    if raw.endswith(" UTC"):
        return datetime.strptime(raw, "%Y-%m-%d, %H:%M:%S UTC")
    # second resolution so both styles compare the same way
    return datetime.strptime(raw[:19], "%Y-%m-%dT%H:%M:%S")
