"""``dagnostics training train-local`` and ``dagnostics training evaluate`` (see docs/training.md).

The options' defaults are :class:`~dagnostics_provider.training.trainer.TrainingParams`'s: options are parsed as
None when not given and only given ones are passed on, so the CLI, the operator and the library cannot disagree.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from typing import Any

log = logging.getLogger(__name__)

_SUMMARY = (
    ("schema_valid_rate", "schema-valid"),
    ("category_accuracy", "category"),
    ("category_macro_f1", "macro-F1"),
    ("severity_accuracy", "severity"),
    ("error_message_normalised", "message~"),
    ("error_lines_f1", "lines F1"),
)


def _user_errors() -> tuple[type[BaseException], ...]:
    """Failures a user can fix (a bad model name, no dataset, no network for a hub model), shown as one line."""
    from dagnostics_provider.training.model_loading import UnsupportedModelError
    from dagnostics_provider.training.registry import RegistryError

    return (UnsupportedModelError, RegistryError, LookupError, ValueError, OSError)


def _summary_lines(metrics: dict[str, Any]) -> list[str]:
    lines = []
    rows = [("fine-tuned", metrics.get("fine_tuned")), ("base", metrics.get("base"))]
    rows.append((f"production {metrics.get('production_version') or ''}".strip(), metrics.get("production")))
    for label, scores in rows:
        if scores:
            figures = ", ".join(f"{name} {scores[key]:.2f}" for key, name in _SUMMARY)
            lines.append(f"  {label + ':':<28} {figures}")
    return lines


def _dataset_files(args: argparse.Namespace) -> tuple[str | None, str | None]:
    from dagnostics_provider import artifacts
    from dagnostics_provider.training.dataset import TRAIN_FILE, VALIDATION_FILE

    train, validation = args.train_file, args.validation_file
    if args.dataset_dir:
        folder = artifacts.to_path(args.dataset_dir)
        train = train or artifacts.to_uri(folder / TRAIN_FILE)
        validation = validation or artifacts.to_uri(folder / VALIDATION_FILE)
    return train, validation


def _train_local(args: argparse.Namespace) -> int:
    from dagnostics_provider.cli.common import require_migrated_store
    from dagnostics_provider.cli.main import UserError
    from dagnostics_provider.training.trainer import TrainingParams, training_params
    from dagnostics_provider.training.workflow import train_version

    require_migrated_store()
    train_file, validation_file = _dataset_files(args)
    try:
        params = training_params(
            args.model_name,
            **{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainingParams) if f.name != "model_name"},
        )
        result = train_version(
            params,
            train_file,
            validation_file,
            output_dir=args.output_dir,
            resume=args.resume,
            evaluate=not args.skip_evaluation,
            eval_max_new_tokens=args.eval_max_new_tokens,
        )
    except _user_errors() as exc:
        raise UserError(str(exc)) from None
    if args.format == "json":
        print(json.dumps(result.to_xcom(), default=str), file=args.out)
        return 0
    state = "already trained on this data, reused" if result.reused else "new"
    lines = [f"Model version {result.version} ({state}) at {result.uri}", *_summary_lines(result.metrics)]
    print("\n".join(lines), file=args.out)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from dagnostics_provider.cli.main import UserError
    from dagnostics_provider.store.migrate import is_up_to_date
    from dagnostics_provider.training.workflow import evaluate_model

    use_registry = is_up_to_date()
    if not use_registry:
        log.info("The DAGnostics store is not migrated: no production comparison, metrics not recorded")
    try:
        results = evaluate_model(
            args.model_dir,
            args.dataset,
            use_registry=use_registry,
            compare_base=not args.no_base,
            compare_production=not args.no_production,
            max_new_tokens=args.max_new_tokens,
            batch_size=args.batch_size,
            schema_constrained=args.schema_constrained,
            engine=args.engine,
            quantize=args.quantize,
            convert_script=args.convert_script,
        )
    except _user_errors() as exc:
        raise UserError(str(exc)) from None
    if args.format == "json":
        print(json.dumps(results, default=str), file=args.out)
        return 0
    header = f"Evaluation of {results.get('version') or args.model_dir} on {results['examples']} examples"
    print("\n".join([f"{header} ({results['dataset']})", *_summary_lines(results)]), file=args.out)
    return 0


# The options that make a LoRA run fit a CPU (docs/training.md, "Memory and speed on a CPU"); train-local and the
# pipeline command both take them.
CPU_LEVERS = ("gradient_accumulation_steps", "lora_dropout", "cpu_activation_checkpointing", "cpu_bf16")


def add_cpu_levers(group: Any, defaults: dict[str, Any]) -> None:
    """Add the :data:`CPU_LEVERS` options to ``group`` (parsed as None when not given, like every training option)."""
    group.add_argument(
        "--gradient-accumulation-steps",
        type=int,
        help=f"steps per optimizer update (default: {defaults['gradient_accumulation_steps']})",
    )
    group.add_argument("--lora-dropout", type=float, help=f"LoRA dropout (default: {defaults['lora_dropout']})")
    group.add_argument(
        "--cpu-activation-checkpointing",
        action="store_true",
        default=None,
        help="on a CPU, recompute activations in the backward pass: less memory, slower (see docs/training.md)",
    )
    group.add_argument(
        "--cpu-bf16",
        action="store_true",
        default=None,
        help="on a CPU with bf16 instructions, bfloat16 autocast for the matmuls; weights stay float32",
    )


def training_defaults() -> dict[str, Any]:
    """:class:`TrainingParams`' defaults by field name, for the options' help texts."""
    from dagnostics_provider.training.trainer import TrainingParams

    return {f.name: f.default for f in dataclasses.fields(TrainingParams) if f.name != "model_name"}


def _add_train_local(verbs: argparse._SubParsersAction) -> None:
    from dagnostics_provider.cli.common import boolean

    defaults = training_defaults()
    train = verbs.add_parser(
        "train-local",
        help="fine-tune a base model with LoRA (QLoRA on CUDA), evaluate it and register a model version",
        description=(
            "Train a LoRA adapter on the newest dataset version (or the files given), keep the best checkpoint by "
            "validation loss, evaluate it by generation against its base model and the production version, and "
            "register it as dagnostics-slm-vX.Y. Running it again on the same data with the same options "
            "returns the version already trained. Multi-GPU: `accelerate launch -m dagnostics_provider.cli.main "
            "training train-local ...` (see docs/training.md)."
        ),
    )
    train.set_defaults(handler=_train_local)
    data = train.add_argument_group("data")
    data.add_argument("--dataset-dir", help="a dataset version folder (default: the newest dataset version)")
    data.add_argument("--train-file", help="training JSONL, local path or URL (overrides --dataset-dir)")
    data.add_argument("--validation-file", help="validation JSONL, local path or URL (overrides --dataset-dir)")

    model = train.add_argument_group("model and hardware")
    model.add_argument(
        "--model-name",
        help="base model: hub id, local folder, GGUF file or packaged base (default: [dagnostics] training_base_model)",
    )
    model.add_argument(
        "--use-quantization",
        type=boolean,
        nargs="?",
        const=True,
        metavar="true|false",
        help="4-bit QLoRA (NF4, double quantization) when a CUDA GPU is present; off on CPU (default: false)",
    )
    model.add_argument("--force-cpu", action="store_true", default=None, help="train on the CPU even with a GPU")
    model.add_argument(
        "--trust-remote-code",
        action="store_true",
        default=None,
        help="allow a hub model's own Python code to run (off by default: it executes code from the hub)",
    )
    model.add_argument(
        "--output-dir", help="home of model versions and production.json (default: <artifact_root>/models)"
    )

    training = train.add_argument_group("training")
    training.add_argument("--epochs", type=float, help=f"training epochs (default: {defaults['epochs']:g})")
    training.add_argument(
        "--learning-rate", type=float, help=f"peak learning rate (default: {defaults['learning_rate']:g})"
    )
    training.add_argument(
        "--batch-size", type=int, help=f"examples per device and step (default: {defaults['batch_size']})"
    )
    training.add_argument(
        "--max-length",
        type=int,
        help=f"longest example in tokens; longer log contexts lose their middle (default: {defaults['max_length']})",
    )
    training.add_argument("--lora-r", type=int, help=f"LoRA rank (default: {defaults['lora_r']})")
    training.add_argument("--lora-alpha", type=int, help=f"LoRA scaling (default: {defaults['lora_alpha']})")
    add_cpu_levers(training, defaults)
    training.add_argument(
        "--target-modules",
        help="comma-separated module names LoRA adapts (default: all-linear: every linear layer but the output)",
    )
    training.add_argument(
        "--seed", type=int, help=f"seed of initialisation and data order (default: {defaults['seed']})"
    )
    training.add_argument(
        "--early-stopping-patience",
        type=int,
        help=f"evaluations without improvement before stopping (default: {defaults['early_stopping_patience']})",
    )
    training.add_argument("--eval-steps", type=int, help="evaluate and checkpoint every N steps (default: every epoch)")
    training.add_argument("--logging-steps", type=int, help=f"log every N steps (default: {defaults['logging_steps']})")
    training.add_argument(
        "--resume", action="store_true", help="continue from the newest checkpoint of this run's version"
    )

    evaluation = train.add_argument_group("evaluation")
    evaluation.add_argument("--skip-evaluation", action="store_true", help="register without generating")
    evaluation.add_argument(
        "--eval-max-new-tokens", type=int, help="longest generated answer (default: longest reference + 32)"
    )
    train.add_argument("--format", choices=("text", "json"), default="text", help="output format (default: text)")


def _add_evaluate(verbs: argparse._SubParsersAction) -> None:
    from dagnostics_provider.deploy.gguf import CONVERTER_OUTTYPES
    from dagnostics_provider.training.layout import ENGINES, TRANSFORMERS

    evaluate = verbs.add_parser(
        "evaluate",
        help="evaluate a model version by generation: JSON/schema validity, category, severity, error lines",
        description=(
            "Generate an analysis for every example of a dataset (default: the version's validation split) with "
            "the fine-tuned model, its base model and the production version, and write "
            "evaluation_results.json into the version's folder."
        ),
    )
    evaluate.add_argument("model_dir", metavar="MODEL_DIR", help="version name (dagnostics-slm-vX.Y), folder or URL")
    evaluate.add_argument("--dataset", help="JSONL dataset to evaluate on (default: the version's validation file)")
    evaluate.add_argument("--no-base", action="store_true", help="skip the base model")
    evaluate.add_argument("--no-production", action="store_true", help="skip the production version")
    evaluate.add_argument(
        "--max-new-tokens", type=int, help="longest generated answer (default: longest reference + 32)"
    )
    evaluate.add_argument("--batch-size", type=int, default=8, help="prompts generated together (default: 8)")
    evaluate.add_argument(
        "--schema-constrained",
        action="store_true",
        help="answer under the analysis schema's llama.cpp grammar, as Ollama and the llamacpp analyzer serve "
        "(needs the [serving] extra; with the transformers engine also a base that came from a GGUF file, e.g. "
        "the packaged smollm2-135m)",
    )
    evaluate.add_argument(
        "--engine",
        choices=ENGINES,
        default=TRANSFORMERS,
        help="where the models answer: transformers (the trained weights; default) or llamacpp (their GGUF exports, "
        "as Ollama and the llamacpp analyzer serve them: several times faster on a CPU; needs the [serving] extra)",
    )
    evaluate.add_argument(
        "--quantize",
        choices=CONVERTER_OUTTYPES,
        help="with --engine llamacpp: precision of the GGUF exports (default: f16, as training deploy exports)",
    )
    evaluate.add_argument(
        "--convert-script",
        help="with --engine llamacpp: llama.cpp convert_hf_to_gguf.py to export with (default: "
        "[dagnostics] llama_cpp_convert_script, else the pinned one)",
    )
    evaluate.add_argument("--format", choices=("text", "json"), default="text", help="output format (default: text)")
    evaluate.set_defaults(handler=_evaluate)


def add_model_commands(verbs: argparse._SubParsersAction) -> None:
    """Register ``train-local`` and ``evaluate`` in the ``dagnostics training`` group."""
    _add_train_local(verbs)
    _add_evaluate(verbs)
