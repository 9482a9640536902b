"""LoRA fine-tuning (QLoRA on CUDA) of a base model on the analysis dataset.

What the original trainer got wrong, and what happens here instead:

- The loss falls on the answer only. Causal LMs train through TRL's ``SFTTrainer`` on prompt/completion records,
  which masks the prompt (and padding) out of the labels and appends EOS so the model learns to stop; seq2seq
  models have the answer as their decoder labels by construction. On a CPU only the answer's positions meet the LM
  head (``answer_logits``), where TRL would project every position.
- Batches are padded to their own longest row (dynamic padding), and rows of similar length are batched together
  (``train_sampling_strategy="group_by_length"``), so padding costs almost nothing.
- Each epoch (or every ``eval_steps``) is evaluated on the validation split; training stops early when the
  validation loss stops improving and the best checkpoint, not the last, becomes the adapter.

The output directory gets ``adapter/``, ``tokenizer/`` (chat template inlined in ``tokenizer_config.json``,
where Ollama reads it), ``checkpoints/`` (for ``resume``; the best one is kept), ``loss_curve.png`` and
``training_info.json``. Registering a version and evaluating it are other modules' jobs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, get_args, get_type_hints

from dagnostics_provider import artifacts, prompt_format
from dagnostics_provider.training import answer_logits, model_loading, sft_data
from dagnostics_provider.training.layout import (
    ADAPTER_DIR,
    CHECKPOINTS_DIR,
    LOSS_CURVE_FILE,
    TOKENIZER_DIR,
    TRAINING_INFO_FILE,
)
from dagnostics_provider.training.model_loading import SEQ_2_SEQ_LM

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingParams:
    """Everything that decides what a training run produces; the guide's defaults (LoRA 16/32/0.1, 3 epochs)."""

    model_name: str
    epochs: float = 3.0
    learning_rate: float = 2e-4
    batch_size: int = 4
    gradient_accumulation_steps: int = 1
    max_length: int = 2048
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.1
    # "all-linear": every linear layer but the output head, whatever the architecture calls them.
    target_modules: str | tuple[str, ...] = "all-linear"
    use_quantization: bool = False
    force_cpu: bool = False
    # CPU levers (benchmarks/bench_training_cpu.py measures them on SmolLM2): recompute activations in the backward
    # pass instead of keeping them, and bfloat16 autocast for the matmuls where the CPU has bf16 instructions.
    cpu_activation_checkpointing: bool = False
    cpu_bf16: bool = False
    seed: int = 42
    early_stopping_patience: int = 2
    eval_steps: int | None = None  # None: evaluate (and checkpoint) once per epoch
    logging_steps: int = 10
    trust_remote_code: bool = False

    def fingerprint(self) -> str:
        """A hash of the parameters that change the trained model (not logging or bookkeeping)."""
        # Logging and activation checkpointing change how a run goes, not the model it trains.
        relevant = {k: v for k, v in asdict(self).items() if k not in ("logging_steps", "cpu_activation_checkpointing")}
        if not self.cpu_bf16:  # added later: runs without it keep the fingerprint (and the version) they had
            del relevant["cpu_bf16"]
        for name, value in relevant.items():  # 1 from a DAG and 1.0 from the CLI are the same run
            if isinstance(value, int) and not isinstance(value, bool):
                relevant[name] = float(value)
        if not isinstance(self.target_modules, str):
            relevant["target_modules"] = sorted(self.target_modules)
        return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()


_FIELD_TYPES = get_type_hints(TrainingParams)


def _coerce(name: str, value: Any) -> Any:
    """A templated option (Airflow renders templates to text) as the type its TrainingParams field has."""
    if not isinstance(value, str):
        return value
    if not value.strip() or value.strip().lower() == "none":
        return None
    kinds = [kind for kind in (get_args(_FIELD_TYPES[name]) or (_FIELD_TYPES[name],)) if kind is not type(None)]
    if bool in kinds:
        if value.strip().lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"{name} must be true or false, got {value!r}")
        return value.strip().lower() in ("true", "1", "yes")
    for kind in (int, float):
        if kind in kinds:
            return kind(value)
    return value


def training_params(model_name: str | None = None, **options: Any) -> TrainingParams:
    """:class:`TrainingParams` from operator or CLI options: an option left at None (or empty) keeps its default,
    text is converted to the field's type (templated operator fields render to text), no model name means
    ``[dagnostics] training_base_model``, and target modules may come comma-separated.
    """
    from dagnostics_provider import config

    chosen = {name: _coerce(name, value) for name, value in options.items()}
    chosen = {name: value for name, value in chosen.items() if value is not None}
    targets = chosen.get("target_modules")
    if isinstance(targets, str) and targets != "all-linear":
        chosen["target_modules"] = tuple(t.strip() for t in targets.split(",") if t.strip())
    elif isinstance(targets, (list, tuple)):
        chosen["target_modules"] = tuple(targets)
    return TrainingParams(model_name=model_name or config.get("training_base_model"), **chosen)


