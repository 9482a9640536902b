"""`make demo` brings up a working Airflow with DAGnostics: the printed URL answers and the printed login works."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "scripts" / "demo.sh"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    demo_dir = tmp_path_factory.mktemp("demo")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW") and k != "DAGNOSTICS_TEST_PG_URL"}
    env.update(DEMO_DIR=str(demo_dir), DEMO_PORT=str(_free_port()), VENV=str(Path(sys.executable).parent.parent))
    started = subprocess.run(["bash", str(DEMO)], env=env, capture_output=True, text=True, timeout=400)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield demo_dir, started.stdout
    finally:
        subprocess.run(["bash", str(DEMO), "stop"], env=env, capture_output=True, timeout=120)


@pytest.mark.slow
def test_demo_serves_airflow_with_dagnostics(demo):
    demo_dir, banner = demo
    url = re.search(r"Airflow UI:\s+(\S+)", banner).group(1)
    user, password = re.search(r"Log in as:\s+(\S+) / (\S+)", banner).groups()

    assert requests.get(f"{url}api/v2/monitor/health", timeout=10).status_code == 200
    token = requests.post(f"{url}auth/token", json={"username": user, "password": password}, timeout=30)
    assert token.status_code in (200, 201), token.text
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    providers = requests.get(f"{url}api/v2/providers", headers=headers, timeout=30).json()
    assert "airflow-provider-dagnostics" in {p["package_name"] for p in providers["providers"]}
    plugins = requests.get(f"{url}api/v2/plugins", headers=headers, timeout=30).json()
    assert "dagnostics" in {p["name"] for p in plugins["plugins"]}

    env = (demo_dir / "env.sh").read_text()
    check = subprocess.run(
        ["bash", "-c", f"source {demo_dir / 'env.sh'} && dagnostics db check"], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "AIRFLOW_HOME" in env
