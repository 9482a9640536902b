"""Evaluation by generation, and the whole loop through the operator and the CLI on tiny random models."""

from __future__ import annotations

import json
import logging

import pytest

from dagnostics_provider import prompt_format
from dagnostics_provider.training import model_loading, registry, sft_data
from dagnostics_provider.training.evaluation import LoadedModel, evaluate_version, generate_answers
from dagnostics_provider.training.metrics import METRIC_NAMES
from dagnostics_provider.training.trainer import train
from tests.training import tiny_models
from tests.training.tiny_models import quick_params

QUICK_CLI = ["--epochs", "1", "--batch-size", "4", "--max-length", "512", "--learning-rate", "5e-3"]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Offline hub, a migrated store and an artifact root of this module's own."""
    root = tmp_path_factory.mktemp("env")
    url = f"sqlite:///{root / 'dagnostics.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("AIRFLOW__DAGNOSTICS__SQL_ALCHEMY_CONN", url)
        patch.setenv("AIRFLOW__DAGNOSTICS__ARTIFACT_ROOT", str(root / "artifacts"))
        from dagnostics_provider.store.migrate import upgrade

        upgrade(url)
        tiny_models.limit_threads()
        yield root


@pytest.fixture(scope="module")
def llama_dir(env):
    return tiny_models.llama(env / "llama")


@pytest.fixture(scope="module")
def data(env):
    return tiny_models.write_dataset(env / "data")


def _assert_all_metrics(scores: dict, examples: int) -> None:
    assert set(METRIC_NAMES) <= set(scores)
    assert scores["examples"] == examples
    for name in METRIC_NAMES:
        if name not in ("examples", "mean_confidence"):
            assert 0.0 <= scores[name] <= 1.0


def test_evaluation_generates_and_scores_fine_tuned_base_and_production(llama_dir, data, tmp_path):
    version_dir = train(quick_params(llama_dir), *data, tmp_path / "v").output_dir
    results = evaluate_version(
        version_dir, data[1], production_dir=version_dir, production_version="prod", max_new_tokens=24, batch_size=4
    )
    for model in ("fine_tuned", "base", "production"):
        _assert_all_metrics(results[model], 6)
    assert results["production_version"] == "prod" and results["examples"] == 6 and results["max_new_tokens"] == 24
    assert results["dataset"] == str(data[1])
    assert len(results["samples"]) == 3 and {"reference", "fine_tuned"} <= set(results["samples"][0])
    # The same weights without the adapter are a different model: LoRA changed what it generates or scores.
    assert json.loads((version_dir / "evaluation_results.json").read_text())["fine_tuned"] == results["fine_tuned"]
    # Every answer is kept with its verdicts, and the verdicts add up to the reported rates.
    rows = [json.loads(line) for line in (version_dir / "evaluation_predictions.jsonl").read_text().splitlines()]
    assert results["predictions_file"] == "evaluation_predictions.jsonl" and len(rows) == 6
    assert [row["index"] for row in rows] == list(range(6)) and all(row["id"] for row in rows)
    for model in ("fine_tuned", "base", "production"):
        assert all(isinstance(row[model]["answer"], str) for row in rows)
        verdicts = [row[model]["verdicts"] for row in rows]
        assert sum(v["schema_valid"] for v in verdicts) / 6 == results[model]["schema_valid_rate"]
        assert sum(v["category"] for v in verdicts) / 6 == results[model]["category_accuracy"]
    assert {"error_message", "category", "severity"} <= set(rows[0]["reference"])


def test_seq2seq_generation_is_evaluated(env, data, tmp_path):
    base = tiny_models.t5(tmp_path / "t5")
    version_dir = train(quick_params(base), *data, tmp_path / "v").output_dir
    results = evaluate_version(version_dir, data[1], include_base=False, max_new_tokens=16)
    _assert_all_metrics(results["fine_tuned"], 6)
    assert results["base"] is None and results["production"] is None


# A Qwen2.5-style template whose turns end with a plain-text marker of several tokens.
PLAIN_END_TEMPLATE = tiny_models.CHATML_TEMPLATE.replace("'<|im_end|>' + '\n'", "'\n### End\n'")


