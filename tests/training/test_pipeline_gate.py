from __future__ import annotations

import pytest

from dagnostics_provider.notifications.retraining import NotifierConfigurationError, configured_notifiers
from dagnostics_provider.training.pipeline import NotEnoughFeedback, deployment_gate, summary_text


def _metrics(fine_tuned, *, base=None, production=None):
    return {"fine_tuned": fine_tuned, "base": base, "production": production}


def test_candidate_must_beat_production_on_one_metric_and_lose_on_none():
    production = {"category_accuracy": 0.70, "schema_valid_rate": 0.90}
    better = deployment_gate(_metrics({"category_accuracy": 0.75, "schema_valid_rate": 0.90}, production=production))
    assert better.deploy and better.compared_to == "production"
    assert "beats production on category_accuracy" in better.reason

    same = deployment_gate(_metrics(dict(production), production=production))
    assert not same.deploy and "no better than production" in same.reason

    traded = deployment_gate(_metrics({"category_accuracy": 0.9, "schema_valid_rate": 0.85}, production=production))
    assert not traded.deploy and "worse than production on schema_valid_rate" in traded.reason


def test_without_production_the_base_model_is_the_bar():
    decision = deployment_gate(
        _metrics(
            {"category_accuracy": 0.4, "schema_valid_rate": 1.0},
            base={"category_accuracy": 0.0, "schema_valid_rate": 0.0},
        )
    )
    assert decision.deploy and decision.compared_to == "base"


def test_missing_metrics_never_pass():
    decision = deployment_gate(_metrics({"category_accuracy": 0.9}, base={"category_accuracy": 0.1}))
    assert not decision.deploy and "missing metrics schema_valid_rate" in decision.reason
    assert not deployment_gate({}).deploy


def test_not_enough_feedback_says_how_many():
    error = NotEnoughFeedback(3, 20, "ds-20261125-000000-abcdef12")
    assert str(error) == (
        "Only 3 new reviews since dataset ds-20261125-000000-abcdef12 (the production model's); "
        "at least 20 are needed to retrain."
    )


def test_summary_names_every_step():
    text = summary_text(
        {
            "feedback": {"new_reviews": 25, "since_dataset": None},
            "dataset": {"version": "ds-1", "train_count": 20, "validation_count": 5},
            "model": {"version": "dagnostics-slm-v1.0", "metrics": {"fine_tuned": {"category_accuracy": 0.8}}},
            "gate": {"deploy": True, "reason": "beats base"},
            "deployment": {"tag": "dagnostics-slm:v1.0", "alias": "dagnostics-slm:latest", "target": "http://o:11434"},
        }
    )
    assert "new reviews: 25" in text and "dataset: ds-1 (20 train / 5 validation)" in text
    assert "deployed: dagnostics-slm:v1.0 as dagnostics-slm:latest" in text


def test_notifier_from_configuration(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW__DAGNOSTICS__RETRAINING_NOTIFIER", "airflow.providers.smtp.notifications.smtp.SmtpNotifier"
    )
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__RETRAINING_NOTIFIER_KWARGS", '{"to": "oncall@example.com"}')
    (notifier,) = configured_notifiers()
    assert type(notifier).__name__ == "SmtpNotifier"
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__RETRAINING_NOTIFIER", "no.such.Notifier")
    with pytest.raises(NotifierConfigurationError, match="cannot be imported"):
        configured_notifiers()
    monkeypatch.delenv("AIRFLOW__DAGNOSTICS__RETRAINING_NOTIFIER")
    assert configured_notifiers() == []


class _Trained(Exception):
    """Stops the pipeline where training would start; carries what it would have trained with."""


def test_the_pipeline_command_trains_with_the_cpu_levers_it_was_given(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from dagnostics_provider.cli.main import main
    from dagnostics_provider.store.migrate import upgrade
    from dagnostics_provider.training import dataset, pipeline, workflow

    url = f"sqlite:///{tmp_path / 'dagnostics.db'}"
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__SQL_ALCHEMY_CONN", url)
    upgrade(url)
    monkeypatch.setattr(pipeline, "check_feedback", lambda *_: {"new_feedback": 25})
    generated = SimpleNamespace(to_dict=dict, train_path="train.jsonl", validation_path="validation.jsonl")
    monkeypatch.setattr(dataset, "generate_dataset", lambda **_: generated)

    def train_version(params, *_, **__):
        raise _Trained(params)

    monkeypatch.setattr(workflow, "train_version", train_version)
    command = ["training", "pipeline", "--force-cpu", "--batch-size", "1", "--gradient-accumulation-steps", "4"]
    with pytest.raises(_Trained) as trained:
        main([*command, "--cpu-activation-checkpointing", "--cpu-bf16", "--lora-dropout", "0"])
    params = trained.value.args[0]
    assert (params.batch_size, params.gradient_accumulation_steps, params.lora_dropout) == (1, 4, 0.0)
    assert params.cpu_activation_checkpointing and params.cpu_bf16 and params.force_cpu

    with pytest.raises(_Trained) as trained:
        main(["training", "pipeline"])
    defaults = trained.value.args[0]
    assert (defaults.gradient_accumulation_steps, defaults.lora_dropout, defaults.cpu_bf16) == (1, 0.1, False)
