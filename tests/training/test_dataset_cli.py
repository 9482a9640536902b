"""``dagnostics training`` feedback-stats, export-feedback and generate-dataset, as the guide documents them."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest

from dagnostics_provider.cli.main import main
from dagnostics_provider.store.datasets import latest_dataset_version
from tests.training.dataset_factories import SCENARIOS, StoreFactory

# The store fixtures (store_url, migrated_store_url) over SQLite and PostgreSQL, shared with tests/store.
pytest_plugins = ["tests.store.conftest"]


@pytest.fixture
def store(migrated_store_url, monkeypatch, tmp_path) -> str:
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__SQL_ALCHEMY_CONN", migrated_store_url)
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    return migrated_store_url


def test_generate_dataset_with_the_guides_options(store, tmp_path, capsys):
    StoreFactory(store).reviewed_failures(12)
    out = tmp_path / "data" / "training"

    code = main(
        ["training", "generate-dataset", "--output-dir", str(out), "--min-examples", "20", "--include-feedback", "true"]
    )

    printed = capsys.readouterr().out
    assert code == 0
    version = latest_dataset_version().version
    assert f"Dataset {version} (new version)" in printed
    assert str(out / version / "train_dataset.jsonl") in printed
    assert sorted(p.name for p in (out / version).iterdir()) == [
        "dataset_info.json",
        "train_dataset.jsonl",
        "validation_dataset.jsonl",
    ]


def test_generate_dataset_json_output_defaults_to_the_artifact_root(store, tmp_path, capsys):
    StoreFactory(store).reviewed_failures(12)

    assert main(["training", "generate-dataset", "--min-examples", "5", "--format", "json", "--seed", "9"]) == 0

    result = json.loads(capsys.readouterr().out)
    assert Path(result["uri"]).parent == tmp_path / "artifacts" / "data" / "training"
    assert json.loads(Path(result["info_path"]).read_text())["parameters"]["seed"] == 9


def test_too_few_examples_exit_non_zero_with_the_counts(store, capsys):
    StoreFactory(store).reviewed_failures(5, repeats=1)

    code = main(["training", "generate-dataset", "--include-feedback", "false"])

    assert code == 2
    err = capsys.readouterr().err
    assert "dagnostics: error: Only 1 accepted-as-is examples (rating >= 3); at least 50 are needed." in err


def test_bad_option_values_are_usage_errors(store, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["training", "generate-dataset", "--include-feedback", "maybe"])
    assert exited.value.code == 2
    assert "expected true or false" in capsys.readouterr().err
    assert main(["training", "generate-dataset", "--validation-ratio", "1.5"]) == 2
    assert "validation_ratio must be at least 0 and below 1" in capsys.readouterr().err


def test_an_unmigrated_store_is_a_clear_error(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__SQL_ALCHEMY_CONN", f"sqlite:///{tmp_path / 'new.db'}")
    assert main(["training", "feedback-stats"]) == 2
    assert "run `dagnostics db migrate` first" in capsys.readouterr().err


def test_feedback_stats(store, capsys):
    factory = StoreFactory(store)
    factory.reviewed_failures(7, repeats=1, rating=4)
    factory.review(factory.failure(SCENARIOS[0], variant=50), rating=1)

    assert main(["training", "feedback-stats"]) == 0
    text = capsys.readouterr().out
    assert "Reviews:           8" in text
    assert "Average rating:    3.62 / 5" in text
    assert "Categories (as reviewed):" in text
    assert re.search(r"^  dependency_failure +2$", text, re.MULTILINE)

    assert main(["training", "feedback-stats", "--format", "json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["total_feedback_count"] == 8
    assert stats["category_distribution"]["dependency_failure"] == 2


def test_export_feedback_to_stdout_as_jsonl(store, capsys):
    factory = StoreFactory(store)
    kept = factory.review(factory.failure(), rating=3)
    factory.review(factory.failure(SCENARIOS[1], variant=1), SCENARIOS[1], rating=2)

    assert main(["training", "export-feedback", "--min-rating", "3"]) == 0

    captured = capsys.readouterr()
    rows = [json.loads(line) for line in captured.out.splitlines()]
    assert [row["review_id"] for row in rows] == [kept]
    assert "Exported 1 reviews (rating >= 3)." in captured.err


def test_export_feedback_to_a_csv_file(store, tmp_path, capsys):
    factory = StoreFactory(store)
    factory.reviewed_failures(3, repeats=1, rating=5)
    target = tmp_path / "exports" / "feedback.csv"

    assert main(["training", "export-feedback", "--output", str(target), "--format", "csv"]) == 0

    assert f"Exported 3 reviews (rating >= 3) to {target}" in capsys.readouterr().out
    records = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8"))))
    assert len(records) == 3 and {r["rating"] for r in records} == {"5"}
    assert [p.name for p in target.parent.iterdir()] == ["feedback.csv"]  # no temporary file left behind
