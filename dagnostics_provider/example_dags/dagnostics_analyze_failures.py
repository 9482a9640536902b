"""Analyse every failed task that the DAGnostics listener recorded.

Runs every five minutes with no overlap (``max_active_runs=1``); analysing is idempotent, so a run that finds
nothing pending finishes at once. Failures stay in the queue across runs until analysed.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from dagnostics_provider.operators.analyze import AnalyzeFailuresOperator

with DAG(
    dag_id="dagnostics_analyze_failures",
    description="DAGnostics: analyse recorded task failures with the LLM (heuristic fallback)",
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
