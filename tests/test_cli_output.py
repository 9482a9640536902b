"""stdout carries results and help only; logs and errors go to stderr (so JSON output can be piped)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from dagnostics_provider import __version__

DAGNOSTICS = str(Path(sys.executable).with_name("dagnostics"))


def _run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([DAGNOSTICS, *args], input=stdin, capture_output=True, timeout=120)


def test_help_and_version_print_on_stdout():
    assert _run("--version").stdout.decode().strip() == f"dagnostics {__version__}"
    assert "feedback-stats" in _run("training", "--help").stdout.decode()


def test_json_output_is_the_only_thing_on_stdout(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW__DAGNOSTICS__LLM_BASE_URL", "http://127.0.0.1:9"
    )  # nothing listens: a warning is logged
    done = _run("analyze-log", "--format", "json", stdin=b"ERROR - boom: Connection refused\n")
    assert done.returncode == 0
    assert json.loads(done.stdout)["analyzer"] == "heuristic"
    assert b"ollama unavailable" in done.stderr
