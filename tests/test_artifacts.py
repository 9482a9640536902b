"""The artifact root: local folders and object storage URLs, and writes that appear whole or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from dagnostics_provider import artifacts


@pytest.fixture
def root(monkeypatch, tmp_path) -> Path:
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow"))
    monkeypatch.delenv("AIRFLOW__DAGNOSTICS__ARTIFACT_ROOT", raising=False)
    return tmp_path


def test_default_root_is_under_airflow_home(root):
    assert artifacts.artifact_root() == root / "airflow" / "dagnostics"
    assert artifacts.datasets_dir() == root / "airflow" / "dagnostics" / "data" / "training"
    assert artifacts.models_dir() == root / "airflow" / "dagnostics" / "models"


def test_configured_local_root(root, monkeypatch):
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__ARTIFACT_ROOT", str(root / "shared"))
    assert artifacts.artifact_path("models", "v1") == root / "shared" / "models" / "v1"


def test_object_storage_root(root, monkeypatch):
    from airflow.sdk import ObjectStoragePath

    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__ARTIFACT_ROOT", "memory://artifacts-test/dagnostics")
    models = artifacts.models_dir()
    assert isinstance(models, ObjectStoragePath)
    assert artifacts.to_uri(models) == "memory://artifacts-test/dagnostics/models"
    assert not artifacts.is_local(models)


def test_to_path_reads_what_to_uri_wrote(tmp_path):
    local = tmp_path / "a" / "b.json"
    assert artifacts.to_path(artifacts.to_uri(local)) == local
    assert artifacts.to_path(f"file://{local}") == local
    assert artifacts.to_path("~/x") == Path.home() / "x"
    remote = artifacts.to_path("memory://artifacts-test/x/y.json")
    assert artifacts.to_path(remote) is remote
    assert artifacts.to_path(artifacts.to_uri(remote)) == remote


def test_unknown_scheme_is_an_error():
    with pytest.raises(ValueError, match="nosuchfs"):
        artifacts.to_path("nosuchfs://bucket/x")


@pytest.mark.parametrize("location", ["local", "memory://artifacts-test/atomic"])
def test_atomic_writer_replaces_whole_files_only(location, tmp_path):
    folder = artifacts.to_path(tmp_path / "deep" / "folder" if location == "local" else location)
    target = folder / "info.json"

    with artifacts.atomic_writer(target, "w") as out:
        out.write('{"version": 1}\n')
    assert target.read_text() == '{"version": 1}\n'

    with pytest.raises(RuntimeError), artifacts.atomic_writer(target, "w") as out:
        out.write('{"version": 2, "trunc')
        raise RuntimeError("crash halfway")
    assert target.read_text() == '{"version": 1}\n'  # the old file, untouched
    assert [p.name for p in folder.iterdir()] == ["info.json"]  # and no temporary file left

    with artifacts.atomic_writer(target) as out:
        out.write("naïve\n".encode())
    assert target.read_bytes() == "naïve\n".encode()


def test_atomic_writer_refuses_appending(tmp_path):
    with pytest.raises(ValueError, match="new files only"), artifacts.atomic_writer(tmp_path / "x", "a"):
        pass
