"""Model registry: version numbers, idempotent reservations, promotion and rollback, remote version folders."""

from __future__ import annotations

import json
import uuid

import pytest

from dagnostics_provider.training import registry
from dagnostics_provider.training.registry import RegistryError, next_version


@pytest.fixture
def store(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'dagnostics.db'}"
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__SQL_ALCHEMY_CONN", url)
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    from dagnostics_provider.store.migrate import upgrade

    upgrade(url)
    return tmp_path / "artifacts" / "models"


def test_numbering_major_per_base_minor_per_run():
    assert next_version([], "smol") == "dagnostics-slm-v1.0"
    history = [("dagnostics-slm-v1.0", "smol"), ("dagnostics-slm-v1.1", "smol")]
    assert next_version(history, "smol") == "dagnostics-slm-v1.2"
    assert next_version(history, "qwen") == "dagnostics-slm-v2.0"
    history.append(("dagnostics-slm-v2.0", "qwen"))
    assert next_version(history, "smol") == "dagnostics-slm-v1.2"  # a base keeps its major
    assert next_version([*history, ("dagnostics-slm-v10.0", "x")], "new") == "dagnostics-slm-v11.0"


def test_version_names_are_validated():
    assert registry.parse_version("dagnostics-slm-v3.12") == (3, 12)
    with pytest.raises(RegistryError):
        registry.parse_version("dagnostics-slm-3.1")


def _trained(version: str) -> None:
    registry.record_trained(version, uri=f"/models/{version}", training_info={"base_model": "b"}, metrics={"m": 1})


def test_reservation_is_idempotent_per_run_key(store):
    first = registry.reserve_version("smol", "key-a")
    assert first.version == "dagnostics-slm-v1.0"
    assert first.uri == str(store / "dagnostics-slm-v1.0")
    assert registry.reserve_version("smol", "key-a").version == first.version  # a retry
    assert registry.reserve_version("smol", "key-b").version == "dagnostics-slm-v1.1"
    assert registry.reserve_version("qwen", "key-c").version == "dagnostics-slm-v2.0"
    assert [v.version for v in registry.list_versions()] == [
        "dagnostics-slm-v1.0",
        "dagnostics-slm-v1.1",
        "dagnostics-slm-v2.0",
    ]
    assert not first.trained
    _trained(first.version)
    record = registry.get_version(first.version)
    assert record.trained and record.metrics == {"m": 1}
    assert record.training_info["run_key"] == "key-a"  # kept, so a re-run still finds it
    assert registry.reserve_version("smol", "key-a").trained


def test_promote_retire_and_roll_back(store):
    v10 = registry.reserve_version("smol", "a").version
    v11 = registry.reserve_version("smol", "b").version
    assert registry.production_version() is None and registry.previous_production() is None
    with pytest.raises(RegistryError, match="not finished training"):
        registry.promote(v10)
    _trained(v10)
    _trained(v11)

    registry.promote(v10)
    assert registry.production_version() == v10
    assert registry.read_production_pointer()["version"] == v10
    assert registry.previous_production() is None

    registry.promote(v11)
    assert registry.production_version() == v11
    assert registry.get_version(v10).status == "retired"
    assert registry.previous_production() == v10
    pointer = json.loads((store / "production.json").read_text())
    assert pointer["version"] == v11 and pointer["previous"] == v10

    registry.promote(registry.previous_production())  # rollback
    assert registry.production_version() == v10
    assert registry.get_version(v11).status == "retired"
    assert registry.previous_production() == v11
    assert [v.status for v in registry.list_versions()].count("production") == 1


def test_unknown_version(store):
    with pytest.raises(RegistryError, match="no model version"):
        registry.promote("dagnostics-slm-v9.9")


def test_publish_to_object_storage_and_download(tmp_path):
    local = tmp_path / "dagnostics-slm-v1.0"
    (local / "adapter").mkdir(parents=True)
    (local / "adapter" / "adapter_config.json").write_text("{}")
    (local / "training_info.json").write_text('{"version": "dagnostics-slm-v1.0"}')
    root = f"memory://dagnostics-{uuid.uuid4().hex}/models"

    uri = registry.publish(local, "dagnostics-slm-v1.0", root)
    assert uri == f"{root}/dagnostics-slm-v1.0"
    copy = registry.local_copy(uri)
    assert (copy / "adapter" / "adapter_config.json").read_text() == "{}"
    assert json.loads((copy / "training_info.json").read_text())["version"] == "dagnostics-slm-v1.0"


def test_publish_in_place_is_a_no_op(tmp_path):
    local = tmp_path / "models" / "dagnostics-slm-v1.0"
    local.mkdir(parents=True)
    assert registry.publish(local, "dagnostics-slm-v1.0", tmp_path / "models") == str(local)
    assert registry.local_copy(str(local)) == local
