"""Base models: what a name points at, what kind of model it is, and how it is loaded for training or inference.

A base is a Hugging Face hub id, a local directory (air-gapped sites copy models in), a GGUF file or the name of
a packaged base such as ``smollm2-135m`` (both converted once to a folder, see :mod:`.base_models`). Only generative
models can produce an analysis: decoder-only causal LMs (Llama, Qwen2, GPT-2...) train through TRL, encoder-decoder
models (flan-t5) through a seq2seq trainer, and encoder-only models (BERT, DistilBERT, CodeBERT) are refused with
a message that says what they are good for, because the guide once listed them as bases and they would fail deep
inside training. Quantization is decided here, once, so the log line that says why it is on or off is the truth.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger(__name__)

TaskType = Literal["CAUSAL_LM", "SEQ_2_SEQ_LM"]
CAUSAL_LM: TaskType = "CAUSAL_LM"
SEQ_2_SEQ_LM: TaskType = "SEQ_2_SEQ_LM"

SUGGESTED_BASES = (
    "HuggingFaceTB/SmolLM2-135M-Instruct, HuggingFaceTB/SmolLM2-360M-Instruct or Qwen/Qwen2.5-0.5B-Instruct"
)


class UnsupportedModelError(ValueError):
    """The base model cannot be fine-tuned to write analyses; the message says what to use instead."""


@dataclass(frozen=True)
class BaseModel:
    """A base model as resolved: the name exactly as given plus what its config says about it."""

    name: str  # as given: hub id, directory, GGUF file or packaged name (recorded so deploy loads the same base)
    local: bool
    task_type: TaskType
    architecture: str  # config.model_type, e.g. "llama", "gpt2", "t5"
    revision: str | None  # the hub commit the files came from; None for a local directory
    max_positions: int | None  # the longest sequence the model's position embeddings allow, when it has a limit
    source: str = ""  # what from_pretrained reads: the hub id or a local folder (a GGUF's converted folder)


def resolve(name: str, *, trust_remote_code: bool = False, revision: str | None = None) -> BaseModel:
    """Inspect ``name``'s config (downloading only the config from the hub) and classify the model.

    A packaged base name or a GGUF file is first converted to a folder (once; later calls reuse it).
    """
    from transformers import AutoConfig

    from dagnostics_provider.training import base_models

    if name in base_models.PACKAGED_BASES:
        source = str(base_models.packaged_base_folder(name))
    elif base_models.is_gguf_file(name):
        source = str(base_models.gguf_base_folder(name))
    else:
        source = str(Path(name).expanduser()) if Path(name).expanduser().is_dir() else name
    local = Path(source).is_dir()
    try:
        model_config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code, revision=revision)
    except OSError as exc:
        if local:
            raise
        raise UnsupportedModelError(
            f"{name!r} is neither a local folder nor reachable on the Hugging Face hub ({exc}). Without a hub, use "
            f"a local model folder, a GGUF file, or the packaged base: "
            f"{', '.join(sorted(base_models.PACKAGED_BASES))} (dagnostics training base-model)."
        ) from exc
    return BaseModel(
        name=name,
        local=local,
        task_type=task_type_of(model_config),
        architecture=model_config.model_type,
        revision=None if local else (revision or getattr(model_config, "_commit_hash", None)),
        max_positions=_max_positions(model_config),
        source=source,
    )


def task_type_of(model_config: Any) -> TaskType:
    """CAUSAL_LM or SEQ_2_SEQ_LM for a generative model; :class:`UnsupportedModelError` for anything else."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
        MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES,
    )

    model_type = model_config.model_type
    if (
        getattr(model_config, "is_encoder_decoder", False)
        and model_type in MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES
    ):
        return SEQ_2_SEQ_LM
    # BERT-family configs also map to a "...ForCausalLM" head, but only as a decoder inside an encoder-decoder
    # pair; as a base of their own they are encoders, which is what the masked-LM mapping says.
    encoder = model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES and not getattr(model_config, "is_decoder", False)
    if model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and not encoder:
        return CAUSAL_LM
    if encoder or any(
        a.endswith(("ForMaskedLM", "ForSequenceClassification")) for a in model_config.architectures or []
    ):
        raise UnsupportedModelError(
            f"{model_type!r} is an encoder-only model: encoder-only models classify or embed text; they cannot "
            f"generate an analysis. Use a causal LM such as {SUGGESTED_BASES} (or a seq2seq model such as "
            "google/flan-t5-small)."
        )
    raise UnsupportedModelError(
        f"{model_type!r} is not a text-generation model transformers can load for causal or seq2seq language "
        f"modelling. Use a causal LM such as {SUGGESTED_BASES}."
    )


