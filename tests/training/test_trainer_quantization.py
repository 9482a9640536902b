"""The QLoRA decision and loading path, checked without a GPU (CUDA presence is an argument, loading is mocked)."""

from __future__ import annotations

import logging

import pytest
import torch

from dagnostics_provider.training import model_loading
from dagnostics_provider.training.model_loading import BaseModel, bnb_config, decide_precision, load_model
from dagnostics_provider.training.trainer import build_trainer
from tests.training import tiny_models
from tests.training.tiny_models import quick_params

LLAMA = BaseModel("org/llama", False, "CAUSAL_LM", "llama", "abc123", 2048)


def test_cuda_with_quantization_is_qlora_nf4_double_quant():
    precision = decide_precision(True, cuda_available=True, bf16_supported=True)
    assert precision.device == "cuda" and precision.quantized
    assert precision.compute_dtype == "bfloat16" and precision.bf16 and not precision.fp16
    assert "NF4" in precision.reason and "double quantization" in precision.reason
    config = bnb_config(precision)
    assert config.load_in_4bit and not config.load_in_8bit
    assert config.bnb_4bit_quant_type == "nf4"
    assert config.bnb_4bit_use_double_quant is True
    assert config.bnb_4bit_compute_dtype == torch.bfloat16


def test_older_gpus_compute_in_float16():
    precision = decide_precision(True, cuda_available=True, bf16_supported=False)
    assert precision.compute_dtype == "float16" and precision.fp16 and not precision.bf16
    assert bnb_config(precision).bnb_4bit_compute_dtype == torch.float16


def test_cuda_without_quantization_is_plain_lora():
    precision = decide_precision(False, cuda_available=True, bf16_supported=True)
    assert precision.device == "cuda" and not precision.quantized and "not requested" in precision.reason


@pytest.mark.parametrize(
    ("force_cpu", "cuda", "why"),
    [(False, False, "no CUDA device is available"), (True, True, "--force-cpu was given")],
)
def test_cpu_is_float32_and_says_why_quantization_is_off(force_cpu, cuda, why):
    precision = decide_precision(True, force_cpu=force_cpu, cuda_available=cuda, bf16_supported=True)
    assert precision.device == "cpu" and not precision.quantized
    assert precision.compute_dtype == "float32" and not precision.bf16 and not precision.fp16
    assert why in precision.reason
    assert "4-bit quantization is off because bitsandbytes' 4-bit kernels need a CUDA GPU" in precision.reason


def test_qlora_loads_4bit_and_prepares_for_kbit_training(monkeypatch):
    import peft
    import transformers

    loaded, prepared = {}, {}
    model = object()

    def from_pretrained(source, **kwargs):
        loaded.update(source=source, **kwargs)
        return model

    def prepare(m, **kwargs):
        prepared.update(model=m, **kwargs)
        return m

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", from_pretrained)
    monkeypatch.setattr(peft, "prepare_model_for_kbit_training", prepare)
    precision = decide_precision(True, cuda_available=True, bf16_supported=True)

    assert load_model(LLAMA, precision) is model
    assert loaded["source"] == "org/llama" and loaded["revision"] == "abc123"
    assert loaded["quantization_config"].bnb_4bit_quant_type == "nf4"
    assert loaded["dtype"] == torch.bfloat16
    assert loaded["device_map"] == {"": 0}
    assert loaded["trust_remote_code"] is False
    assert prepared["model"] is model and prepared["use_gradient_checkpointing"] is True


def test_cpu_loads_float32_without_kbit_preparation(monkeypatch):
    import peft
    import transformers

    loaded = {}
    monkeypatch.setattr(
        transformers.AutoModelForCausalLM, "from_pretrained", lambda source, **kw: loaded.update(kw) or "model"
    )
    monkeypatch.setattr(peft, "prepare_model_for_kbit_training", lambda *a, **k: pytest.fail("not on CPU"))
    assert load_model(LLAMA, decide_precision(True, cuda_available=False)) == "model"
    assert loaded["dtype"] == torch.float32 and "quantization_config" not in loaded


