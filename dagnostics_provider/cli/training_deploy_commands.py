"""``dagnostics training deploy-ollama`` and ``dagnostics training rollback`` (see docs/deployment.md)."""

from __future__ import annotations

import argparse
import json

from dagnostics_provider.cli.common import ollama_quantize

_BOOLEAN = ("true", "false")


def _user_errors():
    """The failures a user can act on, printed as one line instead of a traceback."""
    from dagnostics_provider.deploy.gguf import GGUFConversionError
    from dagnostics_provider.deploy.ollama_deploy import DeployError
    from dagnostics_provider.hooks.llm_errors import LLMError

    return (DeployError, GGUFConversionError, LLMError, LookupError, OSError, ValueError)


def _deploy_ollama(args: argparse.Namespace) -> int:
    from dagnostics_provider.cli.common import require_migrated_store
    from dagnostics_provider.cli.main import UserError
    from dagnostics_provider.deploy import ollama_deploy

    try:
        if args.auto_build == "false":
            built = ollama_deploy.build_only(
                args.model_dir,
                model_name=args.model_name,
                quantize=args.quantize,
                convert_script=args.convert_script,
                import_format=args.import_format,
            )
            if args.format == "json":
                print(json.dumps(built.to_dict()), file=args.out)
            else:
                print(
                    f"Ollama bundle of {built.version} written to {built.bundle_dir}\n"
                    f"Build it on the Ollama machine (with the folder copied there) with:\n  {built.create_command}",
                    file=args.out,
                )
            return 0
        require_migrated_store()
        result = ollama_deploy.deploy(
            args.model_dir,
            ollama_deploy.ollama_hook(args.conn_id),
            model_name=args.model_name,
            alias=args.alias,
            quantize=args.quantize,
            convert_script=args.convert_script,
            import_format=args.import_format,
            promote=args.promote == "true",
        )
    except _user_errors() as exc:
        raise UserError(str(exc)) from None
    if args.format == "json":
        print(json.dumps(result.to_dict()), file=args.out)
    else:
        serving = f", serving as {result.alias}" if result.promoted else " (not promoted)"
        print(
            f"Deployed {result.version} to {result.target} as {result.tag}{serving} "
            f"(deployment {result.deployment_id})",
            file=args.out,
        )
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from dagnostics_provider.cli.common import require_migrated_store
    from dagnostics_provider.cli.main import UserError
    from dagnostics_provider.deploy import ollama_deploy

    require_migrated_store()
    try:
        result = ollama_deploy.rollback(ollama_deploy.ollama_hook(args.conn_id), to_version=args.to, alias=args.alias)
    except _user_errors() as exc:
        raise UserError(str(exc)) from None
    if args.format == "json":
        print(json.dumps(result.to_dict()), file=args.out)
    else:
        print(
            f"Rolled back to {result.version}: {result.alias} now serves {result.tag} on {result.target}", file=args.out
        )
    return 0


def _connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--conn-id", help="Ollama connection (default: [dagnostics] llm_conn_id, else ollama_default)")
    parser.add_argument("--alias", help="name the analyzer uses (default: [dagnostics] deploy_alias)")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format (default: text)")


def add_deploy_commands(verbs: argparse._SubParsersAction) -> None:
    """Register ``deploy-ollama`` and ``rollback`` under ``dagnostics training``."""
    deploy = verbs.add_parser(
        "deploy-ollama",
        help="merge a trained version, upload it to Ollama, verify it and make it the analyzer's model",
        description=(
            "Merge the LoRA adapter of MODEL_DIR into its base, write the Ollama bundle (safetensors, tokenizer, "
            "Modelfile with the training prompt as TEMPLATE) and, with --auto-build true, upload it over Ollama's "
            "REST API, create the version's tag, check it with a smoke analysis and copy it to the alias the "
            "analyzer uses. A failed deployment leaves production unchanged."
        ),
    )
    deploy.add_argument("model_dir", metavar="MODEL_DIR", help="version directory, e.g. models/dagnostics-slm-v1.0")
    deploy.add_argument(
        "--model-name",
        help="Ollama name of the version, NAME or NAME:TAG (default: the alias's name, tagged vMAJOR.MINOR)",
    )
    deploy.add_argument(
        "--auto-build",
        choices=_BOOLEAN,
        default="true",
        help="deploy to the server (true) or only write the bundle and print the `ollama create` command (false)",
    )
    deploy.add_argument(
        "--quantize",
        type=ollama_quantize,
        help="quantization Ollama applies on create: f32, f16, bf16, q8_0, q4_K_S or q4_K_M (default: none)",
    )
    deploy.add_argument(
        "--convert-script",
        help="llama.cpp convert_hf_to_gguf.py to export GGUF with (default: [dagnostics] llama_cpp_convert_script, "
        "else the pinned converter, fetched once)",
    )
    deploy.add_argument(
        "--import-format",
        choices=("gguf", "safetensors"),
        help="upload one GGUF file (works on every Ollama version) or the safetensors folder for Ollama's own "
        "import (some architectures, by server version) (default: [dagnostics] deploy_import_format)",
    )
    deploy.add_argument(
        "--promote",
        choices=_BOOLEAN,
        default="true",
        help="make the version the analyzer's model once verified (default: true; false for A/B tests)",
    )
    _connection_options(deploy)
    deploy.set_defaults(handler=_deploy_ollama)

    rollback = verbs.add_parser(
        "rollback",
        help="serve the previous production model again (or --to VERSION)",
        description=(
            "Copy an earlier version's tag, still on the Ollama server, back to the alias the analyzer uses, after "
            "a smoke analysis, and make that version production in the registry."
        ),
    )
    rollback.add_argument("--to", metavar="VERSION", help="version to return to (default: the previous production one)")
    _connection_options(rollback)
    rollback.set_defaults(handler=_rollback)
