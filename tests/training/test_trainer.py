"""LoRA training on tiny random models built on the fly: what the model is fed, what is written, resume, kinds.

Each training run takes seconds (2 layers, hidden 32, 24 examples, one epoch); the numbers the model learns are
noise, everything around them is real.
"""

from __future__ import annotations

import json
import logging
import shutil

import pytest

from dagnostics_provider import prompt_format
from dagnostics_provider.analysis.extraction import GAP
from dagnostics_provider.training import model_loading, sft_data
from dagnostics_provider.training.trainer import build_trainer, train
from tests.training import tiny_models
from tests.training.tiny_models import quick_params

pytestmark = pytest.mark.usefixtures("offline")


@pytest.fixture(scope="module")
def offline():
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        tiny_models.limit_threads()
        yield


@pytest.fixture(scope="module")
def data(tmp_path_factory, offline):
    return tiny_models.write_dataset(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory, offline):
    return tiny_models.llama(tmp_path_factory.mktemp("llama"))


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory, offline):
    return tiny_models.gpt2(tmp_path_factory.mktemp("gpt2"))


@pytest.fixture(scope="module")
def trained_llama(tmp_path_factory, llama_dir, data):
    return train(quick_params(llama_dir), *data, tmp_path_factory.mktemp("out") / "v")


def _collated(trainer, count: int = 4):
    """A training batch exactly as the trainer builds it (rows of different lengths, dynamically padded)."""
    rows = [trainer.train_dataset[i] for i in range(count)]
    return rows, trainer.data_collator(rows)


def _check_labels(trainer, tokenizer, data, style, answer_suffix: str) -> None:
    examples = sft_data.read_examples(data[0].read_text().splitlines())
    rows, batch = _collated(trainer)
    lengths = [len(r["input_ids"]) for r in rows]
    assert len(set(lengths)) > 1, "the test needs rows of different lengths"
    assert batch["input_ids"].shape[1] == max(lengths)  # padded to the batch's longest, not to max_length
    for i, length in enumerate(lengths):
        labels, mask = batch["labels"][i].tolist(), batch["attention_mask"][i].tolist()
        prompt_len = len(sft_data.prompt_ids(tokenizer, examples[i].context, style))
        assert all(label == -100 for label in labels[:prompt_len]), "prompt tokens must carry no loss"
        assert all(label == -100 for label in labels[length:]) and not any(mask[length:]), "padding is masked"
        answer = labels[prompt_len:length]
        assert -100 not in answer and answer == batch["input_ids"][i, prompt_len:length].tolist()
        assert tokenizer.eos_token_id in answer, "the EOS token must carry a label"
        assert tokenizer.decode(answer) == examples[i].output + answer_suffix


# Long enough that no row is cut: the check recomputes each row's prompt from its full log context.
UNCUT_MAX_LENGTH = 2048


def test_chat_template_batch_trains_on_answer_and_eos_only(llama_dir, data, tmp_path):
    trainer, info = build_trainer(quick_params(llama_dir, max_length=UNCUT_MAX_LENGTH), *data, tmp_path)
    assert info["prompt_style"] == "chat_template"
    assert info["chat_template"] == tiny_models.CHATML_TEMPLATE
    assert trainer.args.train_sampling_strategy == "group_by_length"
    # The assistant turn as the chat template closes it: answer, <|im_end|>, newline.
    _check_labels(trainer, trainer.processing_class, data, "chat_template", "<|im_end|>\n")


def test_plain_prompt_batch_for_a_tokenizer_without_chat_template(gpt2_dir, data, tmp_path):
    trainer, info = build_trainer(quick_params(gpt2_dir, max_length=UNCUT_MAX_LENGTH), *data, tmp_path)
    assert info["prompt_style"] == "plain" and info["plain_template"] == prompt_format.PLAIN_TEMPLATE
    assert info["pad_token"] == info["eos_token"] == "<|endoftext|>"  # GPT-2 has no pad token of its own
    _check_labels(trainer, trainer.processing_class, data, "plain", "<|endoftext|>")


