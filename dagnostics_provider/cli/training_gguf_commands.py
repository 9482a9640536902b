"""``dagnostics training gguf-converter`` and ``check-gguf``: the GGUF export's tool, and proof of its result.

Deployments export GGUF with llama.cpp's converter (docs/deployment.md). ``gguf-converter`` fetches it ahead of
time (or from a source distribution copied in, on a site without a package index); ``check-gguf`` answers
validation examples with a version in transformers and with its GGUF in llama.cpp, so a conversion, quantization
or template problem shows as disagreement before users see it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _gguf_converter(args: argparse.Namespace) -> int:
    from dagnostics_provider.cli.main import UserError
    from dagnostics_provider.deploy import llama_cpp_converter

    try:
        script = llama_cpp_converter.converter_script(sdist=Path(args.sdist).expanduser() if args.sdist else None)
    except llama_cpp_converter.ConverterUnavailable as exc:
        raise UserError(str(exc)) from None
    if args.format == "json":
        print(json.dumps({"script": str(script)}), file=args.out)
    else:
        print(f"llama.cpp's GGUF converter: {script}", file=args.out)
    return 0


def _check_gguf(args: argparse.Namespace) -> int:
    from dagnostics_provider.cli.main import UserError
    from dagnostics_provider.deploy import bundle, engine_agreement
    from dagnostics_provider.training import evaluation, registry, sft_data
    from dagnostics_provider.training.trainer import read_lines

    version_dir = registry.local_copy(args.model_dir)
    gguf_file = Path(args.gguf).expanduser() if args.gguf else version_dir / bundle.BUNDLE_DIR / bundle.GGUF_FILE
    if not gguf_file.is_file():
        raise UserError(f"{gguf_file} does not exist: deploy the version first, or give --gguf FILE")
    info = evaluation.read_training_info(version_dir)
    data = args.data or info.get("dataset", {}).get("validation_file")
    if not data:
        raise UserError("the version names no validation file; give --data JSONL")
    examples = sft_data.read_examples(read_lines(data))[: args.limit]
    if not examples:
        raise UserError(f"{data} has no examples")
    loaded = evaluation.load_version(version_dir, device="cpu")
    max_new_tokens = args.max_new_tokens or evaluation.default_max_new_tokens(
        loaded.tokenizer, [e.output for e in examples]
    )
    (agreement,) = engine_agreement.compare_engines(
        version_dir, [gguf_file], [e.context for e in examples], max_new_tokens=max_new_tokens, loaded=loaded
    )
    summary = agreement.summary()
    if args.format == "json":
        print(json.dumps(agreement.to_dict()), file=args.out)
    else:
        print(
            f"{gguf_file.name}: same category and error message as transformers on "
            f"{summary['agreement']:.0%} of {summary['examples']} example(s); identical answers "
            f"{summary['identical']:.0%}; whole analyses from both {summary['complete']:.0%}; prompt token "
            f"mismatches: {summary['prompt_token_mismatches']}",
            file=args.out,
        )
    return 0 if agreement.rate >= args.min_agreement else 1


def add_gguf_commands(verbs: argparse._SubParsersAction) -> None:
    """Register ``gguf-converter`` and ``check-gguf`` in the ``dagnostics training`` group."""
    converter = verbs.add_parser(
        "gguf-converter",
        help="fetch llama.cpp's GGUF converter (pinned llama-cpp-python sdist) into the local cache",
        description=(
            "Download the pinned llama-cpp-python source distribution with pip, check its sha256 and extract "
            "llama.cpp's convert_hf_to_gguf.py (with conversion/ and gguf-py/) into ~/.cache/dagnostics. "
            "Deployments do this on first use; [dagnostics] llama_cpp_convert_script overrides it."
        ),
    )
    converter.add_argument("--sdist", help="use this downloaded source distribution instead of pip (sha256 checked)")
    converter.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    converter.set_defaults(handler=_gguf_converter)

    check = verbs.add_parser(
        "check-gguf",
        help="compare a version's GGUF in llama.cpp with the version in transformers on validation examples",
        description=(
            "Both engines answer the same examples greedily under the analysis schema grammar (llama.cpp with the "
            "prompt rendered by the Ollama TEMPLATE the deployment sends). Exits 1 when fewer than "
            "--min-agreement of the examples get the same category and error message."
        ),
    )
    check.add_argument("model_dir", metavar="MODEL_DIR", help="version directory, e.g. models/dagnostics-slm-v1.0")
    check.add_argument("--gguf", help="GGUF file to check (default: MODEL_DIR/ollama/model.gguf)")
    check.add_argument("--data", help="JSONL examples (default: the version's validation split)")
    check.add_argument("--limit", type=int, default=20, help="examples to compare (default: 20)")
    check.add_argument("--max-new-tokens", type=int, help="answer length bound (default: from the references)")
    check.add_argument("--min-agreement", type=float, default=0.95, help="agreement below this fails (0.95)")
    check.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    check.set_defaults(handler=_check_gguf)