@dataclass(frozen=True)
class TrainingResult:
    """The model directory a run wrote and its training_info.json content."""

    output_dir: Path
    info: dict[str, Any]


def read_lines(location: str | os.PathLike[str]) -> list[str]:
    """A JSONL file's lines, local or in object storage."""
    return artifacts.to_path(location).read_text(encoding="utf-8").splitlines()


def _max_length(params: TrainingParams, base: model_loading.BaseModel) -> int:
    if base.max_positions is not None and params.max_length > base.max_positions:
        log.warning(
            "max_length %d is longer than %s allows (%d positions); using %d",
            params.max_length,
            base.name,
            base.max_positions,
            base.max_positions,
        )
        return base.max_positions
    return params.max_length


def _hardware(precision: model_loading.Precision) -> dict[str, Any]:
    import peft
    import torch
    import transformers
    import trl

    cuda = precision.device == "cuda"
    return {
        "device": precision.device,
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "gpu_count": torch.cuda.device_count() if cuda else 0,
        "processes": int(os.environ.get("WORLD_SIZE", "1")),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "trl": trl.__version__,
    }


def _training_arguments(params: TrainingParams, precision: model_loading.Precision, checkpoints: Path) -> dict:
    """Arguments shared by the causal (SFTConfig) and seq2seq (TrainingArguments) paths."""
    strategy = "steps" if params.eval_steps else "epoch"
    return {
        "output_dir": str(checkpoints),
        "num_train_epochs": params.epochs,
        "learning_rate": params.learning_rate,
        "per_device_train_batch_size": params.batch_size,
        "per_device_eval_batch_size": params.batch_size,
        "gradient_accumulation_steps": params.gradient_accumulation_steps,
        "train_sampling_strategy": "group_by_length",
        "eval_strategy": strategy,
        "save_strategy": strategy,
        "eval_steps": params.eval_steps,
        "save_steps": params.eval_steps,
        # With load_best_model_at_end the best checkpoint is kept besides the newest (which resume needs).
        "save_total_limit": 1,
        "load_best_model_at_end": True,
        "metric_for_best_model": "eval_loss",
        "greater_is_better": False,
        "logging_steps": params.logging_steps,
        "logging_first_step": True,
        "seed": params.seed,
        "data_seed": params.seed,
        "use_cpu": precision.device == "cpu",
        "bf16": precision.bf16 or (precision.device == "cpu" and params.cpu_bf16),
        "fp16": precision.fp16,
        # Checkpointing trades speed for activation memory: worth it where memory is why QLoRA was asked for, and on
        # a CPU when asked (the numbers are in docs/training.md).
        "activation_checkpointing": precision.quantized
        or (precision.device == "cpu" and params.cpu_activation_checkpointing),
        "activation_checkpointing_kwargs": {"use_reentrant": False},
        "ddp_find_unused_parameters": False,
        "label_names": ["labels"],
        "report_to": "none",
        # tqdm on a terminal; in a task log the ProgressLogCallback's lines say the same without the noise.
        "disable_tqdm": not sys.stderr.isatty(),
    }


def lora_config(params: TrainingParams, task_type: str) -> Any:
    """The peft LoraConfig of a run (also what the training benchmark's baseline uses, for a fair comparison)."""
    from peft import LoraConfig

    targets = params.target_modules if isinstance(params.target_modules, str) else list(params.target_modules)
    return LoraConfig(
        r=params.lora_r,
        lora_alpha=params.lora_alpha,
        lora_dropout=params.lora_dropout,
        target_modules=targets,
        bias="none",
        task_type=task_type,
    )


def _causal_trainer(
    model: Any,
    tokenizer: Any,
    params: TrainingParams,
    precision: model_loading.Precision,
    checkpoints: Path,
    max_length: int,
    style: sft_data.PromptStyle,
    train: list[sft_data.Example],
    validation: list[sft_data.Example],
    callbacks: list[Any],
) -> Any:
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    # On a CPU, TRL's fused LM head projects every position; this trainer projects the answer's positions only.
    answer_only = precision.device == "cpu" and answer_logits.takes_logits_to_keep(model)
    trainer_class = answer_logits.answer_logits_trainer_class() if answer_only else SFTTrainer
    args = SFTConfig(
        **_training_arguments(params, precision, checkpoints),
        max_length=max_length,
        completion_only_loss=True,
        packing=False,  # packing and padding-free need FlashAttention; dynamic padding + grouping instead
        padding_free=False,
    )
    return trainer_class(
        model=model,
        args=args,
        train_dataset=Dataset.from_list([sft_data.sft_record(e, style) for e in train]),
        eval_dataset=Dataset.from_list([sft_data.sft_record(e, style) for e in validation]),
        processing_class=tokenizer,
        peft_config=lora_config(params, model_loading.CAUSAL_LM),
        callbacks=callbacks,
    )


