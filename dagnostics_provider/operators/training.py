"""``LoRATrainingOperator``: fine-tune, evaluate and register a model version from a training dataset."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator


class LoRATrainingOperator(BaseOperator):
    """Train a LoRA adapter (QLoRA on a CUDA worker), evaluate it against its base and production, register it.

    Returns (XCom) ``version`` (``dagnostics-slm-vX.Y``), ``uri`` (its folder: a local path or an object storage
    URL), ``metrics`` (``fine_tuned``, ``base`` and ``production`` evaluation metrics) and ``reused`` (the same
    data, base and parameters were trained before, and that version is returned). Retries are safe: a retry
    reuses the reserved version and resumes from the newest checkpoint. Progress (step, loss, eval loss, ETA)
    goes to the task log. The work lives in :mod:`dagnostics_provider.training.workflow`; options are described
    in docs/training.md. Every option may be a template: the rendered text is converted to the option's type, and
    an empty value means the default.

    :param model_name: base model: hub id, local directory, GGUF file or packaged base; default
        ``[dagnostics] training_base_model``.
    :param train_file: training JSONL (local path or URL); with ``validation_file``, default the newest dataset
        version in the store, e.g. ``"{{ ti.xcom_pull('generate_dataset')['train_path'] }}"``.
    :param validation_file: validation JSONL.
    :param output_dir: home of model versions and production.json; default ``<artifact_root>/models``.
    :param epochs: training epochs (3).
    :param learning_rate: peak learning rate (2e-4).
    :param batch_size: examples per device and step (4).
    :param use_quantization: 4-bit QLoRA when the worker has a CUDA GPU; ignored (with a log line) on CPU.
    :param force_cpu: train on the CPU even when a GPU is present.
    :param max_length: longest example in tokens (2048); longer log contexts lose their middle.
    :param seed: seed of LoRA initialisation and data order (42).
    :param training_options: further :class:`~dagnostics_provider.training.trainer.TrainingParams` fields
        (``lora_r``, ``lora_alpha``, ``lora_dropout``, ``target_modules``, ``gradient_accumulation_steps``,
        ``early_stopping_patience``, ``eval_steps``, ``trust_remote_code``, and on a CPU worker
        ``cpu_activation_checkpointing`` and ``cpu_bf16``; with ``batch_size=1``, ``gradient_accumulation_steps=4``
        and ``lora_dropout=0.0`` these are the recipe ``make train-cpu`` uses, docs/training.md).
    :param evaluate: generate on the validation split and compute metrics (and A/B against base and production).
    """

    template_fields: Sequence[str] = (
        "model_name",
        "train_file",
        "validation_file",
        "output_dir",
        "epochs",
        "learning_rate",
        "batch_size",
        "use_quantization",
        "force_cpu",
        "max_length",
        "seed",
        "training_options",
    )
    ui_color = "#fff3e0"

    def __init__(
        self,
        *,
        model_name: str | None = None,
        train_file: str | None = None,
        validation_file: str | None = None,
        output_dir: str | None = None,
        epochs: float | str | None = None,
        learning_rate: float | str | None = None,
        batch_size: int | str | None = None,
        use_quantization: bool | str | None = None,
        force_cpu: bool | str | None = None,
        max_length: int | str | None = None,
        seed: int | str | None = None,
        training_options: dict[str, Any] | None = None,
        evaluate: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.train_file = train_file
        self.validation_file = validation_file
        self.output_dir = output_dir
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.use_quantization = use_quantization
        self.force_cpu = force_cpu
        self.max_length = max_length
        self.seed = seed
        self.training_options = training_options or {}
        self.evaluate = evaluate

    def execute(self, context: Any) -> dict[str, Any]:
        from dagnostics_provider.training.trainer import training_params
        from dagnostics_provider.training.workflow import train_version

        explicit = {
            "epochs": self.epochs,
            "learning_rate": self.learning_rate,
            "batch_size": self.batch_size,
            "use_quantization": self.use_quantization,
            "force_cpu": self.force_cpu,
            "max_length": self.max_length,
            "seed": self.seed,
        }
        options = {**self.training_options, **{name: v for name, v in explicit.items() if v is not None}}
        params = training_params(self.model_name or None, **options)
        result = train_version(
            params,
            self.train_file or None,
            self.validation_file or None,
            output_dir=self.output_dir or None,
            resume=True,
            evaluate=self.evaluate,
        )
        fine_tuned = (result.metrics or {}).get("fine_tuned") or {}
        self.log.info(
            "Model version %s%s at %s; schema-valid answers %s, category accuracy %s",
            result.version,
            " (already trained, reused)" if result.reused else "",
            result.uri,
            fine_tuned.get("schema_valid_rate", "n/a"),
            fine_tuned.get("category_accuracy", "n/a"),
        )
        return result.to_xcom()
