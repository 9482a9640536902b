"""The running demo (``scripts/demo.sh`` in a temporary directory), shared by the demo's tests, and helpers."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.airflow_env import free_port

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "scripts" / "demo.sh"


@pytest.fixture(scope="package")
def demo(tmp_path_factory):
    demo_dir = tmp_path_factory.mktemp("demo")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW") and k != "DAGNOSTICS_TEST_PG_URL"}
    env.update(
        DEMO_DIR=str(demo_dir),
        DEMO_PORT=str(free_port()),
        DEMO_WORKER_LOG_PORT=str(free_port()),
        DEMO_TRIGGER_LOG_PORT=str(free_port()),
        VENV=str(Path(sys.executable).parent.parent),
    )
    started = subprocess.run(["bash", str(DEMO)], env=env, capture_output=True, text=True, timeout=400)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield demo_dir, started.stdout
    finally:
        subprocess.run(["bash", str(DEMO), "stop"], env=env, capture_output=True, timeout=120)


def login(banner: str) -> tuple[str, str, str]:
    """The Airflow URL (ending in ``/``), user and password the demo's banner prints."""
    url = re.search(r"Airflow UI:\s+(\S+)", banner).group(1)
    user, password = re.search(r"Log in as:\s+(\S+) / (\S+)", banner).groups()
    return url, user, password


def api_headers(banner: str) -> dict[str, str]:
    url, user, password = login(banner)
    token = requests.post(f"{url}auth/token", json={"username": user, "password": password}, timeout=30)
    assert token.status_code in (200, 201), token.text
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


def in_demo(demo_dir: Path, command: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", f"source {demo_dir / 'env.sh'} && {command}"], capture_output=True, text=True, timeout=180
    )


def recorded(demo_dir: Path) -> list[dict]:
    listed = in_demo(demo_dir, "dagnostics failures list --limit 50 --format json")
    assert listed.returncode == 0, listed.stderr
    return json.loads(listed.stdout)


def wait(condition, timeout: float, what: str, interval: float = 3):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"demo: timed out after {timeout}s waiting for {what}")
