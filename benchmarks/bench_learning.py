"""The learning benchmark: does fine-tuning on reviewed real failures diagnose held-out failures better?

    python benchmarks/bench_learning.py [--base smollm2-135m] [--epochs 3] [--max-length 2048] [--heldout-limit N]
                                        [--work DIR] [--schema-constrained] [--engine transformers|llamacpp]
                                        [--evaluate-only [--model-dir DIR]]

From the dev split of the real-failure corpus (tests/real_corpus) through the path a team's data takes: every log
is analysed by the heuristic analyzer and stored, reviewed from its label as an engineer would (accepted when
right, corrected otherwise: see benchmarks/learning_data.py), a dataset is generated from the reviews with the
project's ``generate_dataset``, the base is fine-tuned with the project's trainer on a CPU (``make train-cpu``'s
recipe: batch 1 with accumulation 4, activation checkpointing, bf16, LoRA dropout 0), and the project's
evaluation answers every held-out log with the base model and the fine-tuned one.  The heuristic analyzer answers
the same held-out logs.  Every analyzer is judged by the same metrics (schema-valid rate, category accuracy and
macro-F1, severity, error_lines F1) plus the accuracy benchmark's root-cause rule (the answer's error_message
contains the labelled root-cause line), with seconds per analysis.

``--schema-constrained`` has both models answer under the analysis schema's llama.cpp grammar, as Ollama and the
``llamacpp`` analyzer serve them; ``--engine llamacpp`` has them answer from their f16 GGUF exports in llama.cpp,
as served (several times faster on a CPU than transformers); ``--evaluate-only`` evaluates the version a previous
run left in --work (or the one ``--model-dir`` names, e.g. the version ``make train-cpu`` trained on the same dev
split) instead of training again.  Writes benchmarks/results/learning.json and the fine-tuned version folder (with
evaluation_predictions.jsonl) under --work.  Downloads nothing but the packaged base from the package index (once).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import learning_data  # noqa: E402  (a sibling module of this script)

RESULTS = ROOT / "benchmarks" / "results" / "learning.json"
FIELDS = (
    ("schema_valid_rate", "schema-valid"),
    ("root_cause_top1", "root cause"),
    ("category_accuracy", "category"),
    ("category_macro_f1", "cat. macro-F1"),
    ("severity_accuracy", "severity"),
    ("error_lines_f1", "lines F1"),
    ("seconds_per_analysis", "s/analysis"),
)


def _root_cause_rate(answers: list[str], logs: list[learning_data.LabelledLog]) -> float:
    from dagnostics_provider.training import metrics

    hits = 0
    for answer, log in zip(answers, logs, strict=True):
        judged = metrics.judge(answer).result
        hits += bool(judged and learning_data.names_root_cause(judged.error_message, log.label))
    return hits / len(logs) if logs else 0.0


def heuristic_scores(logs: list[learning_data.LabelledLog]) -> dict[str, Any]:
    from dagnostics_provider.analysis.heuristic import analyze_heuristically
    from dagnostics_provider.training import metrics

    started = time.perf_counter()
    answers = [analyze_heuristically(log.extraction).to_json() for log in logs]
    elapsed = time.perf_counter() - started
    scores = metrics.compute_metrics(answers, [learning_data.reference_analysis(log) for log in logs])
    scores["root_cause_top1"] = _root_cause_rate(answers, logs)
    scores["seconds_per_analysis"] = elapsed / len(logs)
    return scores


def _model_answers(predictions: Path, model: str) -> dict[str, str]:
    answers = {}
    for line in predictions.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if model in row:
            answers[row["id"]] = row[model]["answer"]
    return answers


def model_scores(evaluation: dict[str, Any], predictions: Path, logs: list[learning_data.LabelledLog]) -> dict:
    scores = {}
    for model in ("base", "fine_tuned"):
        if not evaluation.get(model):
            continue
        answers = _model_answers(predictions, model)
        entry = dict(evaluation[model])
        entry["root_cause_top1"] = _root_cause_rate([answers[log.id] for log in logs], logs)
        entry["seconds_per_analysis"] = entry["generation_s"] / max(1, entry["examples"])
        scores[model] = entry
    return scores


def table(results: dict[str, dict[str, Any]]) -> str:
    header = f"{'':14}" + "".join(f"{label:>14}" for _, label in FIELDS)
    lines = [header]
    for name, scores in results.items():
        cells = []
        for key, _ in FIELDS:
            value = scores.get(key)
            cells.append(f"{value:>14.3f}" if isinstance(value, (int, float)) else f"{'-':>14}")
        lines.append(f"{name:14}" + "".join(cells))
    return "\n".join(lines)


def main() -> None:
    from dagnostics_provider.training import evaluation, layout, trainer

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="smollm2-135m", help="base model (default: the packaged SmolLM2-135M)")
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--batch-size", type=int, default=1, help="examples per step; accumulation makes it 4")
    parser.add_argument("--max-length", type=int, default=2048)
    parser.add_argument("--learning-rate", type=float, default=2e-4)
    parser.add_argument("--heldout-limit", type=int, help="evaluate on the first N held-out logs only (a quick run)")
    parser.add_argument("--eval-batch-size", type=int, default=4)
    parser.add_argument("--work", type=Path, default=ROOT / ".demo" / "bench-learning")
    parser.add_argument("--schema-constrained", action="store_true", help="answer under the schema grammar")
    parser.add_argument(
        "--engine",
        choices=layout.ENGINES,
        default=layout.TRANSFORMERS,
        help="where the models answer: the trained weights, or their f16 GGUF exports in llama.cpp as served",
    )
    parser.add_argument("--evaluate-only", action="store_true", help="evaluate a trained version, do not train")
    parser.add_argument("--model-dir", type=Path, help="the version --evaluate-only evaluates (default: --work/model)")
    args = parser.parse_args()

    from dagnostics_provider.store.migrate import upgrade
    from dagnostics_provider.training.dataset import DatasetOptions, generate_dataset
    from dagnostics_provider.training.layout import PREDICTIONS_FILE

    args.work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("AIRFLOW__DAGNOSTICS__ARTIFACT_ROOT", str(args.work / "artifacts"))
    started = time.monotonic()
    dev, heldout = learning_data.load_split("dev"), learning_data.load_split("heldout")
    if args.heldout_limit:
        heldout = heldout[: args.heldout_limit]
    references = learning_data.write_reference_rows(heldout, args.work / "heldout.jsonl")
    version_dir = args.model_dir if args.evaluate_only and args.model_dir else args.work / "model"
    if args.evaluate_only:
        info = evaluation.read_training_info(version_dir)
        dataset_info = info.get("dataset", {})
        training = {"reused": str(version_dir), **{k: info["training"].get(k) for k in ("best_eval_loss", "steps")}}
        print(f"evaluating {version_dir} (trained before) on {len(heldout)} held-out logs", flush=True)
    else:
        store = args.work / "store.db"
        store.unlink(missing_ok=True)
        url = f"sqlite:///{store}"
        upgrade(url)
        learning_data.store_reviewed(dev, url)
        dataset = generate_dataset(args.work / "datasets", DatasetOptions(min_examples=10), url=url)
        dataset_info = {
            "version": dataset.version,
            "train": dataset.train_count,
            "validation": dataset.validation_count,
        }
        print(f"dataset {dataset.version}: {dataset.train_count} train, {dataset.validation_count} validation rows "
              f"from {len(dev)} dev logs; {len(heldout)} held-out logs", flush=True)  # fmt: skip
        params = trainer.TrainingParams(
            model_name=args.base,
            epochs=args.epochs,
            batch_size=args.batch_size,
            gradient_accumulation_steps=max(1, 4 // args.batch_size),
            max_length=args.max_length,
            learning_rate=args.learning_rate,
            force_cpu=True,
            cpu_activation_checkpointing=True,
            cpu_bf16=True,
            lora_dropout=0.0,
        )
        trained_at = time.monotonic()
        result = trainer.train(params, dataset.train_path, dataset.validation_path, version_dir)
        training = {
            "train_s": round(time.monotonic() - trained_at, 1),
            "best_eval_loss": result.info["training"]["best_eval_loss"],
            "steps": result.info["training"]["steps"],
            "parameters": {k: v for k, v in result.info["parameters"].items() if k != "fingerprint"},
        }
    evaluation_results = evaluation.evaluate_version(
        version_dir,
        references,
        batch_size=args.eval_batch_size,
        schema_constrained=args.schema_constrained,
        engine=args.engine,
    )
    results = {
        "heuristic": heuristic_scores(heldout),
        **model_scores(evaluation_results, version_dir / PREDICTIONS_FILE, heldout),
    }
    report = {
        "command": " ".join(["python", *sys.argv]),
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count()},
        "base": args.base,
        "dataset": dataset_info,
        "heldout_logs": len(heldout),
        "schema_constrained": args.schema_constrained,
        "engine": args.engine,
        "training": training,
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "total_s": round(time.monotonic() - started, 1),
        "results": results,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    print(table(results))
    print(f"training {training.get('train_s', 'reused')} s, peak RSS {report['peak_rss_gb']} GB, "
          f"total {report['total_s']:.0f} s; {RESULTS.relative_to(ROOT)}")  # fmt: skip


if __name__ == "__main__":
    main()
