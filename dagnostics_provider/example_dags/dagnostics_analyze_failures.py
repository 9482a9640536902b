"""Analyse every failed task that the DAGnostics listener recorded, within seconds of the failure.

Scheduled on the asset :data:`~dagnostics_provider.assets.NEW_FAILURES`, whose watcher in Airflow's triggerer
fires when a failure starts waiting for analysis, **or** every five minutes: the periodic run is the safety net for
an installation without a running triggerer (then diagnoses arrive as they did before, within five minutes).
No overlap (``max_active_runs=1``): events that arrive during a run are folded into one more run, and analysing
is idempotent, so a run that finds nothing pending finishes at once.  Failures stay queued until analysed.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from dagnostics_provider.assets import NEW_FAILURES
from dagnostics_provider.compat import AssetOrTimeSchedule, CronTriggerTimetable
from dagnostics_provider.operators.analyze import AnalyzeFailuresOperator

with DAG(
    dag_id="dagnostics_analyze_failures",
    description="DAGnostics: analyse recorded task failures with the LLM (heuristic fallback) as they happen",
    start_date=datetime(2026, 1, 1),
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("*/5 * * * *", timezone="UTC"), assets=[NEW_FAILURES]),
    catchup=False,
    max_active_runs=1,
    is_paused_upon_creation=False,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=1)},
    dagrun_timeout=timedelta(minutes=30),
    tags=["dagnostics"],
) as dag:
    AnalyzeFailuresOperator(task_id="analyze_failures")
