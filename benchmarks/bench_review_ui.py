"""Benchmark of the review UI on a big store: 100 000 analyses, the queue page and the stats endpoint.

    python benchmarks/bench_review_ui.py [--analyses 100000] [--requests 60]

Fills a SQLite store with bulk inserts (failed tries, analyses, about a third of them reviewed), then requests
the review queue page (newest first, lowest confidence first, unreviewed only, grouped by fingerprint), a review
page and the JSON stats endpoint through the Flask test client of the real view, and reports p50/p95 latency.
The baseline, measured in the same run on the same store, is a bare ``SELECT count(*) FROM analyses``; a second
reference reads 50 whole rows through an index, the least a page of the queue has to fetch.  Ratios are p50 over
the baseline's p50.  Authentication is the tests' stand-in auth manager (a real api-server adds its JWT check and
one user lookup).  Writes benchmarks/results/review_ui.json; exits 1 if a queue page's p95 misses 300 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="dagnostics-bench-home-"))

import pytest  # noqa: E402  (its MonkeyPatch installs the tests' stand-in auth manager)
from sqlalchemy import insert, text  # noqa: E402

from dagnostics_provider.analysis.schema import CATEGORIES, SEVERITIES  # noqa: E402
from dagnostics_provider.store.engine import dispose_engines, get_engine  # noqa: E402
from dagnostics_provider.store.migrate import upgrade  # noqa: E402
from dagnostics_provider.store.models import Analysis, FailedTask, Review, ReviewEvent  # noqa: E402
from tests.ui.fake_auth import FakeAuthManager, build_app  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "review_ui.json"
TARGET_QUEUE_P95_MS = 300.0
BATCH = 5_000

_ERRORS = (
    ("psycopg2.OperationalError", 'connection to server at "db-{n}.internal" ({ip}), port 5432 failed: timeout'),
    ("botocore.exceptions.ClientError", "An error occurred (AccessDenied) when calling the PutObject operation"),
    ("MemoryError", "Unable to allocate {n} MiB for an array with shape ({n}, 1024)"),
    ("KeyError", "'customer_id' not found in record {n}"),
    ("airflow.exceptions.AirflowTaskTimeout", "Timeout, PID: {n}"),
    ("FileNotFoundError", "[Errno 2] No such file or directory: '/data/in/{n}.csv'"),
)


def _log_excerpt(rng: random.Random, error: str) -> str:
    lines = [
        f"[2026-01-0{rng.randint(1, 9)}T10:{i:02d}:00] INFO - batch {rng.randint(1, 999)} loaded" for i in range(8)
    ]
    lines += ["Traceback (most recent call last):", '  File "/opt/airflow/dags/etl.py", line 42, in load', error]
    return "\n".join(lines)


def fill_store(url: str, analyses: int, seed: int = 11) -> dict[str, int]:
    """Bulk-insert ``analyses`` analyses over ~95% as many failed tries; about a third of the tries get reviews."""
    rng = random.Random(seed)
    failures = int(analyses * 0.95)
    now = datetime.now(timezone.utc)
    engine = get_engine(url)
    counts = {"failed_tasks": failures, "analyses": 0, "reviews": 0}
    with engine.begin() as conn:
        for start in range(0, failures, BATCH):
            failure_rows, analysis_rows, review_rows, event_rows = [], [], [], []
            for n in range(start + 1, min(start + BATCH, failures) + 1):
                kind = rng.randrange(len(_ERRORS))
                error_type, template = _ERRORS[kind]
                error = f"{error_type}: {template.format(n=n, ip=f'10.0.{n % 255}.{n % 7}')}"
                failed_at = now - timedelta(minutes=rng.randint(0, 365 * 24 * 60))
                failure_rows.append(
                    {
                        "id": n,
                        "dag_id": f"dag_{n % 200:03d}",
                        "task_id": f"task_{n % 7}",
                        "run_id": f"scheduled__{failed_at:%Y-%m-%dT%H:%M:%S}+00:00",
                        "map_index": -1,
                        "try_number": 1 + n % 3,
                        "task_state": "failed",
                        "marked_by_user": False,
                        "failed_at": failed_at,
                        "error_type": error_type,
                        "error_text": error,
                        "log_excerpt": _log_excerpt(rng, error),
                        "fingerprint": f"{(kind * 397 + n % 331):064x}",
                        "status": "analyzed",
                        "created_at": failed_at,
                        "updated_at": failed_at,
                    }
                )
                for version in range(2 if n % 19 == 0 else 1):  # ~5% re-analysed: 100 000 analyses in all
                    counts["analyses"] += 1
                    analysis_rows.append(
                        {
                            "id": counts["analyses"],
                            "failed_task_id": n,
                            "analyzer": "ollama" if version or n % 4 else "heuristic",
                            "model": f"dagnostics-slm-v1.{version}" if version or n % 4 else None,
                            "prompt_version": "dagnostics-v1",
                            "error_message": error,
                            "category": CATEGORIES[kind % len(CATEGORIES)],
                            "severity": SEVERITIES[n % len(SEVERITIES)],
                            "confidence": round(rng.random(), 3),
                            "reasoning": "Generated for the benchmark.",
                            "error_lines": [error],
                            "suggested_actions": ["Retry"],
                            "created_at": failed_at,
                        }
                    )
                if n % 3 == 0:
                    counts["reviews"] += 1
                    rating = rng.randint(1, 5)
                    review_rows.append(
                        {
                            "id": counts["reviews"],
                            "failed_task_id": n,
                            "analysis_id": counts["analyses"],
                            "reviewer": f"engineer{n % 12}",
                            "error_message": error,
                            "category": CATEGORIES[(kind + (n % 5 == 0)) % len(CATEGORIES)],
                            "severity": SEVERITIES[n % len(SEVERITIES)],
                            "confidence": 0.9,
                            "reasoning": "",
                            "error_lines": [error],
                            "suggested_actions": [],
                            "rating": rating,
                            "accepted_as_is": n % 5 != 0,
                            "created_at": failed_at + timedelta(hours=1),
                        }
                    )
                    event_rows.append(
                        {
                            "failed_task_id": n,
                            "review_id": counts["reviews"],
                            "actor": f"engineer{n % 12}",
                            "event": "submitted",
                            "payload": {"rating": rating},
                            "created_at": failed_at + timedelta(hours=1),
                        }
                    )
            conn.execute(insert(FailedTask.__table__), failure_rows)
            conn.execute(insert(Analysis.__table__), analysis_rows)
            if review_rows:
                conn.execute(insert(Review.__table__), review_rows)
                conn.execute(insert(ReviewEvent.__table__), event_rows)
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
    return counts


def _percentiles(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    return {
        "p50_ms": round(statistics.median(ordered), 2),
        "p95_ms": round(ordered[max(0, round(0.95 * len(ordered)) - 1)], 2),
        "max_ms": round(ordered[-1], 2),
    }


def _measure(call: Callable[[], object], requests: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(requests):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--analyses", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=60)
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="dagnostics-bench-review-ui-"))
    url = f"sqlite:///{workdir / 'dagnostics.db'}"
    os.environ["AIRFLOW__DAGNOSTICS__SQL_ALCHEMY_CONN"] = url
    upgrade(url)
    started = time.perf_counter()
    counts = fill_store(url, args.analyses)
    fill_seconds = time.perf_counter() - started
    print(f"store: {counts} in {fill_seconds:.1f} s ({workdir})")

    patches = pytest.MonkeyPatch()
    FakeAuthManager({"bench": {"GET", "PUT"}}).install(patches)
    client = build_app().test_client()
    client.set_cookie("_token", "token-bench")
    engine = get_engine(url)

    def count_analyses() -> None:
        with engine.connect() as conn:
            conn.execute(text("SELECT count(*) FROM analyses")).scalar()

    def read_page() -> None:
        with engine.connect() as conn:
            conn.execute(text("SELECT * FROM failed_tasks ORDER BY failed_at DESC LIMIT 50")).all()

    pages = {
        "queue (newest)": "/dagnostics/",
        "queue (lowest confidence)": "/dagnostics/?sort=confidence",
        "queue (unreviewed)": "/dagnostics/?status=unreviewed",
        "queue (grouped by fingerprint)": "/dagnostics/?group=fingerprint",
        "review page": "/dagnostics/review/4242",
        "stats endpoint": "/dagnostics/api/feedback/stats",
    }
    baseline_name = "baseline: SELECT count(*)"
    results: dict[str, dict[str, float]] = {
        baseline_name: _percentiles(_measure(count_analyses, args.requests)),
        "reference: 50 rows by an index": _percentiles(_measure(read_page, args.requests)),
    }

    def get(path: str) -> Callable[[], object]:
        def call() -> object:
            response = client.get(path)
            assert response.status_code == 200, (path, response.status_code)
            return response

        return call

    for name, path in pages.items():
        results[name] = _percentiles(_measure(get(path), args.requests))
    base = results[baseline_name]["p50_ms"]
    print(f"\n{'request':34} {'p50 ms':>9} {'p95 ms':>9} {'max ms':>9} {'p50 / baseline':>15}")
    for name, numbers in results.items():
        ratio = numbers["p50_ms"] / base if base else float("nan")
        numbers["ratio_vs_baseline_p50"] = round(ratio, 1)
        print(f"{name:34} {numbers['p50_ms']:9.1f} {numbers['p95_ms']:9.1f} {numbers['max_ms']:9.1f} {ratio:14.1f}x")
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue_p95 = max(v["p95_ms"] for k, v in results.items() if k.startswith("queue"))
    print(f"\npeak memory {peak_mib:.0f} MiB; worst queue p95 {queue_p95:.1f} ms (target < {TARGET_QUEUE_P95_MS:.0f})")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "store": counts,
                "fill_seconds": round(fill_seconds, 1),
                "requests_per_measurement": args.requests,
                "latency": results,
                "worst_queue_p95_ms": queue_p95,
                "target_queue_p95_ms": TARGET_QUEUE_P95_MS,
                "peak_rss_mib": round(peak_mib),
                "python": platform.python_version(),
                "machine": platform.machine(),
                "cpus": os.cpu_count(),
            },
            indent=2,
        )
    )
    print(f"results: {RESULTS}")
    patches.undo()
    dispose_engines()
    shutil.rmtree(workdir, ignore_errors=True)
    return 0 if queue_p95 < TARGET_QUEUE_P95_MS else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