def test_training_writes_the_version_directory(trained_llama, llama_dir):
    out = trained_llama.output_dir
    assert (out / "adapter" / "adapter_config.json").is_file()
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    tokenizer_config = json.loads((out / "tokenizer" / "tokenizer_config.json").read_text())
    assert tokenizer_config["chat_template"] == tiny_models.CHATML_TEMPLATE  # inlined, where Ollama reads it
    assert (out / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in (out / "checkpoints").glob("checkpoint-*")] == ["checkpoint-6"]  # the best one only

    info = json.loads((out / "training_info.json").read_text())
    assert info["base_model"] == str(llama_dir) and info["base_model_revision"] is None
    assert info["task_type"] == "CAUSAL_LM" and info["architecture"] == "llama"
    assert info["prompt_version"] == prompt_format.PROMPT_VERSION
    assert info["eos_token"] == "<|im_end|>" and info["max_length"] == 512
    assert info["lora"] == {"r": 16, "alpha": 32, "dropout": 0.1, "target_modules": "all-linear"}
    assert 0 < info["trainable_parameters"] < info["total_parameters"]
    assert info["quantization"]["enabled"] is False
    assert info["hardware"]["device"] == "cpu"
    assert {"prepare_s", "setup_s", "train_s", "total_s"} <= set(info["timings"])
    training = info["training"]
    assert training["steps"] == 6 and training["best_checkpoint"] == "checkpoint-6"
    assert training["best_eval_loss"] == min(e["eval_loss"] for e in training["log_history"] if "eval_loss" in e)
    assert any("loss" in e for e in training["log_history"])


def test_progress_is_logged(llama_dir, data, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="dagnostics_provider.training")
    train(quick_params(llama_dir, epochs=0.5, eval_steps=3, logging_steps=1), *data, tmp_path)
    text = caplog.text
    assert "Step 1/3 (epoch" in text and "loss" in text and "ETA" in text and "learning rate" in text
    assert "eval_loss" in text
    assert "training on CPU in float32" in text


def test_resume_continues_from_the_checkpoint(trained_llama, llama_dir, data, tmp_path):
    work = tmp_path / "v"
    shutil.copytree(trained_llama.output_dir, work)
    resumed = train(quick_params(llama_dir, epochs=2.0), *data, work, resume=True)
    assert resumed.info["training"]["resumed_from"] == "checkpoint-6"
    assert resumed.info["training"]["steps"] == 12
    first_logged = [e["step"] for e in resumed.info["training"]["log_history"] if "loss" in e]
    assert min(first_logged) <= 6 < max(first_logged)  # history carried over, then continued


def test_gpt2_style_model_trains(gpt2_dir, data, tmp_path):
    result = train(quick_params(gpt2_dir), *data, tmp_path)
    assert result.info["architecture"] == "gpt2" and result.info["prompt_style"] == "plain"
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    assert result.info["trainable_parameters"] > 0


def test_seq2seq_model_trains(tmp_path, data):
    base = tiny_models.t5(tmp_path / "t5")
    result = train(quick_params(base), *data, tmp_path / "out")
    assert result.info["task_type"] == "SEQ_2_SEQ_LM" and result.info["prompt_style"] == "plain"
    assert json.loads((tmp_path / "out" / "adapter" / "adapter_config.json").read_text())["task_type"] == (
        "SEQ_2_SEQ_LM"
    )


def test_encoder_only_model_is_refused_with_advice(tmp_path, data):
    base = tiny_models.distilbert(tmp_path / "distilbert")
    with pytest.raises(model_loading.UnsupportedModelError) as error:
        train(quick_params(base), *data, tmp_path / "out")
    message = str(error.value)
    assert "encoder-only" in message and "cannot generate an analysis" in message
    assert "SmolLM2-135M-Instruct" in message
    assert not (tmp_path / "out" / "adapter").exists()


def test_overlong_examples_lose_the_middle_of_their_context_never_the_answer(llama_dir, data):
    tokenizer = model_loading.load_tokenizer(str(llama_dir))
    examples = sft_data.read_examples(data[0].read_text().splitlines())[:6]
    prompt_lengths = [len(sft_data.prompt_ids(tokenizer, e.context, "chat_template")) for e in examples]
    max_length = min(prompt_lengths) + 90  # the answers are 70-100 tokens: most rows overflow
    fitted, cut, dropped = sft_data.fit_examples(tokenizer, examples, "chat_template", max_length)
    assert cut > 0 and cut + dropped + (len(fitted) - cut) == len(examples)
    for original, example in zip(examples, fitted, strict=False):
        assert example.output == original.output
        if example.context != original.context:
            assert GAP in example.context
            full = [*prompt_format.chat_messages(example.context), {"role": "assistant", "content": example.output}]
            assert len(tokenizer.apply_chat_template(full, tokenize=True, return_dict=True)["input_ids"]) <= max_length
    _, _, all_dropped = sft_data.fit_examples(tokenizer, examples, "chat_template", 50)
    assert all_dropped == len(examples)


def test_cut_middle_keeps_whole_lines_from_both_ends():
    context = "\n".join(f"line {i}" for i in range(20))
    cut = sft_data.cut_middle(context, 40)
    assert cut.startswith("line 0\n") and cut.endswith("line 19") and f"\n{GAP}\n" in cut
    assert sft_data.cut_middle("short", 40) == "short"
