"""Benchmark of dataset generation: 100 000 reviews in a SQLite store → train/validation JSONL.

    python benchmarks/bench_dataset.py [--reviews 100000] [--small 20000]

Fills a SQLite store with bulk inserts (failed tries with realistic log contexts of 1-2 KB, one analysis each,
reviews with resubmissions, second reviewers, conflicts, low ratings and repeats of the same failure), then times
``generate_dataset`` end to end: selection, split, local files, content hash, copy into the artifact folder and
registration.  The baseline, measured in the same run on the same store, streams the same joined rows out of the
database and ``json.dumps`` each to a file: the least any exporter has to do, so the ratio is what selection,
validation, rendering and the split cost on top.

Memory is measured twice: tracemalloc's peak during a build (Python allocations only), and the growth of the
process's ru_maxrss.  A second, smaller store (``--small``) shows how the peak grows with the store: the spool
keeps rows on disk, so only a few bytes per example (split index, duplicate digests) stay in memory.
Writes benchmarks/results/dataset.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import sys
import tempfile
import time
import tracemalloc
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="dagnostics-bench-home-"))

from sqlalchemy import insert, select  # noqa: E402

from dagnostics_provider.analysis.schema import Category, Severity  # noqa: E402
from dagnostics_provider.store.engine import dispose_engines, get_engine  # noqa: E402
from dagnostics_provider.store.migrate import upgrade  # noqa: E402
from dagnostics_provider.store.models import Analysis, FailedTask, FailureStatus, Review  # noqa: E402
from dagnostics_provider.training.dataset import DatasetOptions, generate_dataset  # noqa: E402
from dagnostics_provider.training.selection import COLUMNS  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "dataset.json"
BATCH = 5_000
FINGERPRINTS = 4_000
REVIEWERS = tuple(f"engineer{i}" for i in range(12))
RATINGS = (1, 2, 3, 4, 5)
RATING_WEIGHTS = (5, 10, 25, 35, 25)

_SCENARIOS = (
    (Category.dependency_failure, Severity.high, "psycopg2.OperationalError: could not connect to server: {host}"),
    (Category.permission_error, Severity.high, "botocore.exceptions.ClientError: AccessDenied on s3://lake/{n}/"),
    (Category.resource_error, Severity.critical, "MemoryError: Unable to allocate {n} MiB for an array"),
    (Category.timeout_error, Severity.medium, "airflow.exceptions.AirflowTaskTimeout: Timeout, PID: {n}"),
    (Category.data_quality, Severity.medium, "ValueError: {n} rows failed the not-null check on orders.customer_id"),
    (Category.configuration_error, Severity.high, "AirflowNotFoundException: The conn_id `db_{n}` isn't defined"),
    (Category.unknown, Severity.low, "RuntimeError: job {n} ended with status UNKNOWN"),
)


def _context(rng: random.Random, error: str, minute: int) -> str:
    lines = [
        f"[2026-11-02T03:{minute % 60:02d}:{s:02d}] INFO - Processing batch {rng.randint(1, 9999)} of 120: "
        f"{rng.randint(1, 10**6)} rows from s3://lake/raw/orders/dt=2026-11-02/part-{rng.randint(0, 999):05d}.parquet"
        for s in range(6)
    ]
    lines += [
        f"[2026-11-02T03:{minute % 60:02d}:59] ERROR - Task failed with exception",
        "Traceback (most recent call last):",
        '  File "/opt/airflow/dags/etl_orders.py", line 88, in load',
        "    cursor.execute(statement)",
        '  File "/usr/local/lib/python3.11/site-packages/psycopg2/extras.py", line 146, in execute',
        "    return super().execute(query, vars)",
        error,
    ]
    return "\n".join(lines)


def fill_store(url: str, reviews: int, seed: int = 7) -> dict[str, int]:
    """Bulk-insert ``reviews`` reviews: 80% first reviews, 10% resubmissions, 10% second reviewers."""
    rng = random.Random(seed)
    failures = reviews * 8 // 10
    engine = get_engine(url)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    with engine.begin() as conn:
        for first in range(1, failures + 1, BATCH):
            batch = range(first, min(first + BATCH, failures + 1))
            failure_rows, analysis_rows = [], []
            for i in batch:
                group = rng.randrange(FINGERPRINTS)
                category, severity, template = _SCENARIOS[group % len(_SCENARIOS)]
                error = template.format(n=group, host=f"wh-{group}.internal")
                at = start + timedelta(seconds=37 * i)
                failure_rows.append(
                    {
                        "id": i,
                        "dag_id": f"dag_{group % 150}",
                        "task_id": f"task_{group % 11}",
                        "run_id": f"scheduled__{at.isoformat()}",
                        "map_index": -1,
                        "try_number": 1,
                        "task_state": "failed",
                        "marked_by_user": False,
                        "failed_at": at,
                        "log_excerpt": _context(rng, error, i),
                        "fingerprint": f"{group:064x}",
                        "status": FailureStatus.ignored if i % 500 == 0 else FailureStatus.analyzed,
                        "created_at": at,
                        "updated_at": at,
                    }
                )
                analysis_rows.append(
                    {
                        "id": i,
                        "failed_task_id": i,
                        "analyzer": "ollama",
                        "model": "llama3.2:3b",
                        "prompt_version": "dagnostics-v1",
                        "error_message": error,
                        "category": category if rng.random() < 0.7 else Category.unknown,
                        "severity": severity,
                        "confidence": round(rng.uniform(0.3, 0.95), 2),
                        "reasoning": "The traceback ends in this error.",
                        "error_lines": [error],
                        "suggested_actions": ["Check the failing system", "Re-run the task"],
                        "created_at": at,
                    }
                )
            conn.execute(insert(FailedTask), failure_rows)
            conn.execute(insert(Analysis), analysis_rows)
        review_rows = []
        for review_id in range(1, reviews + 1):
            if review_id <= failures:
                failure, reviewer = review_id, REVIEWERS[review_id % len(REVIEWERS)]
            else:  # a resubmission by the same reviewer, or a second reviewer
                failure = rng.randint(1, failures)
                same = review_id % 2 == 0
                reviewer = REVIEWERS[(failure + (0 if same else 1)) % len(REVIEWERS)]
            category, severity, template = _SCENARIOS[failure % len(_SCENARIOS)]
            accepted = rng.random() < 0.4
            review_rows.append(
                {
                    "id": review_id,
                    "failed_task_id": failure,
                    "analysis_id": failure,
                    "reviewer": reviewer,
                    "error_message": template.format(n=failure % FINGERPRINTS, host="wh.internal"),
                    "category": category if accepted or rng.random() < 0.9 else Category.unknown,
                    "severity": severity,
                    "confidence": None if accepted else round(rng.uniform(0.7, 1.0), 2),
                    "reasoning": "Checked against the log.",
                    "error_lines": [template.format(n=failure % FINGERPRINTS, host="wh.internal")],
                    "suggested_actions": ["Fix the root cause", "Re-run the task"],
                    "rating": rng.choices(RATINGS, RATING_WEIGHTS)[0],
                    "comment": None,
                    "accepted_as_is": accepted,
                    "created_at": start + timedelta(seconds=41 * review_id),
                }
            )
            if len(review_rows) == BATCH:
                conn.execute(insert(Review), review_rows)
                review_rows.clear()
        if review_rows:
            conn.execute(insert(Review), review_rows)
    return {"failures": failures, "reviews": reviews}


def baseline(url: str, path: Path) -> int:
    """Stream the joined rows out of the store in id order and json.dumps each one: the floor of any export."""
    query = (
        select(*COLUMNS)
        .join(FailedTask, FailedTask.id == Review.failed_task_id)
        .join(Analysis, Analysis.id == Review.analysis_id)
        .order_by(Review.id)
    )
    count = 0
    with get_engine(url).connect() as conn, path.open("w", encoding="utf-8") as out:
        for row in conn.execution_options(yield_per=2_000).execute(query):
            out.write(json.dumps(list(row), default=str, ensure_ascii=False) + "\n")
            count += 1
    return count


def max_rss_mb() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return usage / (1 << 20) if platform.system() == "Darwin" else usage / 1024


def traced_peak_mb(url: str, output: Path, seed: int) -> float:
    tracemalloc.start()
    generate_dataset(output, DatasetOptions(seed=seed), url=url)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return round(peak / (1 << 20), 2)


def run(reviews: int, small: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="dagnostics-bench-dataset-") as tmp:
        work = Path(tmp)
        url, small_url = f"sqlite:///{work / 'big.db'}", f"sqlite:///{work / 'small.db'}"
        for store, size in ((url, reviews), (small_url, small)):
            upgrade(store)
            started = time.perf_counter()
            fill_store(store, size)
            print(f"filled a store with {size} reviews in {time.perf_counter() - started:.1f} s", flush=True)

        rss_before = max_rss_mb()
        started = time.perf_counter()
        result = generate_dataset(work / "out", DatasetOptions(), url=url)
        seconds = time.perf_counter() - started
        rss_after = max_rss_mb()
        info = json.loads(Path(result.info_path).read_text())

        started = time.perf_counter()
        baseline_rows = baseline(url, work / "baseline.jsonl")
        baseline_seconds = time.perf_counter() - started

        # Another seed splits differently: a new version, so the traced run does all the work the timed one did.
        peak = traced_peak_mb(url, work / "traced", seed=1)
        small_peak = traced_peak_mb(small_url, work / "traced-small", seed=1)
        dataset_bytes = sum(Path(p).stat().st_size for p in (result.train_path, result.validation_path))
        dispose_engines()

    examples = result.train_count + result.validation_count
    return {
        "reviews": reviews,
        "examples": examples,
        "train": result.train_count,
        "validation": result.validation_count,
        "selection": info["selection"],
        "dataset_mb": round(dataset_bytes / 1e6, 1),
        "seconds": round(seconds, 2),
        "reviews_per_s": round(reviews / seconds),
        "examples_per_s": round(examples / seconds),
        "baseline_rows": baseline_rows,
        "baseline_seconds": round(baseline_seconds, 2),
        "cost_vs_baseline": round(seconds / baseline_seconds, 1),
        "tracemalloc_peak_mb": peak,
        "rss_delta_mb": round(rss_after - rss_before, 1),
        "small_store_reviews": small,
        "small_store_tracemalloc_peak_mb": small_peak,
        "peak_bytes_per_extra_review": round((peak - small_peak) * (1 << 20) / (reviews - small)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reviews", type=int, default=100_000, help="reviews in the big store (default 100000)")
    parser.add_argument("--small", type=int, default=20_000, help="reviews in the small store (default 20000)")
    args = parser.parse_args()

    results = {"python": platform.python_version(), "machine": platform.machine(), **run(args.reviews, args.small)}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")

    rows = [
        ("reviews in the store", results["reviews"]),
        ("examples (train / validation)", f"{results['examples']} ({results['train']} / {results['validation']})"),
        ("dataset size", f"{results['dataset_mb']} MB"),
        ("generate_dataset", f"{results['seconds']} s ({results['reviews_per_s']} reviews/s)"),
        ("baseline stream + json.dumps", f"{results['baseline_seconds']} s"),
        ("cost vs baseline", f"{results['cost_vs_baseline']}x"),
        ("tracemalloc peak", f"{results['tracemalloc_peak_mb']} MB"),
        (
            f"tracemalloc peak, {results['small_store_reviews']} reviews",
            f"{results['small_store_tracemalloc_peak_mb']} MB",
        ),
        ("peak growth per review", f"{results['peak_bytes_per_extra_review']} bytes"),
        ("ru_maxrss delta", f"{results['rss_delta_mb']} MB"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(f"\nResults: {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
