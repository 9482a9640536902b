"""`make bench`: run every ``benchmarks/bench_*.py`` (but the learning benchmark) in its own process and list results.

Each benchmark prints its own table (a ratio against a baseline measured in the same run, plus peak memory) and
writes JSON under ``benchmarks/results/``. Separate processes keep one benchmark's memory peak out of the next.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Hours on a 2-core machine: only when named (`make bench-learning`, or `python benchmarks/run_all.py bench_learning`).
ON_REQUEST = {"bench_learning"}


def main(argv: list[str]) -> int:
    selected = set(argv)
    failures = []
    for script in sorted(HERE.glob("bench_*.py")):
        if (selected and script.stem not in selected) or (not selected and script.stem in ON_REQUEST):
            continue
        print(f"\n=== {script.stem} ===", flush=True)
        started = time.perf_counter()
        if subprocess.run([sys.executable, str(script)], cwd=HERE.parent).returncode != 0:
            failures.append(script.stem)
        print(f"--- {script.stem}: {time.perf_counter() - started:.1f} s", flush=True)
    print(f"\nResults: {HERE / 'results'}")
    if failures:
        print(f"FAILED: {', '.join(failures)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