def _scripted_answers(directory, chat_template: str, ending: list[str]) -> tuple[list[str], str]:
    """What a Qwen2.5-style model (EOS ``<|endoftext|>``) answers when it says three tokens, then ``ending``, then
    the same token over and over; and the three tokens as text, which is all its answer should be."""
    from transformers import AutoModelForCausalLM

    base = tiny_models.llama(directory, eos="<|endoftext|>")
    tokenizer = model_loading.load_tokenizer(str(base))
    tokenizer.chat_template = chat_template
    model = AutoModelForCausalLM.from_pretrained(base).eval()
    contexts = [row["input"].removeprefix(prompt_format.INPUT_HEADER) for row in tiny_models.rows(3, seed=5)]
    words = [300, 301, 302]
    ending_ids = [i for text in ending for i in tokenizer(text, add_special_tokens=False)["input_ids"]]
    after = sft_data.prompt_ids(tokenizer, contexts[0], sft_data.CHAT_TEMPLATE)[-1]
    tiny_models.script_answers(model, after, [*words, *ending_ids, 303])
    loaded = LoadedModel(model, tokenizer, sft_data.CHAT_TEMPLATE, model_loading.CAUSAL_LM, 512)
    return generate_answers(loaded, contexts, max_new_tokens=12, batch_size=2), tokenizer.decode(words).strip()


def test_generation_stops_at_an_end_of_turn_token_that_is_not_eos(env, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="dagnostics_provider.training.evaluation")
    answers, said = _scripted_answers(tmp_path / "qwen", tiny_models.CHATML_TEMPLATE, ["<|im_end|>"])
    assert answers == [said] * 3  # not the token repeated after <|im_end|> up to max_new_tokens
    # Progress after every batch of two, for the task log of a generation that takes minutes per batch.
    progress = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Generating with the model:")]
    assert [message.split(",")[0] for message in progress] == [
        "Generating with the model: 2/3 answered",
        "Generating with the model: 3/3 answered",
    ]
    assert progress[-1].endswith("ETA 0m00s")


def test_an_answer_is_cut_at_an_end_of_turn_marker_of_several_tokens(env, tmp_path):
    answers, said = _scripted_answers(tmp_path / "qwen", PLAIN_END_TEMPLATE, ["### End"])
    assert answers == [said] * 3


def test_operator_then_cli_train_reuse_promote_and_compare(env, llama_dir, data, capsys):
    from dagnostics_provider.cli.main import main
    from dagnostics_provider.operators.training import LoRATrainingOperator

    operator = LoRATrainingOperator(
        task_id="train",
        model_name=str(llama_dir),
        train_file=str(data[0]),
        validation_file=str(data[1]),
        epochs=1,
        batch_size=4,
        max_length=512,
        training_options={"learning_rate": 5e-3},
    )
    first = operator.execute({})
    assert first["version"] == "dagnostics-slm-v1.0" and not first["reused"]
    models = env / "artifacts" / "models"
    assert first["uri"] == str(models / "dagnostics-slm-v1.0")
    for name in ("adapter", "tokenizer", "training_info.json", "evaluation_results.json", "loss_curve.png"):
        assert (models / "dagnostics-slm-v1.0" / name).exists()
    _assert_all_metrics(first["metrics"]["fine_tuned"], 6)
    record = registry.get_version("dagnostics-slm-v1.0")
    assert record.trained and record.status == "candidate" and record.metrics["base"]
    info = json.loads((models / "dagnostics-slm-v1.0" / "training_info.json").read_text())
    assert info["version"] == "dagnostics-slm-v1.0" and info["dataset"]["validation_file"] == str(data[1])

    # The same data, base and parameters from the CLI: the version is reused, nothing is trained.
    dataset = ["--train-file", str(data[0]), "--validation-file", str(data[1]), "--model-name", str(llama_dir)]
    assert main(["training", "train-local", *dataset, *QUICK_CLI, "--format", "json"]) == 0
    again = json.loads(capsys.readouterr().out.splitlines()[-1])  # the result is the last line
    assert again["version"] == "dagnostics-slm-v1.0" and again["reused"]

    # Promote it; a new run (another seed) is v1.1 and is compared with production on the same examples.
    registry.promote("dagnostics-slm-v1.0")
    assert main(["training", "train-local", *dataset, *QUICK_CLI, "--seed", "7"]) == 0
    out = capsys.readouterr().out
    assert "Model version dagnostics-slm-v1.1 (new)" in out and "production dagnostics-slm-v1.0:" in out
    second = registry.get_version("dagnostics-slm-v1.1")
    assert second.metrics["production_version"] == "dagnostics-slm-v1.0"
    _assert_all_metrics(second.metrics["production"], 6)

    assert main(["training", "evaluate", "dagnostics-slm-v1.1", "--no-base", "--max-new-tokens", "8"]) == 0
    assert "Evaluation of dagnostics-slm-v1.1 on 6 examples" in capsys.readouterr().out
    updated = registry.get_version("dagnostics-slm-v1.1").metrics
    assert updated["base"] is None and updated["production_version"] == "dagnostics-slm-v1.0"