def test_asking_for_quantization_on_cpu_trains_fp32_and_logs_why(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tiny_models.limit_threads()
    base = tiny_models.llama(tmp_path / "llama")
    data = tiny_models.write_dataset(tmp_path / "data", train=4, validation=2)
    caplog.set_level(logging.INFO, logger="dagnostics_provider.training")
    trainer, info = build_trainer(quick_params(base, use_quantization=True), *data, tmp_path / "out")
    assert info["quantization"]["enabled"] is False
    assert "4-bit quantization is off because bitsandbytes' 4-bit kernels need a CUDA GPU" in caplog.text
    assert next(trainer.model.parameters()).dtype == torch.float32
    assert not trainer.args.bf16 and not trainer.args.fp16 and trainer.args.use_cpu


def test_trust_remote_code_is_off_unless_asked(monkeypatch):
    seen = {}

    class Config:
        model_type, is_encoder_decoder, architectures = "llama", False, ["LlamaForCausalLM"]

    def from_pretrained(source, **kwargs):
        seen.update(kwargs)
        return Config()

    import transformers

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", from_pretrained)
    assert model_loading.resolve("org/llama").task_type == "CAUSAL_LM"
    assert seen["trust_remote_code"] is False
    model_loading.resolve("org/llama", trust_remote_code=True)
    assert seen["trust_remote_code"] is True


def test_templated_operator_options_become_typed_parameters():
    from dagnostics_provider.training.trainer import TrainingParams, training_params

    params = training_params(
        "",  # "{{ params.model_name or '' }}" with no model given
        epochs="3",
        learning_rate="2e-4",
        batch_size="4",
        use_quantization="False",
        force_cpu="True",
        max_length="",
        seed="None",
        target_modules="q_proj, v_proj",
    )
    assert params.model_name == "smollm2-135m"  # [dagnostics] training_base_model: the packaged SmolLM2
    assert (params.epochs, params.learning_rate, params.batch_size) == (3.0, 2e-4, 4)
    assert params.use_quantization is False and params.force_cpu is True
    assert params.max_length == 2048 and params.seed == 42  # empty and "None" keep the defaults
    assert params.target_modules == ("q_proj", "v_proj")
    typed = TrainingParams(params.model_name, epochs=3, force_cpu=True, target_modules=("v_proj", "q_proj"))
    assert typed.fingerprint() == params.fingerprint()  # the same run, however the options were spelled
    with pytest.raises(ValueError, match="force_cpu must be true or false"):
        training_params("m", force_cpu="maybe")


def test_cpu_levers_reach_the_trainer_only_on_a_cpu(tmp_path):
    """--cpu-bf16 and --cpu-activation-checkpointing turn on autocast and checkpointing on a CPU, nowhere else."""
    from dagnostics_provider.training.trainer import TrainingParams, _training_arguments

    cpu = model_loading.decide_precision(False, cuda_available=False)
    gpu = model_loading.decide_precision(False, cuda_available=True, bf16_supported=True)
    plain = TrainingParams(model_name="m")
    levers = TrainingParams(model_name="m", cpu_bf16=True, cpu_activation_checkpointing=True)
    on_cpu = _training_arguments(levers, cpu, tmp_path)
    assert on_cpu["bf16"] and on_cpu["activation_checkpointing"]
    assert not _training_arguments(plain, cpu, tmp_path)["bf16"]
    assert not _training_arguments(plain, cpu, tmp_path)["activation_checkpointing"]
    assert not _training_arguments(levers, gpu, tmp_path)["activation_checkpointing"]  # a GPU run decides itself
    # Checkpointing does not change the model trained; bf16 does, and older runs keep their fingerprint.
    assert TrainingParams(model_name="m", cpu_activation_checkpointing=True).fingerprint() == plain.fingerprint()
    assert TrainingParams(model_name="m", cpu_bf16=True).fingerprint() != plain.fingerprint()
