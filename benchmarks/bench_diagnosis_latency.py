"""Failure → stored diagnosis latency in the running demo: event-driven analysis against the five-minute schedule.

For each mode the benchmark starts the demo (``scripts/demo.sh``: api-server, scheduler, dag-processor and
triggerer on SQLite, LocalExecutor, heuristic analyses: ``DEMO_LLM=heuristic``), triggers ``--runs`` runs of
``dagnostics_demo_failures`` (seven real failures each) ``--spacing`` seconds apart, so the failures fall at
different points of the five-minute cycle, and waits until every one of them is analysed.  The latency of a failure
is its analysis' ``created_at`` minus its ``failed_at`` (the task's end, recorded by the listener), both from the
DAGnostics store.  Failures of the demo's own first run at start-up are left out: the analyze DAG's first
scheduled run coincides with them.

* ``event``: the analyze DAG as shipped, scheduled on the new-failures asset that the triggerer's
  ``NewFailuresTrigger`` watches (or every five minutes).
* ``schedule``: the same DAG as it was before, ``schedule=timedelta(minutes=5)``.

Prints p50/p95/max per mode and the ratio of their p95s, plus the peak RSS of the scheduler and triggerer
processes; writes ``benchmarks/results/diagnosis_latency.json`` and, where matplotlib is installed,
``docs/images/diagnosis-latency.png``.  About 15 minutes with the defaults (the schedule mode waits for a
five-minute cycle).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.airflow_env import free_port  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "diagnosis_latency.json"
PICTURE = ROOT / "docs" / "images" / "diagnosis-latency.png"
DEMO_DAG = "dagnostics_demo_failures"
FAILURES_PER_RUN = 7
# The analyze DAG as it was before the event-driven schedule (commit d353322): every five minutes.
SCHEDULED_ANALYZE_DAG = """
from datetime import datetime, timedelta

from airflow.sdk import DAG

from dagnostics_provider.operators.analyze import AnalyzeFailuresOperator

with DAG(
    dag_id="dagnostics_analyze_failures",
    start_date=datetime(2026, 1, 1),
    schedule=timedelta(minutes=5),
    catchup=False,
    max_active_runs=1,
    is_paused_upon_creation=False,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=1)},
    dagrun_timeout=timedelta(minutes=30),
    tags=["dagnostics"],
) as dag:
    AnalyzeFailuresOperator(task_id="analyze_failures")
"""


class Demo:
    """One ``scripts/demo.sh`` installation in a temporary directory, with its own ports and DAGs folder."""

    def __init__(self, workdir: Path, mode: str) -> None:
        self.dir = workdir / mode
        dags = self.dir / "dags"
        dags.mkdir(parents=True)
        (dags / f"{DEMO_DAG}.py").symlink_to(ROOT / "dags" / f"{DEMO_DAG}.py")
        analyze = dags / "dagnostics_analyze_failures.py"
        if mode == "event":
            analyze.symlink_to(ROOT / "dags" / "dagnostics_analyze_failures.py")
        else:
            analyze.write_text(SCHEDULED_ANALYZE_DAG)
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        self.env = {
            **inherited,
            "DEMO_DIR": str(self.dir / "demo"),
            "DEMO_PORT": str(free_port()),
            "DEMO_WORKER_LOG_PORT": str(free_port()),
            "DEMO_TRIGGER_LOG_PORT": str(free_port()),
            "DEMO_LLM": "heuristic",
            "DEMO_DAGS_FOLDER": str(dags),
            "VENV": str(Path(sys.executable).parent.parent),
        }
        self.banner = ""

    def _script(self, *args: str, timeout: float) -> str:
        done = subprocess.run(
            ["bash", str(ROOT / "scripts" / "demo.sh"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(f"demo.sh {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done.stdout

    def start(self) -> None:
        self.banner = self._script("start", timeout=600)
        self.url = re.search(r"Airflow UI:\s+(\S+)", self.banner).group(1).rstrip("/")
        user, password = re.search(r"Log in as:\s+(\S+) / (\S+)", self.banner).groups()
        token = requests.post(f"{self.url}/auth/token", json={"username": user, "password": password}, timeout=30)
        token.raise_for_status()
        self.headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        self.store_url = f"sqlite:///{self.dir / 'demo' / 'airflow_home' / 'dagnostics.db'}"

    def stop(self) -> None:
        self._script("stop", timeout=180)

    def wait_for_dag(self, dag_id: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if requests.get(f"{self.url}/api/v2/dags/{dag_id}", headers=self.headers, timeout=30).ok:
                return
            time.sleep(2)
        raise TimeoutError(f"{dag_id} was not parsed within {timeout} s")

    def trigger(self, dag_id: str) -> str:
        response = requests.post(
            f"{self.url}/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None}, headers=self.headers, timeout=30
        )
        response.raise_for_status()
        return response.json()["dag_run_id"]

    def peak_rss_mb(self, component: str) -> float | None:
        """The component's peak resident memory (VmHWM of its main process), while it still runs."""
        pid = (self.dir / "demo" / "pids" / f"{component}.pid").read_text().strip()
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return None
        match = re.search(r"VmHWM:\s+(\d+) kB", status)
        return int(match.group(1)) / 1024 if match else None


