"""Which model architectures Ollama imports from safetensors, in which Ollama versions, and the route for the rest.

Ollama decides by the first entry of ``architectures`` in the model's ``config.json`` (the ``ConvertModel`` switch
in ``convert/convert.go``), not by ``model_type``: anything it does not know fails deep inside ``/api/create``,
after the whole upload, with ``unsupported architecture "GPT2LMHeadModel"``. Support also changes between
versions: ``MistralForCausalLM`` was imported up to v0.6.4 and dropped in v0.6.5 (Mistral Small's converter took
its place), while Gemma 3n, gpt-oss, Qwen3-Next... arrived later. Deciding before the merge turns a late, cryptic
failure into an early error that names the alternatives: the GGUF import (the default, which every Ollama version
takes for every architecture llama.cpp knows), or a base Ollama imports.

:data:`SAFETENSORS_IMPORT` was read from ``convert/convert.go`` at every release tag from v0.3.3 (the first with
this switch) to :data:`CHECKED_UP_TO`: ``since`` is the first release whose converter takes the class, ``until``
the last one (None: still taken). Servers newer than the check are assumed to import what it does.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Route = Literal["safetensors", "gguf"]
SAFETENSORS: Route = "safetensors"
GGUF: Route = "gguf"

CHECKED_UP_TO = "0.32.15"
CONFIG_FILE = "config.json"


@dataclass(frozen=True)
class Importable:
    """An architecture class Ollama converts from safetensors, and the Ollama releases that do."""

    label: str
    since: str
    until: str | None = None
    model_type: str | None = None  # transformers' config.model_type, for callers that only know that


SAFETENSORS_IMPORT: dict[str, Importable] = {
    "LlamaForCausalLM": Importable("Llama 2/3.x, SmolLM2, TinyLlama", "0.3.3", model_type="llama"),
    "MistralForCausalLM": Importable("Mistral 7B and its fine-tunes", "0.3.3", "0.6.4", model_type="mistral"),
    "MixtralForCausalLM": Importable("Mixtral", "0.3.3", model_type="mixtral"),
    "GemmaForCausalLM": Importable("Gemma", "0.3.3", model_type="gemma"),
    "Gemma2ForCausalLM": Importable("Gemma 2", "0.3.7", model_type="gemma2"),
    "Gemma3ForCausalLM": Importable("Gemma 3 text-only (1B)", "0.6.0", model_type="gemma3_text"),
    "Gemma3ForConditionalGeneration": Importable("Gemma 3", "0.6.0", model_type="gemma3"),
    "Gemma3nForConditionalGeneration": Importable("Gemma 3n", "0.9.3", model_type="gemma3n"),
    "Gemma3TextModel": Importable("EmbeddingGemma", "0.30.0"),
    "Gemma4ForCausalLM": Importable("Gemma 4", "0.20.0"),
    "Gemma4ForConditionalGeneration": Importable("Gemma 4", "0.20.0"),
    "Phi3ForCausalLM": Importable("Phi-3, Phi-3.5, Phi-4 mini", "0.3.6", model_type="phi3"),
    "Qwen2ForCausalLM": Importable("Qwen2, Qwen2.5", "0.5.6", model_type="qwen2"),
    "Qwen2_5_VLForConditionalGeneration": Importable("Qwen2.5-VL", "0.7.0"),
    "Qwen3VLForConditionalGeneration": Importable("Qwen3-VL", "0.12.7"),
    "Qwen3VLMoeForConditionalGeneration": Importable("Qwen3-VL MoE", "0.12.7"),
    "Qwen3NextForCausalLM": Importable("Qwen3-Next", "0.15.5", model_type="qwen3_next"),
    "Qwen3_5ForConditionalGeneration": Importable("Qwen3.5", "0.17.1"),
    "Qwen3_5MoeForConditionalGeneration": Importable("Qwen3.5 MoE", "0.17.1"),
    "CohereForCausalLM": Importable("Command R", "0.5.7", model_type="cohere"),
    "Mistral3ForConditionalGeneration": Importable("Mistral Small 3.1+", "0.6.5", model_type="mistral3"),
    "Ministral3ForCausalLM": Importable("Ministral 3", "0.13.3"),
    "Llama4ForConditionalGeneration": Importable("Llama 4", "0.6.7", model_type="llama4"),
    "MllamaForConditionalGeneration": Importable("Llama 3.2 Vision", "0.7.0", model_type="mllama"),
    "GptOssForCausalLM": Importable("gpt-oss", "0.11.0", model_type="gpt_oss"),
    "Olmo3ForCausalLM": Importable("OLMo 3", "0.13.4", model_type="olmo3"),
    "DeepseekV3ForCausalLM": Importable("DeepSeek-V3", "0.13.2", model_type="deepseek_v3"),
    "DeepseekOCRForCausalLM": Importable("DeepSeek-OCR", "0.13.0"),
    "Glm4MoeLiteForCausalLM": Importable("GLM-4 MoE Lite", "0.14.3"),
    "GlmOcrForConditionalGeneration": Importable("GLM-OCR", "0.15.5"),
    "Lfm2ForCausalLM": Importable("LFM2", "0.14.3", model_type="lfm2"),
    "Lfm2MoeForCausalLM": Importable("LFM2 MoE", "0.17.1"),
    "Lfm2VlForConditionalGeneration": Importable("LFM2-VL", "0.17.1"),
    "NemotronHForCausalLM": Importable("Nemotron-H", "0.17.1"),
    "NemotronH_Nano_VL_V2": Importable("Nemotron Nano VL", "0.22.0"),
    "NemotronH_Nano_Omni_Reasoning_V3": Importable("Nemotron Nano Omni", "0.22.0"),
    "LagunaForCausalLM": Importable("Laguna", "0.22.0"),
    "BertModel": Importable("BERT embeddings", "0.3.7"),
    "NomicBertModel": Importable("Nomic embeddings", "0.13.3"),
    "NomicBertMoEModel": Importable("Nomic MoE embeddings", "0.13.3"),
}
# training_info.json records config.model_type; these are the classes transformers saves for them.
MODEL_TYPE_CLASSES: dict[str, str] = {
    entry.model_type: name for name, entry in SAFETENSORS_IMPORT.items() if entry.model_type
}
_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)")
_SUGGESTED_BASES = "HuggingFaceTB/SmolLM2-135M-Instruct (Llama) or Qwen/Qwen2.5-0.5B-Instruct (Qwen2)"


class UnsupportedArchitecture(ValueError):
    """Ollama cannot import this architecture from safetensors (the GGUF import can)."""


def parse_version(version: str | None) -> tuple[int, int, int] | None:
    """``"0.6.5-rc0"`` → ``(0, 6, 5)``; None for no version, a development build (``0.0.0``) or anything else."""
    match = _VERSION.match((version or "").strip())
    if match is None:
        return None
    parsed = (int(match[1]), int(match[2]), int(match[3]))
    return None if parsed == (0, 0, 0) else parsed


def safetensors_importable(architecture_class: str, ollama_version: str | None = None) -> bool:
    """Whether Ollama ``ollama_version`` converts ``architecture_class`` (config.json's ``architectures[0]``).

    ``ollama_version`` None (or unreadable) means a current server: the newest release checked. A pre-release
    counts as its release (``0.6.5-rc0`` already dropped Mistral).
    """
    entry = SAFETENSORS_IMPORT.get(architecture_class)
    if entry is None:
        return False
    version = parse_version(ollama_version) or parse_version(CHECKED_UP_TO)
    assert version is not None
    if version < _required(entry.since):
        return False
    return entry.until is None or version <= _required(entry.until)


def config_architecture(model: str | Path) -> str:
    """``architectures[0]`` of a model folder's config.json (or of the config file itself): what Ollama goes by."""
    path = Path(model)
    config_file = path / CONFIG_FILE if path.is_dir() else path
    try:
        settings = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UnsupportedArchitecture(f"cannot read the model's architecture from {config_file}: {exc}") from None
    names = settings.get("architectures") if isinstance(settings, dict) else None
    if not isinstance(names, list) or not names or not isinstance(names[0], str):
        raise UnsupportedArchitecture(
            f"{config_file} names no architectures; Ollama refuses such a model ('unknown architecture')"
        )
    return names[0]


def architecture_class(architecture: str) -> str:
    """The class name for ``architecture`` given either way: a class name, or a ``model_type`` we know."""
    return MODEL_TYPE_CLASSES.get(architecture, architecture)


def check_safetensors_import(architecture: str, ollama_version: str | None = None) -> None:
    """Raise :class:`UnsupportedArchitecture` naming the alternatives unless Ollama imports ``architecture``."""
    if not safetensors_importable(architecture_class(architecture), ollama_version):
        raise UnsupportedArchitecture(unsupported_message(architecture, ollama_version))


def unsupported_message(architecture: str, ollama_version: str | None = None) -> str:
    """Why ``architecture`` cannot be imported, which bases can, and the GGUF route that works for the others."""
    server = f"Ollama {ollama_version}" if parse_version(ollama_version) else "Ollama"
    name = architecture_class(architecture)
    entry = SAFETENSORS_IMPORT.get(name)
    history = ""
    if entry is not None:
        history = f" ({name} is imported by Ollama {entry.since} to {entry.until or 'today'})"
    return (
        f"{server} cannot import {architecture!r} models from safetensors{history}; it imports "
        f"{_supported_text(ollama_version)}. Deploy it as GGUF instead (--import-format gguf, the default of "
        "[dagnostics] deploy_import_format: Ollama loads a GGUF of any architecture its engine runs), or fine-tune "
        f"one of those bases (e.g. {_SUGGESTED_BASES})."
    )


def _supported_text(ollama_version: str | None) -> str:
    """The families this server imports that we know a ``model_type`` for, as ``Class (model_type)``; the rest
    (vision, embedding and very large models) only counted, to keep the message readable."""
    importable = [name for name in SAFETENSORS_IMPORT if safetensors_importable(name, ollama_version)]
    named = [name for name in importable if SAFETENSORS_IMPORT[name].model_type]
    listed = ", ".join(f"{name} ({SAFETENSORS_IMPORT[name].model_type})" for name in named)
    others = len(importable) - len(named)
    return f"{listed} and {others} more (see docs/deployment.md)" if others else listed


def _required(version: str) -> tuple[int, int, int]:
    parsed = parse_version(version)
    assert parsed is not None, version
    return parsed
