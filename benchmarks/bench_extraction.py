"""Benchmark of root-cause extraction: accuracy on the labelled corpus, throughput and memory on a 100 MB log.

    python benchmarks/bench_extraction.py [--size-mb 100]

Prints a small table and writes benchmarks/results/extraction.json.  Throughput is compared with a baseline
measured in the same run on the same file: reading it in chunks and decoding it line by line, which is the least
any log parser has to do, so the ratio says what the extraction itself costs.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import resource
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dagnostics_provider.analysis.extraction import extract  # noqa: E402
from dagnostics_provider.analysis.heuristic import analyze_heuristically  # noqa: E402
from dagnostics_provider.analysis.rules import load_rules  # noqa: E402

CORPUS = ROOT / "tests" / "corpus"
RESULTS = ROOT / "benchmarks" / "results" / "extraction.json"
CHUNK_BYTES = 1 << 20
MAX_CONTEXT_CHARS = 6_000
EXPECTED_ROOT_CAUSE = 'relation "analytics.daily_orders" does not exist'

_INFO = (
    "Processing batch {n} of {m}: {r} rows from s3://lake/raw/orders/dt=2024-05-02/part-{n:05d}.parquet",
    "Loaded {r} rows into staging.orders in {t:.2f}s",
    "HTTP GET https://api.example.com/v1/items?page={n} -> 200 ({t:.3f}s)",
    "Checkpoint written: offset={r} partition={p}",
    "Memory usage: {m} MB, cpu {t:.1f}%",
    "12:{p:02d}:{p:02d}  {p} of 120 OK created sql table model analytics.stg_orders_{p} ... [SELECT {r} in {t:.2f}s]",
)
_WARNING = (
    "Connection reset while reading batch {n}, retrying in 5s (attempt 1/3)",
    "Slow query detected: {t:.1f}s for batch {n}",
    "GET https://api.example.com/v1/items?page={n} failed: 503 Server Error: Service Unavailable, retrying in 5s",
    "/opt/airflow/dags/etl.py:88: FutureWarning: Setting an item of incompatible dtype is deprecated",
)
_FAILURE = """\
[2024-05-02, 11:59:58 UTC] {{subprocess.py:93}} INFO - psycopg2.errors.UndefinedTable: {expected}
[2024-05-02, 11:59:58 UTC] {{subprocess.py:93}} INFO - LINE 1: INSERT INTO analytics.daily_orders SELECT * FROM stg
[2024-05-02, 11:59:58 UTC] {{subprocess.py:97}} INFO - Command exited with return code 1
[2024-05-02, 11:59:59 UTC] {{taskinstance.py:2698}} ERROR - Task failed with exception
Traceback (most recent call last):
  File "/home/airflow/.local/lib/python3.11/site-packages/airflow/operators/bash.py", line 243, in execute
    raise AirflowException(
airflow.exceptions.AirflowException: Bash command failed. The command returned a non-zero exit code 1.
[2024-05-02, 11:59:59 UTC] {{taskinstance.py:1138}} INFO - Marking task as FAILED. dag_id=etl, task_id=load
"""


def generate_log(path: Path, size_bytes: int, seed: int = 7) -> int:
    """Write a realistic Airflow 2 task log of about ``size_bytes`` with the failure near the end."""
    rng = random.Random(seed)
    written, n = 0, 0
    with path.open("w", encoding="utf-8") as out:
        while written < size_bytes:
            block = []
            for _ in range(5_000):
                n += 1
                level, messages = ("WARNING", _WARNING) if n % 250 == 0 else ("INFO", _INFO)
                message = rng.choice(messages).format(
                    n=n, m=rng.randint(100, 9_000), r=rng.randint(1, 10**6), t=rng.random() * 10, p=n % 60
                )
                block.append(f"[2024-05-02, {10 + n // 360_000 % 2}:{n // 6_000 % 60:02d}:{n // 100 % 60:02d} UTC] ")
                block.append(f"{{subprocess.py:93}} {level} - {message}\n")
            text = "".join(block)
            out.write(text)
            written += len(text.encode())
        tail = _FAILURE.format(expected=EXPECTED_ROOT_CAUSE)
        out.write(tail)
    return written + len(tail.encode())


def chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as log:
        while chunk := log.read(CHUNK_BYTES):
            yield chunk


def baseline(path: Path) -> int:
    """Read in chunks and decode line by line: the floor cost of looking at every line."""
    lines, pending = 0, b""
    for chunk in chunks(path):
        parts = (pending + chunk).split(b"\n")
        pending = parts.pop()
        for part in parts:
            part.decode("utf-8", "replace")
            lines += 1
    return lines + (1 if pending else 0)


def max_rss_mb() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return usage / (1 << 20) if platform.system() == "Darwin" else usage / 1024


def timed(function, *args):
    started = time.perf_counter()
    value = function(*args)
    return value, time.perf_counter() - started


def corpus_accuracy() -> dict:
    rules = load_rules()
    labels = json.loads((CORPUS / "labels.json").read_text(encoding="utf-8"))
    root_ok = category_ok = total_bytes = 0
    started = time.perf_counter()
    for label in labels:
        path = CORPUS / label["file"]
        total_bytes += path.stat().st_size
        extraction = extract(chunks(path), rules=rules, max_context_chars=MAX_CONTEXT_CHARS)
        text = extraction.root_cause.text if extraction.root_cause else ""
        root_ok += any(accepted in text for accepted in label["root_cause"])
        category_ok += analyze_heuristically(extraction).category == label["category"]
    elapsed = time.perf_counter() - started
    return {
        "logs": len(labels),
        "root_cause_top1_accuracy": round(root_ok / len(labels), 4),
        "category_accuracy": round(category_ok / len(labels), 4),
        "mean_ms_per_log": round(elapsed / len(labels) * 1000, 2),
        "bytes": total_bytes,
    }


def large_log(size_mb: int) -> dict:
    rules = load_rules()
    with tempfile.TemporaryDirectory(prefix="dagnostics-bench-") as tmp:
        path = Path(tmp) / "task.log"
        size = generate_log(path, size_mb * 1_000_000)
        mb = size / 1_000_000

        rss_before = max_rss_mb()
        extraction, seconds = timed(lambda: extract(chunks(path), rules=rules, max_context_chars=MAX_CONTEXT_CHARS))
        rss_after_extraction = max_rss_mb()
        lines, baseline_seconds = timed(baseline, path)
        rss_after = max_rss_mb()

        tracemalloc.start()
        extract(chunks(path), rules=rules, max_context_chars=MAX_CONTEXT_CHARS)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()

    root = extraction.root_cause.text if extraction.root_cause else None
    return {
        "size_mb": round(mb, 1),
        "lines": lines,
        "root_cause_found": root is not None and EXPECTED_ROOT_CAUSE in root,
        "extraction_seconds": round(seconds, 2),
        "extraction_mb_per_s": round(mb / seconds, 2),
        "baseline_seconds": round(baseline_seconds, 2),
        "baseline_mb_per_s": round(mb / baseline_seconds, 2),
        "cost_vs_baseline": round(seconds / baseline_seconds, 1),
        "tracemalloc_peak_mb": round(peak / (1 << 20), 2),
        # ru_maxrss is a high-water mark: the extraction runs first, the baseline's delta is what it adds on top.
        "extraction_rss_delta_mb": round(rss_after_extraction - rss_before, 1),
        "baseline_rss_delta_mb": round(rss_after - rss_after_extraction, 1),
        "context_chars": len(extraction.context),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=100, help="size of the generated log (default 100)")
    args = parser.parse_args()

    results = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "corpus": corpus_accuracy(),
        "large_log": large_log(args.size_mb),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")

    corpus, big = results["corpus"], results["large_log"]
    rows = [
        ("corpus logs", corpus["logs"]),
        ("root-cause top-1 accuracy", f"{corpus['root_cause_top1_accuracy']:.3f}"),
        ("category accuracy", f"{corpus['category_accuracy']:.3f}"),
        ("mean time per corpus log", f"{corpus['mean_ms_per_log']} ms"),
        (f"{big['size_mb']} MB log: root cause found", big["root_cause_found"]),
        ("extraction throughput", f"{big['extraction_mb_per_s']} MB/s ({big['extraction_seconds']} s)"),
        ("baseline read+decode", f"{big['baseline_mb_per_s']} MB/s ({big['baseline_seconds']} s)"),
        ("cost vs baseline", f"{big['cost_vs_baseline']}x"),
        ("tracemalloc peak", f"{big['tracemalloc_peak_mb']} MB"),
        ("ru_maxrss delta (extraction)", f"{big['extraction_rss_delta_mb']} MB"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(
        f"\nExtraction runs at {big['extraction_mb_per_s']} MB/s, {big['cost_vs_baseline']}x the raw read cost, "
        f"peak {big['tracemalloc_peak_mb']} MB (tracemalloc). Results: {RESULTS.relative_to(ROOT)}"
    )


if __name__ == "__main__":
    main()