def _latencies(store_url: str, run_ids: set[str]) -> dict[str, float | None]:
    """Seconds from failure to its first stored analysis, per failed task of the given runs (None: not yet)."""
    from sqlalchemy import func, select

    from dagnostics_provider.store.engine import session_scope
    from dagnostics_provider.store.models import Analysis, FailedTask
    from dagnostics_provider.store.reviews.common import utc

    with session_scope(store_url) as session:
        first_analysis = (
            select(Analysis.failed_task_id, func.min(Analysis.created_at).label("analysed_at"))
            .group_by(Analysis.failed_task_id)
            .subquery()
        )
        rows = session.execute(
            select(FailedTask.run_id, FailedTask.task_id, FailedTask.failed_at, first_analysis.c.analysed_at)
            .outerjoin(first_analysis, first_analysis.c.failed_task_id == FailedTask.id)
            .where(FailedTask.dag_id == DEMO_DAG, FailedTask.run_id.in_(sorted(run_ids)))
        ).all()
    return {
        f"{run_id}/{task_id}": None if analysed is None else (utc(analysed) - utc(failed)).total_seconds()
        for run_id, task_id, failed, analysed in rows
    }


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = (len(ordered) - 1) * q
    low, high = int(index), min(int(index) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (index - low)


def measure(mode: str, workdir: Path, runs: int, spacing: float, timeout: float) -> dict:
    demo = Demo(workdir, mode)
    print(f"[{mode}] starting the demo (heuristic analyses) in {demo.dir}", flush=True)
    demo.start()
    try:
        demo.wait_for_dag(DEMO_DAG)
        demo.wait_for_dag("dagnostics_analyze_failures")
        run_ids: set[str] = set()
        for number in range(runs):
            if number:
                time.sleep(spacing)
            run_ids.add(demo.trigger(DEMO_DAG))
            print(f"[{mode}] triggered run {number + 1}/{runs} of {DEMO_DAG}", flush=True)
        expected = runs * FAILURES_PER_RUN
        deadline = time.monotonic() + timeout
        while True:
            latencies = _latencies(demo.store_url, run_ids)
            done = [v for v in latencies.values() if v is not None]
            print(f"[{mode}] {len(done)}/{expected} failures analysed", flush=True)
            if len(done) >= expected or time.monotonic() > deadline:
                break
            time.sleep(10)
        peak = {component: demo.peak_rss_mb(component) for component in ("scheduler", "triggerer")}
    finally:
        demo.stop()
    values = sorted(v for v in latencies.values() if v is not None)
    if not values:
        raise RuntimeError(f"[{mode}] no failure was analysed within {timeout} s")
    return {
        "mode": mode,
        "failures": len(latencies),
        "analysed": len(values),
        "p50_s": round(_percentile(values, 0.5), 1),
        "p95_s": round(_percentile(values, 0.95), 1),
        "max_s": round(values[-1], 1),
        "mean_s": round(statistics.fmean(values), 1),
        "latencies_s": [round(v, 2) for v in values],
        "peak_rss_mb": {k: None if v is None else round(v) for k, v in peak.items()},
    }


def _picture(results: list[dict]) -> bool:
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = {"event": "event-driven (new-failures trigger)", "schedule": "every 5 minutes (before)"}
    figure, axis = plt.subplots(figsize=(7.5, 3.6), dpi=120)
    for result in results:
        values = result["latencies_s"]
        share = [(i + 1) / len(values) for i in range(len(values))]
        axis.step(values, share, where="post", label=f"{labels[result['mode']]}: p95 {result['p95_s']:.0f} s")
    axis.axvline(60, color="grey", linestyle=":", linewidth=1)
    axis.text(61, 0.05, "60 s", color="grey")
    axis.set_xlabel("seconds from task failure to stored diagnosis")
    axis.set_ylabel("share of failures")
    axis.set_xlim(left=0)
    axis.set_ylim(0, 1.02)
    axis.grid(alpha=0.3)
    axis.legend(loc="lower right", fontsize=8)
    axis.set_title(f"Diagnosis latency in the demo ({results[0]['analysed']} failures per mode, heuristic analyses)")
    figure.tight_layout()
    PICTURE.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(PICTURE)
    return True


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of the demo DAG per mode (7 failures each)")
    parser.add_argument("--spacing", type=float, default=100.0, help="seconds between two triggered runs")
    parser.add_argument("--timeout", type=float, default=480.0, help="seconds to wait for the last analysis")
    parser.add_argument("--modes", default="event,schedule", help="comma-separated: event, schedule")
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="dagnostics-latency-") as workdir:
        for mode in args.modes.split(","):
            results.append(measure(mode.strip(), Path(workdir), args.runs, args.spacing, args.timeout))
    print(f"\n{'mode':<10} {'failures':>8} {'p50 s':>7} {'p95 s':>7} {'max s':>7}  peak RSS scheduler / triggerer")
    for r in results:
        rss = r["peak_rss_mb"]
        print(
            f"{r['mode']:<10} {r['analysed']:>4}/{r['failures']:<3} {r['p50_s']:>7.1f} {r['p95_s']:>7.1f} "
            f"{r['max_s']:>7.1f}  {rss['scheduler']} MB / {rss['triggerer']} MB"
        )
    by_mode = {r["mode"]: r for r in results}
    ratio = None
    if {"event", "schedule"} <= by_mode.keys() and by_mode["event"]["p95_s"]:
        ratio = round(by_mode["schedule"]["p95_s"] / by_mode["event"]["p95_s"], 1)
        print(f"p95 of the five-minute schedule / p95 event-driven: {ratio}x")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "command": "python benchmarks/bench_diagnosis_latency.py " + " ".join(argv),
                "cpus": os.cpu_count(),
                "p95_ratio_schedule_over_event": ratio,
                "results": results,
            },
            indent=2,
        )
    )
    if _picture(results):
        print(f"picture: {PICTURE}")
    print(f"results: {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