def _max_positions(model_config: Any) -> int | None:
    for attribute in ("max_position_embeddings", "n_positions"):
        value = getattr(model_config, attribute, None)
        if isinstance(value, int) and value > 0:
            return value
    return None  # relative positions (T5) have no hard limit


@dataclass(frozen=True)
class Precision:
    """How the model is held and trained: the device, 4-bit QLoRA or not, and the mixed-precision mode."""

    device: str  # "cuda" or "cpu"
    quantized: bool
    reason: str  # why, in words, for the log and training_info.json
    compute_dtype: str  # "bfloat16" | "float16" | "float32": the dtype matmuls run in
    bf16: bool  # Trainer mixed-precision flags
    fp16: bool


def decide_precision(
    use_quantization: bool,
    *,
    force_cpu: bool = False,
    cuda_available: bool | None = None,
    bf16_supported: bool | None = None,
) -> Precision:
    """QLoRA only where it can run (bitsandbytes 4-bit kernels need CUDA); plain fp32 LoRA on a CPU."""
    import torch

    if cuda_available is None:
        cuda_available = torch.cuda.is_available()
    if force_cpu or not cuda_available:
        why = "--force-cpu was given" if force_cpu else "no CUDA device is available"
        reason = f"training on CPU in float32 because {why}"
        if use_quantization:
            reason += "; 4-bit quantization is off because bitsandbytes' 4-bit kernels need a CUDA GPU"
        return Precision("cpu", False, reason, "float32", bf16=False, fp16=False)
    if bf16_supported is None:
        bf16_supported = torch.cuda.is_bf16_supported()
    compute_dtype = "bfloat16" if bf16_supported else "float16"
    if use_quantization:
        reason = f"QLoRA on CUDA: 4-bit NF4 weights with double quantization, {compute_dtype} compute"
    else:
        reason = f"LoRA on CUDA: float32 weights, {compute_dtype} mixed precision (quantization not requested)"
    return Precision("cuda", use_quantization, reason, compute_dtype, bf16=bf16_supported, fp16=not bf16_supported)


def bnb_config(precision: Precision) -> Any:
    """QLoRA's quantization (Dettmers et al. 2023): NF4 weights, double-quantized constants."""
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=getattr(torch, precision.compute_dtype),
    )


def _model_class(task_type: TaskType) -> Any:
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    return AutoModelForSeq2SeqLM if task_type == SEQ_2_SEQ_LM else AutoModelForCausalLM


def source_of(base: BaseModel) -> str:
    """What ``from_pretrained`` reads for ``base``: its hub id or local folder (a GGUF's converted folder)."""
    if base.source:
        return base.source
    return str(Path(base.name).expanduser()) if base.local else base.name


def load_model(base: BaseModel, precision: Precision, *, trust_remote_code: bool = False) -> Any:
    """The base model ready for LoRA: 4-bit and prepared for k-bit training under QLoRA, float32 otherwise."""
    import torch

    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code, "revision": base.revision}
    if precision.quantized:
        from accelerate import PartialState

        kwargs["quantization_config"] = bnb_config(precision)
        kwargs["dtype"] = getattr(torch, precision.compute_dtype)
        # One full copy per process: under `accelerate launch` each rank holds its own 4-bit model.
        kwargs["device_map"] = {"": PartialState().local_process_index}
    else:
        kwargs["dtype"] = torch.float32
    model = _model_class(base.task_type).from_pretrained(source_of(base), **kwargs)
    if precision.quantized:
        from peft import prepare_model_for_kbit_training

        # Casts norms and the head to float32 and enables gradient checkpointing: the memory QLoRA saves on
        # weights would otherwise go to activations.
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=True, gradient_checkpointing_kwargs={"use_reentrant": False}
        )
    return model


def load_tokenizer(source: str, *, trust_remote_code: bool = False, revision: str | None = None) -> Any:
    """The tokenizer with a pad token (GPT-2 style tokenizers have none; padding is masked, so EOS serves)."""
    from transformers import AutoTokenizer

    path = Path(source).expanduser()
    tokenizer = AutoTokenizer.from_pretrained(
        str(path) if path.is_dir() else source, trust_remote_code=trust_remote_code, revision=revision
    )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_for_inference(
    base: BaseModel, adapter_dir: Path | None, *, device: str = "cpu", trust_remote_code: bool = False
) -> Any:
    """The base model in float32 (with the LoRA adapter from ``adapter_dir`` when given), in eval mode."""
    import torch

    model = _model_class(base.task_type).from_pretrained(
        source_of(base), dtype=torch.float32, trust_remote_code=trust_remote_code, revision=base.revision
    )
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter_dir))
    return model.to(device).eval()
