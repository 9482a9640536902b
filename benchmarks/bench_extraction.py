"""Benchmark of root-cause extraction: throughput and memory on 100 MB logs (accuracy: bench_accuracy.py).

    python benchmarks/bench_extraction.py [--size-mb 100]

Two generated logs of the given size are scanned: Airflow 2 text and Airflow 3 JSON lines, each with its failure
near the end.  Prints a small table and writes benchmarks/results/extraction.json.  Throughput is compared with a
baseline measured in the same run on the same file: reading it in chunks and decoding it line by line, which is the
least a parser that looks at every line has to do, so the ratio says what the extraction costs next to that.  Peak
memory (tracemalloc) is measured on a 10 MB log and on the full-size one: extraction keeps bounded state, so the two
should be about the same.
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
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dagnostics_provider.analysis.extraction import extract  # noqa: E402
from dagnostics_provider.analysis.rules import load_rules  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "extraction.json"
CHUNK_BYTES = 1 << 20
MAX_CONTEXT_CHARS = 6_000
EXPECTED_ROOT_CAUSE = 'relation "analytics.daily_orders" does not exist'
SMALL_MB = 10

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


def _noise(size_bytes: int, seed: int, render: Callable[[int, bool, str], str]) -> Iterator[str]:
    """Blocks of ordinary task output (one warning every 250 lines) rendered by ``render(n, warning, message)``,
    about ``size_bytes`` in all; the generators add their failure after it."""
    rng = random.Random(seed)
    written, n = 0, 0
    while written < size_bytes:
        block = []
        for _ in range(5_000):
            n += 1
            warning = n % 250 == 0
            message = rng.choice(_WARNING if warning else _INFO).format(
                n=n, m=rng.randint(100, 9_000), r=rng.randint(1, 10**6), t=rng.random() * 10, p=n % 60
            )
            block.append(render(n, warning, message))
        text = "".join(block)
        written += len(text.encode())
        yield text


def generate_log(path: Path, size_bytes: int, seed: int = 7) -> int:
    """Write a realistic Airflow 2 task log of about ``size_bytes`` with the failure near the end."""

    def render(n: int, warning: bool, message: str) -> str:
        stamp = f"[2024-05-02, {10 + n // 360_000 % 2}:{n // 6_000 % 60:02d}:{n // 100 % 60:02d} UTC] "
        return f"{stamp}{{subprocess.py:93}} {'WARNING' if warning else 'INFO'} - {message}\n"

    with path.open("w", encoding="utf-8") as out:
        for text in _noise(size_bytes, seed, render):
            out.write(text)
        out.write(_FAILURE.format(expected=EXPECTED_ROOT_CAUSE))
    return path.stat().st_size


_JSON_LOGGERS = (
    "airflow.task.hooks.airflow.providers.standard.hooks.subprocess.SubprocessHook",
    "task.stdout",
    "airflow.task.operators.airflow.providers.standard.operators.bash.BashOperator",
)
_BASH_FRAMES = [
    ("/home/airflow/.local/lib/python3.12/site-packages/airflow/sdk/execution_time/task_runner.py", 875, "run"),
    ("/home/airflow/.local/lib/python3.12/site-packages/airflow/sdk/execution_time/task_runner.py", 1162, "_execute"),
    ("/home/airflow/.local/lib/python3.12/site-packages/airflow/sdk/bases/operator.py", 397, "wrapper"),
    ("/home/airflow/.local/lib/python3.12/site-packages/airflow/providers/standard/operators/bash.py", 233, "execute"),
]


def _json_line(n: int, level: str, event: str, logger: str, **extra: object) -> str:
    timestamp = f"2025-05-02T{10 + n // 360_000 % 2}:{n // 6_000 % 60:02d}:{n // 100 % 60:02d}.{n * 7919 % 10**6:06d}Z"
    record = {"timestamp": timestamp, "level": level, "event": event, **extra, "logger": logger}
    return json.dumps(record, separators=(",", ":")) + "\n"


def generate_json_log(path: Path, size_bytes: int, seed: int = 7) -> int:
    """Write a realistic Airflow 3 structured (JSON lines) task log of about ``size_bytes``, failing near the end.

    The records are what Airflow 3's task runner writes: ``timestamp``, ``level``, ``event``, ``logger`` (and
    ``chan`` for the supervisor's own lines); the command's output arrives as ``info`` records of the subprocess
    hook, and the failure as an ``error`` record whose ``error_detail`` holds the exception chain.
    """
    lines = 0

    def render(n: int, warning: bool, message: str) -> str:
        nonlocal lines
        lines = n
        return _json_line(n, "warning" if warning else "info", message, _JSON_LOGGERS[n % 7 == 0])

    with path.open("w", encoding="utf-8") as out:
        for text in _noise(size_bytes, seed, render):
            out.write(text)
        n = lines
        hook, operator = _JSON_LOGGERS[0], _JSON_LOGGERS[2]
        detail = [
            {
                "exc_type": "AirflowException",
                "exc_value": "Bash command failed. The command returned a non-zero exit code 1.",
                "exc_notes": [],
                "syntax_error": None,
                "is_cause": False,
                "frames": [{"filename": f, "lineno": line, "name": name} for f, line, name in _BASH_FRAMES],
                "is_group": False,
                "exceptions": [],
            }
        ]
        tail = "".join(
            [
                _json_line(n + 1, "info", f"psycopg2.errors.UndefinedTable: {EXPECTED_ROOT_CAUSE}", hook),
                _json_line(n + 2, "info", "LINE 1: INSERT INTO analytics.daily_orders SELECT * FROM stg", hook),
                _json_line(n + 3, "info", "Command exited with return code 1", hook),
                _json_line(n + 4, "error", "Task failed with exception", "task", error_detail=detail),
                _json_line(n + 5, "info", "Task instance in failure state", "task", chan="stdout"),
                _json_line(n + 6, "info", "Failure caused by Bash command failed.", operator, chan="stdout"),
            ]
        )
        out.write(tail)
    return path.stat().st_size


GENERATORS = {"airflow2_text": generate_log, "airflow3_json": generate_json_log}


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


def peak_memory_mb(path: Path, rules) -> float:
    tracemalloc.start()
    try:
        extract(chunks(path), rules=rules, max_context_chars=MAX_CONTEXT_CHARS)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return round(peak / (1 << 20), 2)


def large_log(kind: str, size_mb: int) -> dict:
    rules = load_rules()
    generate = GENERATORS[kind]
    with tempfile.TemporaryDirectory(prefix="dagnostics-bench-") as tmp:
        small_path = Path(tmp) / "small.log"
        generate(small_path, SMALL_MB * 1_000_000)
        small_peak = peak_memory_mb(small_path, rules)
        small_path.unlink()

        path = Path(tmp) / "task.log"
        size = generate(path, size_mb * 1_000_000)
        mb = size / 1_000_000

        rss_before = max_rss_mb()
        extraction, seconds = timed(lambda: extract(chunks(path), rules=rules, max_context_chars=MAX_CONTEXT_CHARS))
        rss_after_extraction = max_rss_mb()
        lines, baseline_seconds = timed(baseline, path)
        rss_after = max_rss_mb()
        peak = peak_memory_mb(path, rules)

    root = extraction.root_cause.text if extraction.root_cause else None
    return {
        "size_mb": round(mb, 1),
        "lines": lines,
        "root_cause_found": root is not None and EXPECTED_ROOT_CAUSE in root,
        "extraction_seconds": round(seconds, 2),
        "extraction_mb_per_s": round(mb / seconds, 2),
        "baseline_seconds": round(baseline_seconds, 2),
        "baseline_mb_per_s": round(mb / baseline_seconds, 2),
        "cost_vs_baseline": round(seconds / baseline_seconds, 2),
        "tracemalloc_peak_mb": peak,
        f"tracemalloc_peak_mb_at_{SMALL_MB}_mb": small_peak,
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
        "large_logs": {kind: large_log(kind, args.size_mb) for kind in GENERATORS},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")

    rows: list[tuple[str, object]] = []
    for kind, big in results["large_logs"].items():
        rows += [
            (f"{kind} {big['size_mb']} MB: root cause found", big["root_cause_found"]),
            (f"{kind} extraction throughput", f"{big['extraction_mb_per_s']} MB/s ({big['extraction_seconds']} s)"),
            (f"{kind} baseline read+decode", f"{big['baseline_mb_per_s']} MB/s ({big['baseline_seconds']} s)"),
            (f"{kind} cost vs baseline", f"{big['cost_vs_baseline']}x"),
            (
                f"{kind} tracemalloc peak",
                f"{big[f'tracemalloc_peak_mb_at_{SMALL_MB}_mb']} MB at {SMALL_MB} MB, "
                f"{big['tracemalloc_peak_mb']} MB at {big['size_mb']} MB",
            ),
            (f"{kind} ru_maxrss delta", f"{big['extraction_rss_delta_mb']} MB"),
        ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    for kind, big in results["large_logs"].items():
        print(
            f"\n{kind}: {big['extraction_mb_per_s']} MB/s, {big['cost_vs_baseline']}x the read+decode baseline "
            f"({big['baseline_mb_per_s']} MB/s), peak {big['tracemalloc_peak_mb']} MB (tracemalloc)."
        )
    print(f"Results: {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