def test_cli_refuses_an_encoder_only_model_in_one_line(env, data, tmp_path, capsys):
    from dagnostics_provider.cli.main import main

    base = tiny_models.distilbert(tmp_path / "distilbert")
    code = main(
        [
            "training",
            "train-local",
            "--model-name",
            str(base),
            "--train-file",
            str(data[0]),
            "--validation-file",
            str(data[1]),
        ]
    )
    assert code == 2
    assert "encoder-only models classify or embed text" in capsys.readouterr().err


def test_remote_artifact_root_trains_locally_and_uploads(env, llama_dir, data):
    import uuid

    from dagnostics_provider import artifacts
    from dagnostics_provider.training.workflow import train_version

    root = f"memory://models-{uuid.uuid4().hex}"
    result = train_version(
        quick_params(llama_dir, seed=11), str(data[0]), str(data[1]), output_dir=root, evaluate=False
    )
    assert result.uri == f"{root}/{result.version}" and registry.get_version(result.version).uri == result.uri
    remote = artifacts.to_path(result.uri)
    for name in ("adapter/adapter_model.safetensors", "tokenizer/tokenizer_config.json", "training_info.json"):
        assert (remote / name).exists()
    assert json.loads((registry.local_copy(result.uri) / "training_info.json").read_text())["version"] == result.version


def test_the_schema_grammar_reads_the_vocabulary_of_the_gguf_the_base_came_from(tmp_path, monkeypatch):
    """LoRA keeps the tokenizer, so the base's GGUF is the version's vocabulary; a hub base has none to offer."""
    from dagnostics_provider.training import base_models
    from dagnostics_provider.training.evaluation import vocabulary_gguf

    packaged = tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf"
    monkeypatch.setattr(base_models, "packaged_gguf", lambda name: packaged if name == "smollm2-135m" else None)
    assert vocabulary_gguf({"base_model": "smollm2-135m"}) == packaged
    own = tmp_path / "my-base.gguf"
    own.write_bytes(b"GGUF")
    assert vocabulary_gguf({"base_model": str(own)}) == own
    with pytest.raises(ValueError, match="needs the tokenizer as a GGUF file"):
        vocabulary_gguf({"base_model": "HuggingFaceTB/SmolLM2-135M-Instruct"})


def test_cli_evaluate_passes_the_schema_constraint_and_the_engine(monkeypatch, capsys):
    from dagnostics_provider.cli.main import main
    from dagnostics_provider.training import workflow

    seen = {}

    def fake_evaluate(model, dataset, **kwargs):
        seen.update(kwargs)
        return {"version": "v", "examples": 1, "dataset": "d", "fine_tuned": {}, "base": None, "production": None}

    monkeypatch.setattr(workflow, "evaluate_model", fake_evaluate)
    assert main(["training", "evaluate", "some-dir", "--schema-constrained", "--no-production"]) == 0
    assert seen["schema_constrained"] is True and seen["engine"] == "transformers" and seen["quantize"] is None
    engine = ["--engine", "llamacpp", "--quantize", "q8_0", "--convert-script", "c.py"]
    assert main(["training", "evaluate", "some-dir", *engine]) == 0
    assert (seen["engine"], seen["quantize"], seen["convert_script"]) == ("llamacpp", "q8_0", "c.py")


def test_cli_evaluate_refuses_an_engine_or_precision_it_does_not_have(capsys):
    from dagnostics_provider.cli.main import main

    for argv in (["--engine", "ollama"], ["--engine", "llamacpp", "--quantize", "q4_K_M"]):
        with pytest.raises(SystemExit) as exit_info:
            main(["training", "evaluate", "some-dir", *argv])
        assert exit_info.value.code == 2
        assert "invalid choice" in capsys.readouterr().err
