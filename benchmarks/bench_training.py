"""Benchmark of LoRA training: the project's trainer against the original DAGnostics recipe, same model and data.

    python benchmarks/bench_training.py [--train 120] [--validation 30] [--epochs 2] [--hidden 64]

Both variants fine-tune the same tiny random Llama-style model (built on the fly, with a ChatML tokenizer) with the
same LoRA configuration, learning rate, batch size, epochs and seed, on the same synthetic dataset whose log
contexts have a long-tailed length distribution like real extractions (most short, a few near the bound):

- ``project``: :func:`dagnostics_provider.training.trainer.build_trainer`, i.e. TRL's SFTTrainer with the loss on
  the answer only, dynamic padding, length-grouped batches, per-epoch evaluation and checkpointing.
- ``baseline``: what the original trainer did: every row padded to the longest row of the dataset, labels equal
  to the input ids (loss on the prompt *and* on the padding), random batches, per-epoch evaluation.

Each variant runs in its own process, so ``ru_maxrss`` is that variant's peak resident memory. Throughput is
the dataset's real (non-padding) tokens times epochs over the wall time of ``trainer.train()``; both variants
see the same real tokens, so the ratio is the speed-up. Validation loss is then measured for both adapters the
same way: the project's evaluation on answer tokens only (what the model is for). Torch runs on one thread in
both, so that other work on the machine disturbs the two alike. Writes benchmarks/results/training.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "benchmarks" / "results" / "training.json"
MAX_NOISE_LINES = 50


def long_tailed_lines(rng: random.Random) -> int:
    """INFO lines before the traceback: exponential with mean 6, capped (contexts of ~0.4k to ~2k tokens)."""
    return min(MAX_NOISE_LINES, 1 + int(rng.expovariate(1 / 6)))


def _params(args: argparse.Namespace, model_dir: Path):
    from tests.training.tiny_models import quick_params

    return quick_params(
        model_dir,
        epochs=float(args.epochs),
        batch_size=args.batch_size,
        max_length=2048,
        learning_rate=args.learning_rate,
        logging_steps=10,
        seed=args.seed,
    )


def _project(args: argparse.Namespace, model_dir: Path, data: tuple[Path, Path], out: Path) -> Any:
    from dagnostics_provider.training.trainer import build_trainer

    return build_trainer(_params(args, model_dir), *data, out)[0]


def _baseline(args: argparse.Namespace, model_dir: Path, data: tuple[Path, Path], out: Path) -> Any:
    """The original recipe: pad every row to the dataset's longest, labels = input ids (prompt and padding)."""
    from datasets import Dataset
    from peft import get_peft_model
    from transformers import Trainer, TrainingArguments, default_data_collator

    from dagnostics_provider.training import model_loading, sft_data
    from dagnostics_provider.training.trainer import lora_config

    params = _params(args, model_dir)
    tokenizer = model_loading.load_tokenizer(str(model_dir))
    base = model_loading.resolve(str(model_dir))
    model = get_peft_model(
        model_loading.load_model(base, model_loading.decide_precision(False, force_cpu=True)),
        lora_config(params, "CAUSAL_LM"),
    )

    def texts(path: Path) -> list[str]:
        records = [
            sft_data.sft_record(e, "chat_template") for e in sft_data.read_examples(path.read_text().splitlines())
        ]
        return [tokenizer.apply_chat_template(r["prompt"] + r["completion"], tokenize=False) for r in records]

    train_texts, validation_texts = texts(data[0]), texts(data[1])
    longest = max(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in train_texts + validation_texts)

    def padded(batch: list[str]) -> Dataset:
        encoded = tokenizer(batch, padding="max_length", max_length=longest, add_special_tokens=False)
        return Dataset.from_dict({**encoded, "labels": [list(ids) for ids in encoded["input_ids"]]})

    training_args = TrainingArguments(
        output_dir=str(out),
        num_train_epochs=params.epochs,
        learning_rate=params.learning_rate,
        per_device_train_batch_size=params.batch_size,
        per_device_eval_batch_size=params.batch_size,
        eval_strategy="epoch",
        save_strategy="no",
        logging_steps=params.logging_steps,
        seed=params.seed,
        data_seed=params.seed,
        use_cpu=True,
        report_to="none",
        disable_tqdm=True,
    )
    return Trainer(
        model=model,
        args=training_args,
        train_dataset=padded(train_texts),
        eval_dataset=padded(validation_texts),
        data_collator=default_data_collator,
    )


