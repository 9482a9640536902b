"""``dagnostics training``: the learning loop from a terminal, with the verbs and options the guide documents.

Each verb is one ``add_<verb>(verbs)`` function that declares its arguments and its handler; :func:`register`
creates the group and calls every function in :data:`VERBS`.  Adding a verb (``train-local``, ``evaluate``,
``deploy-ollama``...) is writing its ``add_`` function, in its own module when it is large, and listing it in
:data:`VERBS`.  Handlers import what they need when they run, so ``dagnostics --help`` stays fast and only the
verbs that train load torch.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from dagnostics_provider.cli.common import boolean, require_migrated_store
from dagnostics_provider.cli.training_base_commands import add_base_model_commands
from dagnostics_provider.cli.training_deploy_commands import add_deploy_commands
from dagnostics_provider.cli.training_gguf_commands import add_gguf_commands
from dagnostics_provider.cli.training_model_commands import add_model_commands
from dagnostics_provider.cli.training_pipeline_commands import add_pipeline_commands


def _rating(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 5:
        raise argparse.ArgumentTypeError("must be between 1 and 5")
    return value


# ------------------------------------------------------------------------------------------ feedback-stats


def _print_stats(stats: dict[str, Any], out) -> None:
    lines = [
        f"Reviews:           {stats['total_feedback_count']} "
        f"({stats['accepted_count']} accepted as is, {stats['corrected_count']} corrected)",
        f"Average rating:    {stats['avg_user_rating']:.2f} / 5",
        f"Reviewed items:    {stats['reviewed_items']} of {stats['analysed_items']} analysed failures",
        f"Last {stats['recent_days']} days:       {stats['recent_feedback_count']} reviews",
        "Ratings:           " + "  ".join(f"{r}★ {n}" for r, n in stats["rating_histogram"].items()),
    ]
    if stats["category_distribution"]:
        width = max(len(category) for category in stats["category_distribution"])
        lines += ["", "Categories (as reviewed):"]
        lines += [f"  {c:<{width}}  {n}" for c, n in stats["category_distribution"].items()]
    print("\n".join(lines), file=out)


def _feedback_stats(args: argparse.Namespace) -> int:
    from dagnostics_provider.store.reviews import feedback_stats

    require_migrated_store()
    stats = feedback_stats(recent_days=args.days)
    if args.format == "json":
        print(json.dumps(stats, ensure_ascii=False), file=args.out)
    else:
        _print_stats(stats, args.out)
    return 0


def add_feedback_stats(verbs: argparse._SubParsersAction) -> None:
    stats = verbs.add_parser(
        "feedback-stats",
        help="how much feedback there is: totals, average rating, categories, recent reviews",
        description="Feedback statistics (the same figures as the review UI's statistics page).",
    )
    stats.add_argument("--days", type=int, default=7, help="length of the 'recent' window in days (default: 7)")
    stats.add_argument("--format", choices=("text", "json"), default="text", help="output format (default: text)")
    stats.set_defaults(handler=_feedback_stats)


# ----------------------------------------------------------------------------------------- export-feedback


def _export_feedback(args: argparse.Namespace) -> int:
    from dagnostics_provider.store.reviews import iter_feedback, to_csv, to_jsonl

    require_migrated_store()
    render = to_csv if args.format == "csv" else to_jsonl
    exported = 0

    def counted():
        nonlocal exported
        for row in iter_feedback(min_rating=args.min_rating, status=args.status):
            exported += 1
            yield row

    if args.output is None:
        args.out.writelines(render(counted()))
        print(f"Exported {exported} reviews (rating >= {args.min_rating}).", file=sys.stderr)
        return 0
    from dagnostics_provider import artifacts

    target = artifacts.to_path(args.output)
    with artifacts.atomic_writer(target, "w") as handle:
        handle.writelines(render(counted()))
    print(f"Exported {exported} reviews (rating >= {args.min_rating}) to {artifacts.to_uri(target)}", file=args.out)
    return 0


def add_export_feedback(verbs: argparse._SubParsersAction) -> None:
    from dagnostics_provider.store.reviews import DEFAULT_MIN_RATING, EXPORT_STATUSES

    export = verbs.add_parser(
        "export-feedback",
        help="export reviewed feedback (rating >= N) as JSON lines or CSV",
        description=(
            "Export every review rated at least --min-rating, oldest first, with the log context, the AI's "
            "analysis and the reviewer's correction. Without --output the export goes to stdout."
        ),
    )
    export.add_argument(
        "--min-rating",
        type=_rating,
        default=DEFAULT_MIN_RATING,
        help=f"lowest rating exported (default: {DEFAULT_MIN_RATING})",
    )
    export.add_argument("--output", help="file or object storage URL to write (default: stdout)")
    export.add_argument("--format", choices=("jsonl", "csv"), default="jsonl", help="file format (default: jsonl)")
    export.add_argument(
        "--status",
        choices=EXPORT_STATUSES,
        default="all",
        help="only analyses accepted as is, only corrections, or all (default: all)",
    )
    export.set_defaults(handler=_export_feedback)


# ---------------------------------------------------------------------------------------- generate-dataset


def _generate_dataset(args: argparse.Namespace) -> int:
    from dagnostics_provider.cli.main import UserError
    from dagnostics_provider.training.dataset import DatasetOptions, NotEnoughExamples, generate_dataset

    require_migrated_store()
    try:
        options = DatasetOptions(
            min_examples=args.min_examples,
            include_feedback=args.include_feedback,
            include_accepted=args.include_accepted,
            min_rating=args.min_rating,
            validation_ratio=args.validation_ratio,
            seed=args.seed,
        )
        result = generate_dataset(args.output_dir, options)
    except (NotEnoughExamples, ValueError) as exc:
        raise UserError(str(exc)) from None
    if args.format == "json":
        print(json.dumps(result.to_dict()), file=args.out)
        return 0
    state = "existing version, feedback unchanged" if result.reused else "new version"
    print(
        f"Dataset {result.version} ({state})\n"
        f"  train:       {result.train_count:>6} examples  {result.train_path}\n"
        f"  validation:  {result.validation_count:>6} examples  {result.validation_path}\n"
        f"  info:                        {result.info_path}",
        file=args.out,
    )
    return 0


def add_generate_dataset(verbs: argparse._SubParsersAction) -> None:
    from dagnostics_provider.training.dataset import DatasetOptions

    defaults = DatasetOptions()
    generate = verbs.add_parser(
        "generate-dataset",
        help="build train/validation JSONL files from reviewed feedback and register the dataset version",
        description=(
            "Select reviewed examples (see docs/dataset.md), split them by failure fingerprint and write "
            "train_dataset.jsonl, validation_dataset.jsonl and dataset_info.json into a folder named after the "
            "version. Exits with status 2 when there are fewer than --min-examples examples."
        ),
    )
    generate.add_argument(
        "--output-dir",
        help="folder or object storage URL for dataset versions (default: <artifact_root>/data/training)",
    )
    generate.add_argument(
        "--min-examples",
        type=int,
        default=defaults.min_examples,
        help=f"fail below this many examples (default: {defaults.min_examples})",
    )
    generate.add_argument(
        "--include-feedback",
        type=boolean,
        default=defaults.include_feedback,
        metavar="true|false",
        help="use reviewers' corrections (default: true)",
    )
    generate.add_argument(
        "--include-accepted",
        type=boolean,
        default=defaults.include_accepted,
        metavar="true|false",
        help="use analyses reviewers accepted unchanged (default: true)",
    )
    generate.add_argument(
        "--min-rating",
        type=_rating,
        default=defaults.min_rating,
        help=f"lowest rating that counts (default: {defaults.min_rating})",
    )
    generate.add_argument(
        "--validation-ratio",
        type=float,
        default=defaults.validation_ratio,
        help=f"share held out for validation (default: {defaults.validation_ratio})",
    )
    generate.add_argument(
        "--seed", type=int, default=defaults.seed, help=f"seed of the split (default: {defaults.seed})"
    )
    generate.add_argument("--format", choices=("text", "json"), default="text", help="output format (default: text)")
    generate.set_defaults(handler=_generate_dataset)


VERBS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    add_feedback_stats,
    add_export_feedback,
    add_generate_dataset,
    add_base_model_commands,
    add_model_commands,
    add_deploy_commands,
    add_gguf_commands,
    add_pipeline_commands,
)


def register(groups: argparse._SubParsersAction) -> None:
    training = groups.add_parser(
        "training",
        help="feedback statistics and export, training datasets, fine-tuning and deployment",
        description="The learning loop: reviewed feedback → dataset → fine-tuned model → Ollama.",
    )
    verbs = training.add_subparsers(dest="training_command", required=True, metavar="VERB")
    for add_verb in VERBS:
        add_verb(verbs)
