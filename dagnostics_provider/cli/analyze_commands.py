"""``dagnostics analyze`` (a failed try in this Airflow) and ``dagnostics analyze-log`` (a log file or stdin)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from typing import BinaryIO

from dagnostics_provider.analysis.llm import PROVIDERS

CHUNK_BYTES = 1 << 20


def _analyzer(provider: str | None):
    from dagnostics_provider.analysis.llm import build_llm_analyzer

    return build_llm_analyzer(provider)


def _print(analysis, output_format: str, out) -> None:
    result = analysis.outcome.result
    if output_format == "json":
        payload = result.model_dump()
        payload["fingerprint"] = analysis.fingerprint
        payload["analyzer"] = analysis.outcome.analyzer
        print(json.dumps(payload, ensure_ascii=False), file=out)
        return
    outcome = analysis.outcome
    by = outcome.analyzer + (f" ({outcome.model})" if outcome.model else "")
    lines = [
        f"Root cause:  {result.error_message}",
        f"Category:    {result.category}",
        f"Severity:    {result.severity}",
        f"Confidence:  {result.confidence:.2f}",
        f"Analyzer:    {by}",
    ]
    if outcome.fallback_reason:
        lines.append(f"Fallback:    {outcome.fallback_reason}")
    lines.append(f"Fingerprint: {analysis.fingerprint}")
    if result.reasoning:
        lines += ["", "Reasoning:", f"  {result.reasoning}"]
    if result.error_lines:
        lines += ["", "Error lines:", *(f"  {line}" for line in result.error_lines)]
    if result.suggested_actions:
        lines += ["", "Suggested actions:", *(f"  - {action}" for action in result.suggested_actions)]
    print("\n".join(lines), file=out)


def _read_chunks(stream: BinaryIO) -> Iterator[bytes]:
    while chunk := stream.read(CHUNK_BYTES):
        yield chunk


def _analyze_log(args: argparse.Namespace) -> int:
    from dagnostics_provider.analysis.service import analyze_log
    from dagnostics_provider.cli.main import UserError

    if args.path in (None, "-"):
        analysis = analyze_log(_read_chunks(sys.stdin.buffer), _analyzer(args.llm))
    else:
        try:
            with open(args.path, "rb") as stream:
                analysis = analyze_log(_read_chunks(stream), _analyzer(args.llm))
        except OSError as exc:
            raise UserError(f"cannot read {args.path}: {exc.strerror or exc}") from None
    _print(analysis, args.format, args.out)
    return 0


def _analyze(args: argparse.Namespace) -> int:
    from dagnostics_provider.analysis.service import analyze_failure
    from dagnostics_provider.cli.common import require_migrated_store
    from dagnostics_provider.store import failures

    require_migrated_store()
    existing = failures.find_failure(args.dag_id, args.task_id, args.run_id, args.try_number, args.map_index)
    if existing is not None:
        failure_id = existing.id
    else:
        # A failure the listener did not see (installed later, or a try from before): record it now.
        failure_id = failures.record_failure(
            failures.FailureRecord(
                dag_id=args.dag_id,
                task_id=args.task_id,
                run_id=args.run_id,
                map_index=args.map_index,
                try_number=args.try_number,
            )
        )
    _, analysis = analyze_failure(failure_id, _analyzer(args.llm))
    _print(analysis, args.format, args.out)
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--llm", choices=PROVIDERS, default=None, help="analyzer (default: [dagnostics] llm_provider)")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format (default: text)")


def register(groups: argparse._SubParsersAction) -> None:
    analyze = groups.add_parser(
        "analyze",
        help="analyse one failed try of a task in this Airflow and store the analysis",
        description="Fetch the try's log (REST API or local log folder), analyse it and store the analysis.",
    )
    analyze.add_argument("dag_id")
    analyze.add_argument("task_id")
    analyze.add_argument("run_id")
    analyze.add_argument("try_number", type=_positive_int)
    analyze.add_argument("--map-index", type=int, default=-1, help="map index of a mapped task (default: -1)")
    _common(analyze)
    analyze.set_defaults(handler=_analyze)

    analyze_log = groups.add_parser(
        "analyze-log",
        help="analyse a log file (or stdin); stores nothing",
        description="Analyse a task log given as a file or on stdin (Airflow 2 text or Airflow 3 JSON lines).",
    )
    analyze_log.add_argument("path", nargs="?", default="-", help="log file, or - for stdin (default)")
    _common(analyze_log)
    analyze_log.set_defaults(handler=_analyze_log)
