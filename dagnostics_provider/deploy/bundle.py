"""The Ollama bundle of a model version: merged weights, tokenizer and ``Modelfile`` in ``<version>/ollama/``.

Ollama imports safetensors LoRA adapters only onto a few bases, and an adapter trained with QLoRA must not be
merged into a 4-bit base (the merge would be rounded into 4-bit noise). So the adapter is merged here into the
base loaded in float32, and the merged model is saved as safetensors in the base's own precision (fp16, bf16 or
fp32: no more bytes to upload than the base had, nothing lost against it). The tokenizer is saved with its chat
template inlined in ``tokenizer_config.json``, the one place Ollama reads it, and the ``Modelfile`` carries the
TEMPLATE derived from the training prompt (:mod:`.modelfile`), so ``ollama create`` from this folder alone gives
the same model as the REST deployment.

By default the merged folder is then exported as one GGUF file with llama.cpp's own converter
(:mod:`.llama_cpp_converter`) and only that file is uploaded: Ollama loads a GGUF on every version and for every
architecture llama.cpp knows, while its own safetensors import covers a few architectures that change between
versions; the same file is what the in-process ``llamacpp`` analyzer serves. ``safetensors`` import stays
available for the architectures the server imports.

Before the merge, the derived template is checked against the training prompt of a real example, and the
architecture against what Ollama imports, so a deployment that cannot work fails before the expensive part.
"""

from __future__ import annotations

import json
import logging
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagnostics_provider import config, prompt_format
from dagnostics_provider.deploy import architectures, gguf, llama_cpp_converter, modelfile
from dagnostics_provider.training.evaluation import read_training_info
from dagnostics_provider.training.layout import ADAPTER_DIR, TOKENIZER_DIR

log = logging.getLogger(__name__)

BUNDLE_DIR = "ollama"
MODELFILE = "Modelfile"
GGUF_FILE = "model.gguf"
# Ollama's default context is shorter than the analyzer's prompts; never serve with less than this.
MIN_NUM_CTX = 4096
# A failure the derived template is checked on: it has the braces, quotes and newlines real contexts have.
EXAMPLE_CONTEXT = (
    "[2024-05-02, 10:00:00 UTC] {taskinstance.py:100} INFO - Running load_orders\n"
    "Traceback (most recent call last):\n"
    '  File "/opt/airflow/dags/load_orders.py", line 42, in execute\n'
    "MemoryError: Unable to allocate 3.2 GiB for an array with shape {{rows}}\n"
)
_SAVE_DTYPES = ("float16", "bfloat16", "float32")


class TemplateMismatch(ValueError):
    """The derived TEMPLATE would not reproduce the training prompt."""


@dataclass(frozen=True)
class Bundle:
    """A folder ``ollama create`` can build from, and what ``/api/create`` needs to build it remotely."""

    directory: Path
    files: tuple[str, ...]  # names, relative to ``directory``, to upload as blobs
    spec: modelfile.ModelfileSpec
    route: architectures.Route
    quantize: str | None  # the quantization Ollama still has to do (a GGUF may already be quantized)

    @property
    def modelfile(self) -> Path:
        return self.directory / MODELFILE

    def create_command(self, tag: str) -> str:
        """The ``ollama create`` command that builds ``tag`` from this bundle on the Ollama machine."""
        command = ["ollama", "create", tag, "-f", str(self.modelfile)]
        if self.quantize:
            command += ["--quantize", self.quantize]
        return shlex.join(command)


def training_prompt(prompt_style: str, tokenizer: Any, context: str) -> str:
    """The prompt text training fed the model for ``context`` (TRL's rendering), before tokenization."""
    if prompt_style == modelfile.CHAT_TEMPLATE:
        messages = prompt_format.chat_messages(context)
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return prompt_format.render_plain_prompt(context)


def check_template(template: str, prompt_style: str, tokenizer: Any, context: str = EXAMPLE_CONTEXT) -> None:
    """Refuse a template that Ollama would render differently from the training prompt for ``context``.

    Sentinel substitution cannot see a chat template that transforms the content (trims it, escapes it); the
    rendering of a real example can.
    """
    expected = training_prompt(prompt_style, tokenizer, context)
    rendered = modelfile.render(template, system=prompt_format.INSTRUCTION, prompt=prompt_format.render_input(context))
    if rendered != expected:
        raise TemplateMismatch(
            "the derived Ollama TEMPLATE does not reproduce the training prompt (the chat template changes the "
            f"message content); training rendered {expected!r}, Ollama would render {rendered!r}"
        )


