"""Which architectures Ollama imports from safetensors, by config.json's architectures[0] and Ollama's version."""

from __future__ import annotations

import json

import pytest

from dagnostics_provider.deploy import architectures
from dagnostics_provider.deploy.architectures import UnsupportedArchitecture
from tests.fakes import fake_ollama


@pytest.mark.parametrize(
    ("architecture", "version", "importable"),
    [
        ("LlamaForCausalLM", None, True),
        ("LlamaForCausalLM", "0.3.3", True),
        ("LlamaForCausalLM", "0.3.2", False),
        ("Qwen2ForCausalLM", "0.5.5", False),
        ("Qwen2ForCausalLM", "0.5.6", True),
        ("MistralForCausalLM", "0.6.4", True),  # dropped in 0.6.5 for Mistral Small's converter
        ("MistralForCausalLM", "0.6.5-rc0", False),
        ("MistralForCausalLM", "0.12.0", False),
        ("MistralForCausalLM", None, False),
        ("Mistral3ForConditionalGeneration", "0.6.5", True),
        ("Gemma3ForCausalLM", "0.5.13", False),
        ("Gemma3ForConditionalGeneration", "0.6.0", True),
        ("Phi3ForCausalLM", "v0.9.0", True),
        ("GPT2LMHeadModel", None, False),  # DialoGPT
        ("Qwen3ForCausalLM", None, False),  # dense Qwen3
        ("T5ForConditionalGeneration", None, False),
        ("GptOssForCausalLM", "0.10.1", False),
        ("GptOssForCausalLM", "0.11.0", True),
        ("LlamaForCausalLM", "0.0.0", True),  # a development build counts as current
        ("Gemma4ForCausalLM", "99.0.0", True),  # newer than the check: what the newest checked release imports
    ],
)
def test_safetensors_import_by_class_and_version(architecture, version, importable):
    assert architectures.safetensors_importable(architecture, version) is importable


def test_the_table_matches_the_fakes_reading_of_convert_go():
    """Two transcriptions of convert.go's history (production's and the fake's) must not drift apart."""
    assert set(architectures.SAFETENSORS_IMPORT) == set(fake_ollama._CONVERTERS)
    for name, entry in architectures.SAFETENSORS_IMPORT.items():
        first, last = fake_ollama._CONVERTERS[name]
        assert architectures.parse_version(entry.since) == first, name
        assert (architectures.parse_version(entry.until) if entry.until else None) == last, name


def test_the_architecture_is_read_from_config_json(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2"}))
    assert architectures.config_architecture(tmp_path) == "Qwen2ForCausalLM"
    assert architectures.config_architecture(tmp_path / "config.json") == "Qwen2ForCausalLM"
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(UnsupportedArchitecture, match="names no architectures"):
        architectures.config_architecture(tmp_path)
    with pytest.raises(UnsupportedArchitecture, match="cannot read"):
        architectures.config_architecture(tmp_path / "elsewhere")


@pytest.mark.parametrize(
    ("architecture", "importable"),
    [
        ("llama", True),  # training_info.json's model_type, as bundle.py passes it
        ("LlamaForCausalLM", True),
        ("qwen2", True),
        ("gemma3_text", True),
        ("gpt2", False),
        ("mistral", False),  # a current Ollama no longer imports MistralForCausalLM
    ],
)
def test_safetensors_import_takes_a_model_type_or_a_class(architecture, importable):
    assert architectures.safetensors_importable(architectures.architecture_class(architecture)) is importable


def test_an_older_server_still_imports_mistral():
    architectures.check_safetensors_import("mistral", ollama_version="0.6.4")


def test_the_refusal_names_the_versions_the_bases_and_the_gguf_route():
    with pytest.raises(UnsupportedArchitecture) as refused:
        architectures.check_safetensors_import("MistralForCausalLM", "0.12.0")
    message = str(refused.value)
    assert message.startswith("Ollama 0.12.0 cannot import 'MistralForCausalLM' models from safetensors")
    assert "MistralForCausalLM is imported by Ollama 0.3.3 to 0.6.4" in message
    assert "LlamaForCausalLM (llama)" in message and "Qwen2ForCausalLM (qwen2)" in message
    assert "MistralForCausalLM (mistral)" not in message
    assert "Deploy it as GGUF instead (--import-format gguf" in message
    with pytest.raises(UnsupportedArchitecture, match="cannot import 'gpt2' models from safetensors"):
        architectures.check_safetensors_import("gpt2")