def _seq2seq_features(tokenizer: Any, examples: list[sft_data.Example], max_length: int, split: str) -> list[dict]:
    features = [sft_data.seq2seq_features(tokenizer, e) for e in examples]
    kept = [f for f in features if len(f["labels"]) <= max_length]
    if len(kept) < len(features):
        log.warning(
            "%d %s example(s) dropped: their answer is longer than max_length", len(features) - len(kept), split
        )
    return kept


def _seq2seq_trainer(
    model: Any,
    tokenizer: Any,
    params: TrainingParams,
    precision: model_loading.Precision,
    checkpoints: Path,
    max_length: int,
    train: list[sft_data.Example],
    validation: list[sft_data.Example],
    callbacks: list[Any],
) -> Any:
    from datasets import Dataset
    from peft import get_peft_model
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    model = get_peft_model(model, lora_config(params, SEQ_2_SEQ_LM))
    return Trainer(
        model=model,
        args=TrainingArguments(**_training_arguments(params, precision, checkpoints)),
        train_dataset=Dataset.from_list(_seq2seq_features(tokenizer, train, max_length, "training")),
        eval_dataset=Dataset.from_list(_seq2seq_features(tokenizer, validation, max_length, "validation")),
        processing_class=tokenizer,
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100),
        callbacks=callbacks,
    )


def build_trainer(
    params: TrainingParams,
    train_file: str | os.PathLike[str],
    validation_file: str | os.PathLike[str],
    output_dir: Path,
) -> tuple[Any, dict[str, Any]]:
    """The ready-to-run trainer and what is known about the run before it trains (for training_info.json).

    Separate from :func:`train` so tests and the benchmark can inspect what the trainer feeds the model.
    """
    from transformers import EarlyStoppingCallback, PrinterCallback

    from dagnostics_provider.training.progress import ProgressLogCallback, quiet_progress_bars

    started = time.monotonic()
    if not sys.stderr.isatty():
        quiet_progress_bars()
    base = model_loading.resolve(params.model_name, trust_remote_code=params.trust_remote_code)
    precision = model_loading.decide_precision(params.use_quantization, force_cpu=params.force_cpu)
    log.info("%s (%s, %s): %s", base.name, base.architecture, base.task_type, precision.reason)
    tokenizer = model_loading.load_tokenizer(
        model_loading.source_of(base), trust_remote_code=params.trust_remote_code, revision=base.revision
    )
    style = sft_data.prompt_style(tokenizer, base.task_type)
    max_length = _max_length(params, base)
    answer_budget = 0 if base.task_type == SEQ_2_SEQ_LM else None
    fitted = {}
    for split, location in (("train", train_file), ("validation", validation_file)):
        examples = sft_data.read_examples(read_lines(location))
        fitted[split] = sft_data.fit_examples(tokenizer, examples, style, max_length, answer_budget=answer_budget)
        if not fitted[split][0]:
            raise ValueError(f"no {split} example fits max_length={max_length} tokens (file {location})")
    loaded = time.monotonic()
    model = model_loading.load_model(base, precision, trust_remote_code=params.trust_remote_code)
    checkpoints = output_dir / CHECKPOINTS_DIR
    callbacks = [ProgressLogCallback(), EarlyStoppingCallback(early_stopping_patience=params.early_stopping_patience)]
    train, validation = fitted["train"][0], fitted["validation"][0]
    if base.task_type == SEQ_2_SEQ_LM:
        trainer = _seq2seq_trainer(
            model, tokenizer, params, precision, checkpoints, max_length, train, validation, callbacks
        )
    else:
        trainer = _causal_trainer(
            model, tokenizer, params, precision, checkpoints, max_length, style, train, validation, callbacks
        )
    if trainer.args.disable_tqdm:
        trainer.remove_callback(PrinterCallback)  # raw dicts on stdout; the progress callback logs them readably
    trainable, total = trainer.model.get_nb_trainable_parameters()
    log.info("LoRA: %d of %d parameters trainable (%.2f%%)", trainable, total, 100 * trainable / max(1, total))
    info = {
        "base_model": base.name,
        "base_model_revision": base.revision,
        "task_type": base.task_type,
        "architecture": base.architecture,
        "prompt_style": style,
        "prompt_version": prompt_format.PROMPT_VERSION,
        "chat_template": tokenizer.chat_template if style == sft_data.CHAT_TEMPLATE else None,
        "plain_template": prompt_format.PLAIN_TEMPLATE if style == sft_data.PLAIN else None,
        "max_length": max_length,
        "eos_token": tokenizer.eos_token,
        "pad_token": tokenizer.pad_token,
        "trust_remote_code": params.trust_remote_code,
        "lora": {
            "r": params.lora_r,
            "alpha": params.lora_alpha,
            "dropout": params.lora_dropout,
            "target_modules": params.target_modules,
        },
        "parameters": {**asdict(params), "fingerprint": params.fingerprint()},
        "examples": {
            split: {"used": len(kept), "context_cut": cut, "dropped": dropped}
            for split, (kept, cut, dropped) in fitted.items()
        },
        "trainable_parameters": trainable,
        "total_parameters": total,
        "quantization": {
            "enabled": precision.quantized,
            "method": "bitsandbytes 4-bit NF4, double quantization" if precision.quantized else None,
            "compute_dtype": precision.compute_dtype,
            "reason": precision.reason,
        },
        "hardware": _hardware(precision),
        "timings": {"prepare_s": round(loaded - started, 2), "setup_s": round(time.monotonic() - loaded, 2)},
    }
    return trainer, info