def build_bundle(
    model_dir: Path,
    *,
    quantize: str | None = None,
    convert_script: str | None = None,
    output_dir: Path | None = None,
    import_format: str | None = None,
    ollama_version: str | None = None,
) -> Bundle:
    """Merge, save and describe ``model_dir`` for Ollama in ``output_dir`` (default ``<model_dir>/ollama``).

    ``import_format`` (default ``[dagnostics] deploy_import_format``) is ``gguf``, a GGUF file exported with
    llama.cpp's converter, or ``safetensors``, the folder for Ollama's own converter, which must import the
    architecture in ``ollama_version`` (None: a current server). The folder is rebuilt from scratch each time, so
    a bundle left half-written by a crash is never uploaded.
    """
    from dagnostics_provider.training import model_loading

    info = read_training_info(model_dir)
    route = _route(import_format or config.get("deploy_import_format"), info["architecture"], ollama_version)
    script = llama_cpp_converter.converter_script(convert_script) if route == architectures.GGUF else None
    tokenizer = model_loading.load_tokenizer(str(model_dir / TOKENIZER_DIR))
    if info.get("chat_template") and not tokenizer.chat_template:
        tokenizer.chat_template = info["chat_template"]
    prompt = modelfile.prompt_template(info["prompt_style"], tokenizer)
    check_template(prompt.template, info["prompt_style"], tokenizer)
    directory = output_dir or model_dir / BUNDLE_DIR
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    max_positions = _merge(info, model_dir / ADAPTER_DIR, directory)
    if route == architectures.SAFETENSORS:  # what Ollama goes by: the merged config's architectures[0]
        architectures.check_safetensors_import(architectures.config_architecture(directory), ollama_version)
    # Inline the chat template in tokenizer_config.json: Ollama reads it only from there.
    tokenizer.save_pretrained(directory, save_jinja_files=False)
    spec = modelfile.ModelfileSpec(
        template=prompt.template,
        system=prompt_format.INSTRUCTION,
        parameters=modelfile.model_parameters(
            prompt.stop,
            temperature=config.get_float("llm_temperature"),
            num_ctx=_num_ctx(int(info["max_length"]), max_positions),
        ),
    )
    if script is not None:
        outtype, quantize = gguf.outtypes(quantize)
        gguf.convert(script, directory, directory / GGUF_FILE, outtype)
        files, source = (GGUF_FILE,), f"./{GGUF_FILE}"
    else:
        files, source = _upload_files(directory), "."
    comment = (
        f"{model_dir.name}: {info['base_model']} + LoRA, prompt {info.get('prompt_version', '?')} "
        f"({info['prompt_style']}). Written by DAGnostics; build with: ollama create <name> -f Modelfile"
    )
    (directory / MODELFILE).write_text(modelfile.modelfile_text(source, spec, comment=comment), encoding="utf-8")
    log.info("Ollama bundle of %s (%s import) written to %s", model_dir.name, route, directory)
    return Bundle(directory=directory, files=files, spec=spec, route=route, quantize=quantize)


def _route(import_format: str, architecture: str, ollama_version: str | None) -> architectures.Route:
    """The import format asked for, once it is known to work for this model's architecture on that server."""
    chosen = import_format.strip().lower()
    if chosen == architectures.GGUF:
        return architectures.GGUF
    if chosen == architectures.SAFETENSORS:
        architectures.check_safetensors_import(architecture, ollama_version)
        return architectures.SAFETENSORS
    raise ValueError(f"import format must be gguf or safetensors, got {import_format!r}")


def _merge(info: dict[str, Any], adapter_dir: Path, directory: Path) -> int | None:
    """Merge the adapter into the float32 base and save it in the base's precision; returns its position limit."""
    import torch

    from dagnostics_provider.training import model_loading

    trust_remote_code = bool(info.get("trust_remote_code", False))
    base = model_loading.resolve(
        info["base_model"], trust_remote_code=trust_remote_code, revision=info.get("base_model_revision")
    )
    log.info("Merging the LoRA adapter %s into %s (float32)", adapter_dir, base.name)
    model = model_loading.load_for_inference(base, adapter_dir, trust_remote_code=trust_remote_code)
    merged = model.merge_and_unload()
    dtype = published_dtype(merged.name_or_path, trust_remote_code=trust_remote_code, revision=base.revision)
    merged.to(getattr(torch, dtype)).save_pretrained(directory)
    publish_converter_settings(directory / "config.json")
    log.info("Merged model saved as %s safetensors", dtype)
    return base.max_positions


def publish_converter_settings(config_file: Path) -> None:
    """Repeat settings transformers 5 moved or renamed in config.json where the GGUF converters read them.

    transformers 5 writes ``rope_theta`` and the scaling only inside ``rope_parameters``; Ollama's llama and qwen2
    safetensors converters read only the top-level ``rope_theta``/``rope_scaling`` and otherwise fall back to their
    defaults (10 000 for Llama, where SmolLM2 needs 100 000; 0 for Qwen2), so the imported model would answer with
    the wrong positions while every schema check still passes. A GPT-2 config made by transformers 5 has no
    ``n_ctx``, which llama.cpp's GPT-2 converter requires.
    """
    settings = json.loads(config_file.read_text(encoding="utf-8"))
    rope = settings.get("rope_parameters")
    if isinstance(rope, dict):
        if "rope_theta" in rope and "rope_theta" not in settings:
            settings["rope_theta"] = rope["rope_theta"]
        scaling = {key: value for key, value in rope.items() if key != "rope_theta"}
        if scaling.get("rope_type", "default") != "default" and not settings.get("rope_scaling"):
            settings["rope_scaling"] = {"type": scaling["rope_type"], **scaling}
    if settings.get("model_type") == "gpt2" and "n_ctx" not in settings and "n_positions" in settings:
        settings["n_ctx"] = settings["n_positions"]
    config_file.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def published_dtype(source: str, *, trust_remote_code: bool = False, revision: str | None = None) -> str:
    """The precision the base was published in; float16 when it does not say (half the bytes of float32).

    Read from the base's own config: the loaded model's config says float32, the precision it was merged in.
    """
    from transformers import AutoConfig

    declared = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code, revision=revision).dtype
    name = str(declared).removeprefix("torch.") if declared is not None else ""
    return name if name in _SAVE_DTYPES else "float16"


def _num_ctx(max_length: int, max_positions: int | None) -> int:
    """At least the training length and :data:`MIN_NUM_CTX`, never beyond the model's positions."""
    wanted = max(max_length, MIN_NUM_CTX)
    return min(wanted, max_positions) if max_positions else wanted


def _upload_files(directory: Path) -> tuple[str, ...]:
    """What Ollama's safetensors import reads: weights, configs, the tokenizer (not the Modelfile)."""
    return tuple(
        sorted(
            path.name
            for path in directory.iterdir()
            if path.is_file() and path.suffix in (".safetensors", ".json", ".model", ".jinja")
        )
    )
