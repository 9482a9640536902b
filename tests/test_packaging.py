"""What `pip install .` installs: the wheel carries the migrations, rules and UI files, and no torch by default."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        check=True,
        timeout=300,
    )
    (path,) = out.glob("airflow_provider_dagnostics-*.whl")
    return zipfile.ZipFile(path)


def _metadata(wheel: zipfile.ZipFile, name: str) -> str:
    (entry,) = [n for n in wheel.namelist() if n.endswith(f".dist-info/{name}")]
    return wheel.read(entry).decode()


def test_wheel_ships_migrations_and_data_files(wheel):
    names = set(wheel.namelist())
    assert "dagnostics_provider/store/migrations/env.py" in names
    assert "dagnostics_provider/store/migrations/script.py.mako" in names
    assert any(n.startswith("dagnostics_provider/store/migrations/versions/0001_") for n in names)
    assert "dagnostics_provider/analysis/rules.yaml" in names
    assert "dagnostics_provider/example_dags/dagnostics_analyze_failures.py" in names
    assert not any(n.startswith("tests/") for n in names)


def test_wheel_registers_provider_plugin_and_cli(wheel):
    entry_points = _metadata(wheel, "entry_points.txt")
    assert "[apache_airflow_provider]" in entry_points
    assert "provider_info = dagnostics_provider.get_provider_info:get_provider_info" in entry_points
    assert "[airflow.plugins]" in entry_points
    assert "[console_scripts]" in entry_points and "dagnostics = dagnostics_provider.cli.main:main" in entry_points


def test_base_install_does_not_pull_torch(wheel):
    metadata = Parser().parsestr(_metadata(wheel, "METADATA"))
    requires = metadata.get_all("Requires-Dist")
    base = [r for r in requires if "extra ==" not in r]
    assert any(r.startswith("apache-airflow>=3.1") for r in base)
    heavy = ("torch", "transformers", "peft", "trl", "bitsandbytes", "accelerate", "datasets")
    assert not [r for r in base if r.split(">")[0].split("=")[0].split(";")[0].strip() in heavy]
    training = [r for r in requires if 'extra == "training"' in r]
    assert {r.split(">")[0].split(";")[0].strip() for r in training} >= set(heavy)