def _keep_best_checkpoint(checkpoints: Path, best: str | None) -> None:
    """After a finished run only the best checkpoint is worth its disk space (the adapter is a copy of it)."""
    if not checkpoints.is_dir():
        return
    for child in checkpoints.iterdir():
        if child.is_dir() and child.name.startswith("checkpoint-") and (best is None or child != Path(best)):
            shutil.rmtree(child, ignore_errors=True)


def write_json(path: Path, payload: dict[str, Any]) -> Path:
    with artifacts.atomic_writer(path, "w") as out:
        json.dump(payload, out, indent=2, ensure_ascii=False, default=str)
    return path


def train(
    params: TrainingParams,
    train_file: str | os.PathLike[str],
    validation_file: str | os.PathLike[str],
    output_dir: Path,
    *,
    resume: bool = False,
    extra_info: dict[str, Any] | None = None,
) -> TrainingResult:
    """Train, keep the best adapter, and write the model directory (see the module docstring).

    ``resume`` continues from the newest checkpoint in ``output_dir/checkpoints`` and starts afresh when there is
    none, so a retried task can always pass it. ``extra_info`` (version, dataset) goes into training_info.json.
    """
    from transformers.trainer_utils import get_last_checkpoint

    started = time.monotonic()
    output_dir.mkdir(parents=True, exist_ok=True)
    trainer, info = build_trainer(params, train_file, validation_file, output_dir)
    checkpoints = output_dir / CHECKPOINTS_DIR
    checkpoint = get_last_checkpoint(str(checkpoints)) if resume and checkpoints.is_dir() else None
    if resume:
        log.info(
            "Resuming from %s" if checkpoint else "No checkpoint to resume from in %s; starting afresh",
            checkpoint or checkpoints,
        )
    elif checkpoints.is_dir():
        # A fresh run among an earlier run's checkpoints would have the Trainer rotate (delete) by step number.
        log.info("Not resuming: removing the earlier checkpoints in %s", checkpoints)
        shutil.rmtree(checkpoints)
    train_started = time.monotonic()
    trainer.train(resume_from_checkpoint=checkpoint)
    train_s = time.monotonic() - train_started
    state = trainer.state
    log.info(
        "Training finished after %d of %d steps in %.1f s; best validation loss %s at %s",
        state.global_step,
        state.max_steps,
        train_s,
        f"{state.best_metric:.4f}" if state.best_metric is not None else "n/a",
        state.best_model_checkpoint,
    )
    if not trainer.is_world_process_zero():
        return TrainingResult(output_dir, info)
    from dagnostics_provider.training.progress import save_loss_curve

    trainer.model.save_pretrained(output_dir / ADAPTER_DIR)
    # Inline the chat template in tokenizer_config.json: Ollama reads it only from there.
    trainer.processing_class.save_pretrained(output_dir / TOKENIZER_DIR, save_jinja_files=False)
    save_loss_curve(state.log_history, output_dir / LOSS_CURVE_FILE, f"{info['base_model']} + LoRA r={params.lora_r}")
    _keep_best_checkpoint(checkpoints, state.best_model_checkpoint)
    info.update(extra_info or {})
    info["training"] = {
        "steps": state.global_step,
        "max_steps": state.max_steps,
        "epochs_completed": state.epoch,
        "stopped_early": state.global_step < state.max_steps,
        "best_eval_loss": state.best_metric,
        "best_checkpoint": Path(state.best_model_checkpoint).name if state.best_model_checkpoint else None,
        "resumed_from": Path(checkpoint).name if checkpoint else None,
        "log_history": state.log_history,
    }
    info["timings"].update({"train_s": round(train_s, 2), "total_s": round(time.monotonic() - started, 2)})
    info["created_at"] = datetime.now(timezone.utc).isoformat()
    write_json(output_dir / TRAINING_INFO_FILE, info)
    return TrainingResult(output_dir, info)
