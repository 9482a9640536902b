"""Which model architectures Ollama imports from safetensors, and what happens to the others.

Ollama converts safetensors weights itself only for the architectures its converter implements; anything else
(GPT-2 and so DialoGPT, T5, dense Qwen3...) fails deep inside ``/api/create`` with "unsupported architecture".
Deciding before the merge turns a late, cryptic failure into an early error that names the alternatives: a
supported base, or a GGUF conversion with llama.cpp's ``convert_hf_to_gguf.py``.

The table is keyed by ``config.model_type`` (what ``training_info.json`` records as ``architecture``) and was
checked against Ollama's converter (``convert/convert.go``) up to v0.12; newer servers may accept more.
"""

from __future__ import annotations

from typing import Literal

Route = Literal["safetensors", "gguf"]
SAFETENSORS: Route = "safetensors"
GGUF: Route = "gguf"

SAFETENSORS_ARCHITECTURES: dict[str, str] = {
    "llama": "Llama (Llama 2/3.x, SmolLM2, TinyLlama)",
    "mistral": "Mistral",
    "mixtral": "Mixtral",
    "gemma": "Gemma",
    "gemma2": "Gemma 2",
    "gemma3": "Gemma 3",
    "gemma3_text": "Gemma 3",
    "phi3": "Phi-3",
    "qwen2": "Qwen2 / Qwen2.5",
}


class UnsupportedArchitecture(ValueError):
    """Ollama cannot import this architecture from safetensors and no GGUF converter is configured."""


def import_route(architecture: str, convert_script: str | None) -> Route:
    """How a model of ``architecture`` gets into Ollama: its own safetensors import, or a GGUF made by llama.cpp."""
    if architecture in SAFETENSORS_ARCHITECTURES:
        return SAFETENSORS
    if convert_script:
        return GGUF
    supported = ", ".join(f"{name} ({label})" for name, label in SAFETENSORS_ARCHITECTURES.items())
    raise UnsupportedArchitecture(
        f"Ollama cannot import {architecture!r} models from safetensors; it imports {supported}. Fine-tune one of "
        "those bases (e.g. HuggingFaceTB/SmolLM2-135M-Instruct or Qwen/Qwen2.5-0.5B-Instruct), or set "
        "[dagnostics] llama_cpp_convert_script (or --convert-script) to llama.cpp's convert_hf_to_gguf.py to deploy "
        "a GGUF conversion instead."
    )
