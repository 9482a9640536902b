"""The bundle: the adapter merged into a float32 base, safetensors + tokenizer with the inlined chat template, a
Modelfile with the training prompt; unsupported architectures refused early or converted to GGUF."""

from __future__ import annotations

import json

import pytest
import torch

from dagnostics_provider.deploy import architectures, gguf
from dagnostics_provider.deploy.bundle import build_bundle, published_dtype
from dagnostics_provider.training import model_loading
from dagnostics_provider.training.evaluation import load_version
from tests.deploy.test_modelfile import parse_modelfile


def test_bundle_holds_the_merged_model_tokenizer_and_modelfile(trained, tmp_path):
    bundle = build_bundle(trained.v10, import_format="safetensors", output_dir=tmp_path / "bundle")
    directory = bundle.directory
    assert bundle.route == architectures.SAFETENSORS and bundle.quantize is None
    assert bundle.files == (
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    )
    assert not (directory / "chat_template.jinja").exists()
    tokenizer_config = json.loads((directory / "tokenizer_config.json").read_text())
    assert (
        tokenizer_config["chat_template"]
        == json.loads((trained.v10 / "training_info.json").read_text())["chat_template"]
    )

    # The merged model answers exactly as base + adapter does: the merge happened, in full precision.
    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(directory).eval()
    adapted = load_version(trained.v10).model
    base = model_loading.load_for_inference(model_loading.resolve(str(trained.llama_base)), None)
    ids = torch.tensor([[5, 17, 42, 99, 3]])
    with torch.no_grad():
        merged_logits, adapted_logits = merged(ids).logits, adapted(ids).logits
        base_logits = base(ids).logits
    assert torch.allclose(merged_logits, adapted_logits, atol=1e-5)
    assert not torch.allclose(merged_logits, base_logits, atol=1e-5)
    assert "lora" not in " ".join(name for name, _ in merged.named_parameters())

    parsed = parse_modelfile(bundle.modelfile.read_text())
    assert parsed["FROM"] == ["."]
    assert parsed["TEMPLATE"] == [bundle.spec.template]
    assert parsed["stop"] == ["<|im_end|>", "<|im_start|>user"]
    assert parsed["temperature"] == ["0.1"]
    assert parsed["num_ctx"] == ["1024"]  # the analyzer's prompts need 4096, but the tiny model has 1024 positions
    assert bundle.create_command("dagnostics-slm:v1.0") == (
        f"ollama create dagnostics-slm:v1.0 -f {directory / 'Modelfile'}"
    )


def test_safetensors_import_of_an_unsupported_architecture_is_refused_before_merging(trained, tmp_path):
    with pytest.raises(architectures.UnsupportedArchitecture) as refused:
        build_bundle(trained.gpt2, import_format="safetensors", output_dir=tmp_path / "bundle")
    message = str(refused.value)
    assert "cannot import 'gpt2' models from safetensors" in message
    for supported in ("LlamaForCausalLM (llama)", "Gemma2ForCausalLM (gemma2)", "Qwen2ForCausalLM (qwen2)"):
        assert supported in message
    assert "MistralForCausalLM" not in message  # dropped by Ollama 0.6.5
    assert "--import-format gguf" in message
    assert not (tmp_path / "bundle").exists()


@pytest.mark.parametrize(
    ("quantize", "outtype", "left_to_ollama"),
    [(None, "f16", None), ("q8_0", "q8_0", None), ("q4_K_M", "f16", "q4_K_M")],
)
def test_gguf_conversion_with_the_configured_script(trained, converter, tmp_path, quantize, outtype, left_to_ollama):
    bundle = build_bundle(trained.gpt2, quantize=quantize, convert_script=str(converter), output_dir=tmp_path / "b")
    assert bundle.route == architectures.GGUF
    assert bundle.files == ("model.gguf",)
    assert bundle.quantize == left_to_ollama
    args = json.loads((bundle.directory / "model.gguf.args.json").read_text())
    assert args == [str(bundle.directory), "--outfile", str(bundle.directory / "model.gguf"), "--outtype", outtype]
    parsed = parse_modelfile(bundle.modelfile.read_text())
    assert parsed["FROM"] == ["./model.gguf"]
    assert parsed["TEMPLATE"] == ["### System:\n{{ .System }}\n\n### User:\n{{ .Prompt }}\n\n### Assistant:\n"]
    assert parsed["stop"] == ["<|endoftext|>", "### User:"]
    expected = (
        "ollama create m:1 -f " + str(bundle.modelfile) + (f" --quantize {left_to_ollama}" if left_to_ollama else "")
    )
    assert bundle.create_command("m:1") == expected


def test_a_failing_or_lying_converter_is_reported(trained, tmp_path):
    failing = tmp_path / "failing.py"
    failing.write_text("import sys\nprint('ERROR: unknown model architecture GPT2LMHeadModel')\nsys.exit(1)\n")
    with pytest.raises(gguf.GGUFConversionError, match=r"(?s)exited with status 1.*unknown model architecture"):
        build_bundle(trained.gpt2, convert_script=str(failing), output_dir=tmp_path / "b1")
    lying = tmp_path / "lying.py"
    lying.write_text("import sys\nopen(sys.argv[sys.argv.index('--outfile') + 1], 'wb').write(b'not a model')\n")
    with pytest.raises(gguf.GGUFConversionError, match="is not a GGUF file"):
        build_bundle(trained.gpt2, convert_script=str(lying), output_dir=tmp_path / "b2")
    with pytest.raises(gguf.GGUFConversionError, match="does not exist"):
        build_bundle(trained.gpt2, convert_script=str(tmp_path / "missing.py"), output_dir=tmp_path / "b3")


def test_merged_weights_keep_the_precision_the_base_was_published_in(tmp_path, offline):
    from transformers import LlamaConfig

    small = {"vocab_size": 64, "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2}
    LlamaConfig(**small, dtype="bfloat16").save_pretrained(tmp_path / "bf16")
    LlamaConfig(**small).save_pretrained(tmp_path / "undeclared")
    assert published_dtype(str(tmp_path / "bf16")) == "bfloat16"
    assert published_dtype(str(tmp_path / "undeclared")) == "float16"
