"""CPU training levers on the real base: peak RSS and tokens/s of LoRA on SmolLM2-135M, variant by variant.

    python benchmarks/bench_training_cpu.py [--variants bs1-trlhead,bs1-gc-bf16-trlhead,bs1-gc-bf16,...] [--steps 3]

Every variant fine-tunes the packaged SmolLM2-135M-Instruct (``smollm2-135m``, fetched from the package index and
converted once) with the project's trainer on the same rows: real failure logs of the corpus's dev split whose
log contexts fill ``max_length`` 2048 (the analyzer's 6,000-character context), answered by the heuristic
analyzer, ``steps`` optimizer steps of an effective batch of 4 examples.  Each variant runs in its own process, so
``ru_maxrss`` is its own peak; a variant the kernel kills for memory is reported as such.  Variants (combined with
"-"):

- ``default``: the trainer's settings before the CPU levers (batch 4, float32, no activation checkpointing);
- ``bs1``: batch 1 with gradient accumulation 4: no padding, so attention runs without a mask;
- ``gc``: activation checkpointing (recompute each layer's activations in the backward pass);
- ``bf16``: bfloat16 autocast for the matmuls (weights and adapter stay float32), where the CPU has bf16;
- ``trlhead``: TRL's own fused LM head, which on a CPU projects every position (the trainer's loss before
  ``answer_logits``, which projects the answer's positions only);
- ``nodrop``: LoRA dropout 0 instead of the guide's 0.1 (``--lora-dropout 0``).

Tokens/s counts the rows' real tokens over the wall time of ``trainer.train()``; the first steps' training loss
and the validation loss after them (4 held-back rows, computed alike for every variant: float32, token-weighted)
show that a variant learns the same.  Writes
benchmarks/results/training_cpu.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

RESULTS = ROOT / "benchmarks" / "results" / "training_cpu.json"
PICTURE = ROOT / "benchmarks" / "results" / "training_cpu.png"
RSS_TARGET_GB = 3.0  # the memory a 2048-token LoRA run on SmolLM2 should fit in on a CPU (issue 12)
MIN_CONTEXT_CHARS = 3_500  # contexts that fill max_length 2048 once the instruction is added
MAX_ANSWER_CHARS = 1_500


def _rows(count: int) -> list[dict]:
    import learning_data

    from dagnostics_provider import prompt_format
    from dagnostics_provider.analysis.heuristic import analyze_heuristically

    rows = []
    for log in learning_data.load_split("dev"):
        result = analyze_heuristically(log.extraction)
        if len(log.extraction.context) >= MIN_CONTEXT_CHARS and len(result.to_json()) <= MAX_ANSWER_CHARS:
            rows.append(prompt_format.training_example(log.extraction.context, result))
        if len(rows) == count:
            return rows
    raise SystemExit(f"only {len(rows)} dev logs fill the context; {count} needed")


def _float32_validation_loss(trainer) -> float:
    """Token-weighted answer loss on the validation rows, one row at a time in float32 for every variant.

    The trainer's own ``evaluate()`` would run under the variant's autocast and average per batch, so a bf16 or
    batch-4 variant would be judged by other arithmetic than the float32 batch-1 baseline.
    """
    import torch

    from dagnostics_provider.training.answer_logits import answer_loss

    model = trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False)
    model.eval()
    total = tokens = 0.0
    with torch.no_grad():
        for row in trainer.eval_dataset:
            mean, stats = answer_loss(model, trainer.data_collator([row]))
            total += mean.item() * stats["tokens"].item()
            tokens += stats["tokens"].item()
    return total / tokens


def run_variant(variant: str, steps: int, work: Path) -> dict:
    """One variant in this process (called in a child process by main)."""
    import torch
    from transformers import EarlyStoppingCallback
    from trl import SFTTrainer

    from dagnostics_provider.training import trainer as training
    from dagnostics_provider.training.base_models import packaged_base_folder

    levers = set(variant.split("-"))
    batch = 1 if "bs1" in levers else 4
    rows = _rows(4 * steps + 4)
    work.mkdir(parents=True, exist_ok=True)
    (work / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[: 4 * steps]))
    (work / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[4 * steps :]))
    params = training.TrainingParams(
        model_name=str(packaged_base_folder("smollm2-135m")),
        batch_size=batch,
        gradient_accumulation_steps=4 // batch,
        max_length=2048,
        epochs=1.0,
        logging_steps=1,
        force_cpu=True,
        cpu_activation_checkpointing="gc" in levers,
        cpu_bf16="bf16" in levers,
        lora_dropout=0.0 if "nodrop" in levers else training.TrainingParams.lora_dropout,
    )
    trainer, _ = training.build_trainer(params, work / "train.jsonl", work / "validation.jsonl", work / "out")
    if "trlhead" in levers:  # the loss as TRL computes it, for the baseline
        trainer.compute_loss = SFTTrainer.compute_loss.__get__(trainer)
    trainer.args.eval_strategy, trainer.args.save_strategy = "no", "no"
    trainer.args.load_best_model_at_end = False
    trainer.remove_callback(EarlyStoppingCallback)
    tokens = sum(len(row["input_ids"]) for row in trainer.train_dataset)
    torch.manual_seed(0)
    started = time.monotonic()
    trainer.train()
    elapsed = time.monotonic() - started
    validation_loss = _float32_validation_loss(trainer)
    return {
        "variant": variant,
        "tokens": tokens,
        "train_s": round(elapsed, 1),
        "tokens_per_s": round(tokens / elapsed, 1),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "training_loss": [round(h["loss"], 4) for h in trainer.state.log_history if "loss" in h],
        "validation_loss": round(validation_loss, 4),
    }


def picture(results: list[dict], path: Path = PICTURE) -> bool:
    """Tokens/s and peak RSS per variant, side by side (False without matplotlib)."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ran = [row for row in results if "tokens_per_s" in row]
    names = [row["variant"] for row in ran]
    figure, (speed, memory) = plt.subplots(1, 2, figsize=(9, 3.4), dpi=120, sharey=True)
    speed.barh(names, [row["tokens_per_s"] for row in ran], color="tab:blue")
    speed.set_xlabel("tokens/s (higher is better)")
    for y, row in enumerate(ran):
        speed.text(row["tokens_per_s"], y, f" {row['tokens_per_s']:.0f}", va="center", fontsize=8)
    memory.barh(names, [row["peak_rss_gb"] for row in ran], color="tab:orange")
    memory.axvline(RSS_TARGET_GB, color="grey", linestyle=":", linewidth=1)
    memory.set_xlabel(f"peak RSS, GB (dotted: {RSS_TARGET_GB:g} GB)")
    for y, row in enumerate(ran):
        memory.text(row["peak_rss_gb"], y, f" {row['peak_rss_gb']:.2f}", va="center", fontsize=8)
    speed.invert_yaxis()
    for axis in (speed, memory):
        axis.grid(axis="x", alpha=0.3)
        axis.margins(x=0.2)
    figure.suptitle("LoRA on SmolLM2-135M on a CPU: 2,048-token rows, effective batch 4", fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--variants", default="bs1-trlhead,bs1-gc-bf16-trlhead,bs1,bs1-gc-bf16,bs1-gc-bf16-nodrop,gc-bf16"
    )
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--work", type=Path, default=ROOT / ".demo" / "bench-training-cpu")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    # The packaged base is converted under the benchmark's own artifact root, not the user's AIRFLOW_HOME.
    os.environ.setdefault("AIRFLOW__DAGNOSTICS__ARTIFACT_ROOT", str(args.work / "artifacts"))
    if args.child:
        print(json.dumps(run_variant(args.child, args.steps, args.work / args.child)))
        return
    from dagnostics_provider.training.base_models import packaged_base_folder

    packaged_base_folder("smollm2-135m")  # fetch and convert once, outside the timed children
    results = []
    for variant in args.variants.split(","):
        command = [sys.executable, __file__, "--child", variant, "--steps", str(args.steps), "--work", str(args.work)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode == 0 and lines:
            results.append(json.loads(lines[-1]))
        else:
            killed = done.returncode in (-9, 137)
            results.append({"variant": variant, "failed": "killed (out of memory)" if killed else done.stderr[-500:]})
        print(json.dumps(results[-1]), flush=True)
    report = {
        "command": " ".join(["python", *sys.argv]),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "results": results,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    baseline = next((row for row in results if "tokens_per_s" in row), None)
    print(f"{'variant':22}{'tokens/s':>10}{'ratio':>7}{'peak RSS GB':>13}{'val loss':>10}  training loss")
    for row in results:
        if "failed" in row:
            print(f"{row['variant']:22}{'-':>10}{'-':>7}{'-':>13}{'-':>10}  {row['failed'][:60]}")
        else:
            ratio = row["tokens_per_s"] / baseline["tokens_per_s"]
            print(
                f"{row['variant']:22}{row['tokens_per_s']:>10}{ratio:>7.2f}{row['peak_rss_gb']:>13}"
                f"{row['validation_loss']:>10}  {row['training_loss']}"
            )
    print(f"(ratio: tokens/s against {baseline['variant'] if baseline else '-'}, the first variant that ran)")
    if picture(results):
        print(f"picture: {PICTURE}")


if __name__ == "__main__":
    main()
