"""``dagnostics training pipeline``: the retraining DAG's steps in one terminal process (the guide's command)."""

from __future__ import annotations

import argparse
import json

from dagnostics_provider.cli.common import boolean, ollama_quantize
from dagnostics_provider.cli.training_model_commands import CPU_LEVERS, add_cpu_levers, training_defaults


def _pipeline(args: argparse.Namespace) -> int:
    from dagnostics_provider.cli.common import require_migrated_store
    from dagnostics_provider.cli.main import UserError
    from dagnostics_provider.training.dataset import NotEnoughExamples
    from dagnostics_provider.training.pipeline import NotEnoughFeedback, PipelineOptions, run_pipeline, summary_text

    require_migrated_store()
    options = PipelineOptions(
        model_name=args.model_name,
        min_feedback=args.min_feedback,
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        batch_size=args.batch_size,
        use_quantization=args.use_quantization,
        force_cpu=args.force_cpu,
        auto_deploy=args.auto_deploy,
        quantize=args.quantize,
        min_rating=args.min_rating,
        training_options={name: getattr(args, name) for name in CPU_LEVERS},
    )
    try:
        steps = run_pipeline(options)
    except (NotEnoughFeedback, NotEnoughExamples) as exc:
        raise UserError(str(exc)) from None
    print(json.dumps(steps, default=str) if args.format == "json" else summary_text(steps), file=args.out)
    return 0


def add_pipeline_commands(verbs: argparse._SubParsersAction) -> None:
    pipeline = verbs.add_parser(
        "pipeline",
        help="feedback check → dataset → training + evaluation → gate → deployment, in this process",
        description=(
            "Run the retraining loop from a terminal, as the dagnostics_retraining DAG does: retrain when at least "
            "--min-feedback reviews arrived since the production model's dataset, and deploy (with "
            "--auto-deploy true) only when the new model beats production."
        ),
    )
    pipeline.add_argument("--model-name", help="base model: hub id or local directory")
    pipeline.add_argument("--min-feedback", type=int, default=20, help="new reviews needed (default: 20)")
    pipeline.add_argument("--epochs", type=float, default=3, help="training epochs (default: 3)")
    pipeline.add_argument("--learning-rate", type=float, default=2e-4, help="peak learning rate (default: 2e-4)")
    pipeline.add_argument("--batch-size", type=int, default=None, help="examples per step (default: 4)")
    pipeline.add_argument("--use-quantization", type=boolean, default=False, metavar="true|false")
    pipeline.add_argument("--force-cpu", action="store_true", help="train on the CPU even with a GPU")
    pipeline.add_argument(
        "--auto-deploy", type=boolean, default=False, metavar="true|false", help="deploy if it beats production"
    )
    pipeline.add_argument(
        "--quantize", type=ollama_quantize, help="Ollama quantization on create: f32, f16, bf16, q8_0, q4_K_S, q4_K_M"
    )
    add_cpu_levers(pipeline, training_defaults())
    pipeline.add_argument("--min-rating", type=int, default=None, help="lowest review rating used (default: 3)")
    pipeline.add_argument("--format", choices=("text", "json"), default="text")
    pipeline.set_defaults(handler=_pipeline)
