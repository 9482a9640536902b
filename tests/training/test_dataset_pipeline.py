"""The dataset in its surroundings: the analyzer's real request, the operator, object storage."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dagnostics_provider import artifacts
from dagnostics_provider.analysis.llm import LLMAnalyzer
from dagnostics_provider.analysis.schema import AnalysisResult
from dagnostics_provider.analysis.service import analyze_failure
from dagnostics_provider.hooks.ollama import OllamaHook
from dagnostics_provider.logs.local import task_log_path
from dagnostics_provider.operators.dataset import GenerateDatasetOperator
from dagnostics_provider.store import failures
from dagnostics_provider.store.datasets import latest_dataset_version
from dagnostics_provider.training.dataset import INFO_FILE, DatasetOptions, generate_dataset
from tests.fakes.fake_ollama import DEFAULT_MODEL, FakeOllama
from tests.training.dataset_factories import StoreFactory

# The store fixtures (store_url, migrated_store_url) over SQLite and PostgreSQL, shared with tests/store.
pytest_plugins = ["tests.store.conftest"]
CORPUS_LOG = Path(__file__).resolve().parents[1] / "corpus" / "logs" / "af3_json_connection_not_defined.log"
ANSWER = AnalysisResult(
    error_message="airflow.exceptions.AirflowNotFoundException: The conn_id `warehouse` isn't defined",
    category="configuration_error",
    severity="high",
    confidence=0.8,
    reasoning="The connection is missing.",
)


@pytest.fixture
def store(migrated_store_url, monkeypatch, tmp_path) -> str:
    """The store as the default of this process (what the operator and the analyzer use)."""
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__SQL_ALCHEMY_CONN", migrated_store_url)
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    return migrated_store_url


def test_input_is_exactly_what_the_analyzer_sent(store, monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__LOG_SOURCE", "local")
    monkeypatch.setenv("AIRFLOW__LOGGING__BASE_LOG_FOLDER", str(tmp_path / "logs"))
    ref = dict(dag_id="warehouse_sync", task_id="extract", run_id="manual__2026-11-02T00:00:00+00:00", try_number=1)
    log_path = task_log_path(ref["dag_id"], ref["run_id"], ref["task_id"], ref["try_number"])
    log_path.parent.mkdir(parents=True)
    shutil.copyfile(CORPUS_LOG, log_path)
    failure_id = failures.record_failure(failures.FailureRecord(**ref))

    with FakeOllama() as fake:
        fake.answers[DEFAULT_MODEL] = lambda request: ANSWER.to_json()
        analyzer = LLMAnalyzer("ollama", OllamaHook(base_url=fake.url, timeout=5), temperature=0.1, max_retries=0)
        analysis_id, _ = analyze_failure(failure_id, analyzer)
        (sent,) = fake.json_requests("/api/chat")
    StoreFactory(store).review((failure_id, analysis_id), rating=5, category="configuration_error")

    result = generate_dataset(options=DatasetOptions(min_examples=1))

    lines = Path(result.train_path).read_text().splitlines() + Path(result.validation_path).read_text().splitlines()
    (row,) = [json.loads(line) for line in lines]
    assert row["prompt"] == sent["messages"]
    assert row["input"] == sent["messages"][1]["content"]
    assert row["instruction"] == sent["messages"][0]["content"]
    assert "isn't defined" in row["input"]
    assert Path(result.uri).parent == tmp_path / "artifacts" / "data" / "training"


def test_operator_returns_paths_and_version(store, tmp_path):
    StoreFactory(store).reviewed_failures(10)
    operator = GenerateDatasetOperator(task_id="generate_dataset", min_examples=5, seed=1)

    returned = operator.execute(context={})

    assert json.loads(json.dumps(returned)) == returned  # XCom-serialisable as is
    assert returned["version"] == latest_dataset_version().version
    assert Path(returned["train_path"]).is_file() and Path(returned["validation_path"]).is_file()
    assert json.loads(Path(returned["info_path"]).read_text())["version"] == returned["version"]
    assert returned["train_count"] + returned["validation_count"] == 19
    assert returned["reused"] is False
    assert returned["uri"].startswith(str(tmp_path / "artifacts" / "data" / "training"))


def test_operator_skips_with_the_counts_when_there_are_too_few(store):
    from dagnostics_provider.compat import AirflowSkipException

    StoreFactory(store).reviewed_failures(4, repeats=1)
    operator = GenerateDatasetOperator(task_id="generate_dataset")

    with pytest.raises(
        AirflowSkipException, match=r"^Only 4 reviewed examples \(rating >= 3\); at least 50 are needed"
    ):
        operator.execute(context={})


def test_dataset_written_to_object_storage_through_the_artifact_root(store, monkeypatch):
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__ARTIFACT_ROOT", "memory://dagnostics-test/artifacts")
    StoreFactory(store).reviewed_failures(8)

    result = GenerateDatasetOperator(task_id="generate_dataset", min_examples=5).execute(context={})

    assert result["uri"].startswith("memory://dagnostics-test/artifacts/data/training/ds-")
    folder = artifacts.to_path(result["uri"])
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["train_dataset.jsonl", "validation_dataset.jsonl", INFO_FILE]
    )
    lines = artifacts.to_path(result["train_path"]).read_text(encoding="utf-8").splitlines()
    assert len(lines) == result["train_count"]
    info = json.loads(artifacts.to_path(result["info_path"]).read_text())
    assert info["version"] == result["version"]
    assert latest_dataset_version().uri == result["uri"]
    # A rerun finds the version's files in object storage and does not write them again.
    again = GenerateDatasetOperator(task_id="generate_dataset", min_examples=5).execute(context={})
    assert again["reused"] and again["version"] == result["version"]