def run_variant(args: argparse.Namespace) -> dict[str, Any]:
    """Train one variant in this process and report its timing, memory and saved adapter."""
    import torch

    from dagnostics_provider.training.progress import quiet_progress_bars

    torch.set_num_threads(1)
    quiet_progress_bars()
    workdir = Path(args.workdir)
    data = (workdir / "data" / "train_dataset.jsonl", workdir / "data" / "validation_dataset.jsonl")
    out = workdir / args.variant
    build = _project if args.variant == "project" else _baseline
    trainer = build(args, workdir / "model", data, out)
    trainer.args.include_num_input_tokens_seen = "all"  # every position the model computes, padding included
    real = sum(sum(row.get("attention_mask") or [1] * len(row["input_ids"])) for row in trainer.train_dataset)
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    trainer.model.save_pretrained(out / "adapter")
    return {
        "variant": args.variant,
        "train_seconds": round(seconds, 2),
        "steps": trainer.state.global_step,
        "real_tokens_per_epoch": int(real),
        "processed_tokens_per_epoch": int(trainer.state.num_input_tokens_seen / args.epochs),
        "tokens_per_second": round(real * args.epochs / seconds, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "adapter": str(out / "adapter"),
    }


def completion_loss(args: argparse.Namespace, workdir: Path, adapter: str) -> float:
    """Validation loss on answer tokens only, with the project's evaluation, for any adapter of this config."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    from dagnostics_provider.training.trainer import build_trainer

    data = (workdir / "data" / "train_dataset.jsonl", workdir / "data" / "validation_dataset.jsonl")
    trainer, _ = build_trainer(_params(args, workdir / "model"), *data, workdir / "scoring")
    set_peft_model_state_dict(trainer.model, load_file(str(Path(adapter) / "adapter_model.safetensors")))
    return round(trainer.evaluate()["eval_loss"], 4)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=int, default=120, help="training examples (default: 120)")
    parser.add_argument("--validation", type=int, default=30, help="validation examples (default: 30)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs (default: 2)")
    parser.add_argument("--batch-size", type=int, default=8, help="batch size (default: 8)")
    parser.add_argument("--learning-rate", type=float, default=2e-3, help="learning rate (default: 2e-3)")
    parser.add_argument("--hidden", type=int, default=64, help="hidden size of the tiny model (default: 64)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--variant", choices=("project", "baseline"), help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.variant:  # a child process: train one variant and print its JSON
        print(json.dumps(run_variant(args)))
        return 0

    import torch

    from dagnostics_provider.training.progress import quiet_progress_bars
    from tests.training import tiny_models

    torch.set_num_threads(1)
    quiet_progress_bars()
    with tempfile.TemporaryDirectory(prefix="dagnostics-bench-training-") as tmp:
        workdir = Path(tmp)
        tiny_models.llama(workdir / "model", hidden=args.hidden, max_positions=4096)
        tiny_models.write_dataset(workdir / "data", args.train, args.validation, args.seed, long_tailed_lines)
        runs = {}
        for variant in ("baseline", "project"):
            command = [sys.executable, __file__, *argv, "--variant", variant, "--workdir", str(workdir)]
            done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                print(done.stderr[-4000:], file=sys.stderr)
                return 1
            runs[variant] = json.loads(done.stdout.strip().splitlines()[-1])
            runs[variant]["validation_loss_on_answer_tokens"] = completion_loss(args, workdir, runs[variant]["adapter"])
            del runs[variant]["adapter"]

    project, baseline = runs["project"], runs["baseline"]
    result = {
        "benchmark": "LoRA training throughput and validation loss: project trainer vs original recipe",
        "setup": {
            "model": f"tiny random Llama, hidden {args.hidden}, 2 layers, ChatML tokenizer",
            "train_examples": args.train,
            "validation_examples": args.validation,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "learning_rate": args.learning_rate,
            "lora": "r=16, alpha=32, dropout=0.1, all-linear",
            "context_lengths": "long-tailed: 1 + Exp(mean 6) INFO lines before the traceback, at most 50",
            "torch_threads": 1,
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}",
        },
        "baseline": baseline,
        "project": project,
        "speedup_tokens_per_second": round(project["tokens_per_second"] / baseline["tokens_per_second"], 2),
        "peak_rss_ratio": round(project["peak_rss_mb"] / baseline["peak_rss_mb"], 2),
        "validation_loss_not_worse": project["validation_loss_on_answer_tokens"]
        <= baseline["validation_loss_on_answer_tokens"],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'':<10} {'train s':>8} {'tokens/s':>9} {'peak RSS MB':>12} {'val loss (answer)':>18}")
    for name, run in (("baseline", baseline), ("project", project)):
        print(
            f"{name:<10} {run['train_seconds']:>8.1f} {run['tokens_per_second']:>9.0f} {run['peak_rss_mb']:>12.0f} "
            f"{run['validation_loss_on_answer_tokens']:>18.4f}"
        )
    print(
        f"speed-up {result['speedup_tokens_per_second']}x, peak memory ratio {result['peak_rss_ratio']}, "
        f"validation loss not worse: {result['validation_loss_not_worse']}"
    )
    print(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
