"""Build failures, analyses and reviews in a real store, with the variety real feedback has.

Scenarios cover every category; repeats of a failure share its fingerprint but not its log context (timestamps
and ids differ), as in production.  Helpers return ids so tests can state exactly which review should win.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from dagnostics_provider.analysis.schema import Category, Severity
from dagnostics_provider.store.engine import session_scope
from dagnostics_provider.store.models import Analysis, FailedTask, FailureStatus, Review

BASE_TIME = datetime(2026, 11, 2, 3, 0, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Scenario:
    dag_id: str
    task_id: str
    category: str
    severity: str
    error: str
    context: str  # {n} differs for every failure (variant and repeat)


SCENARIOS = (
    Scenario(
        "etl_orders",
        "load_orders",
        "dependency_failure",
        "high",
        "psycopg2.OperationalError: could not connect to server: Connection refused",
        "[2026-11-02T03:{n:02d}:14] INFO - Loading batch {n} into analytics.orders\n"
        "[2026-11-02T03:{n:02d}:15] ERROR - psycopg2.OperationalError: could not connect to server: "
        'Connection refused\n\tIs the server running on host "wh-{n}.internal" and accepting TCP/IP connections?',
    ),
    Scenario(
        "s3_export",
        "upload_report",
        "permission_error",
        "high",
        "botocore.exceptions.ClientError: An error occurred (AccessDenied) when calling the PutObject operation",
        "[2026-11-02T04:{n:02d}:01] INFO - Uploading report_{n}.csv to s3://reports/daily/\n"
        "[2026-11-02T04:{n:02d}:02] ERROR - botocore.exceptions.ClientError: An error occurred (AccessDenied) "
        "when calling the PutObject operation: Access Denied",
    ),
    Scenario(
        "ml_features",
        "build_features",
        "resource_error",
        "critical",
        "Task exited with return code -9 (SIGKILL): the worker ran out of memory",
        "[2026-11-02T05:{n:02d}:40] INFO - Joining 48000000 rows with features_v{n}\n"
        "[2026-11-02T05:{n:02d}:59] ERROR - Process terminated by signal SIGKILL (-9): out of memory\n"
        "[2026-11-02T05:{n:02d}:59] INFO - Task exited with return code -9",
    ),
    Scenario(
        "crm_sync",
        "pull_contacts",
        "timeout_error",
        "medium",
        "airflow.exceptions.AirflowTaskTimeout: Timeout, PID: 4242",
        "[2026-11-02T06:{n:02d}:00] INFO - GET https://crm.example.com/api/contacts?page={n}\n"
        "[2026-11-02T06:{n:02d}:30] ERROR - airflow.exceptions.AirflowTaskTimeout: Timeout, PID: 4242",
    ),
    Scenario(
        "etl_orders",
        "validate_orders",
        "data_quality",
        "medium",
        "ValueError: 37 rows failed the not-null check on orders.customer_id",
        "[2026-11-02T07:{n:02d}:12] INFO - Running 12 checks on orders (partition {n})\n"
        "[2026-11-02T07:{n:02d}:13] ERROR - ValueError: 37 rows failed the not-null check on orders.customer_id",
    ),
    Scenario(
        "finance_close",
        "extract_ledger",
        "configuration_error",
        "high",
        "airflow.exceptions.AirflowNotFoundException: The conn_id `ledger_db` isn't defined",
        "[2026-11-02T08:{n:02d}:05] INFO - Extracting ledger for period {n}\n"
        "[2026-11-02T08:{n:02d}:05] ERROR - airflow.exceptions.AirflowNotFoundException: The conn_id `ledger_db` "
        "isn't defined",
    ),
    Scenario(
        "legacy_batch",
        "run_job",
        "unknown",
        "low",
        "RuntimeError: job 17 ended with status UNKNOWN",
        "[2026-11-02T09:{n:02d}:44] INFO - Polling job {n}\n"
        "[2026-11-02T09:{n:02d}:45] ERROR - RuntimeError: job 17 ended with status UNKNOWN — naïve retry refused",
    ),
)


def fingerprint_of(scenario: Scenario, variant: int = 0) -> str:
    return hashlib.sha256(f"{scenario.error}|{variant}".encode()).hexdigest()


class StoreFactory:
    """Adds rows to one store; every failure gets a unique run id so repeats never collide."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._runs = 0

    def failure(
        self,
        scenario: Scenario = SCENARIOS[0],
        *,
        variant: int = 0,
        repeat: int = 0,
        context: str | None = None,
        status: FailureStatus = FailureStatus.analyzed,
        ai_category: str | None = None,
        ai_confidence: float = 0.62,
    ) -> tuple[int, int]:
        """A failed try with one AI analysis; returns (failed_task_id, analysis_id)."""
        self._runs += 1
        failed_at = BASE_TIME + timedelta(minutes=self._runs)
        with session_scope(self.url) as session:
            failure = FailedTask(
                dag_id=scenario.dag_id,
                task_id=scenario.task_id,
                run_id=f"scheduled__{failed_at.isoformat()}",
                try_number=1,
                failed_at=failed_at,
                log_excerpt=scenario.context.format(n=variant * 10 + repeat) if context is None else context,
                fingerprint=fingerprint_of(scenario, variant),
                status=status,
            )
            analysis = Analysis(
                failed_task=failure,
                analyzer="ollama",
                model="llama3.2:3b",
                prompt_version="dagnostics-v1",
                error_message=scenario.error,
                category=Category(ai_category or scenario.category),
                severity=Severity(scenario.severity),
                confidence=ai_confidence,
                reasoning="The log shows the error right before the task failed.",
                error_lines=[scenario.error],
                suggested_actions=["Look at the failing system"],
            )
            session.add_all([failure, analysis])
            session.flush()
            return failure.id, analysis.id

    def review(
        self,
        ids: tuple[int, int],
        scenario: Scenario = SCENARIOS[0],
        *,
        reviewer: str = "alice",
        rating: int = 4,
        accepted: bool = False,
        error_message: str | None = None,
        category: str | None = None,
        confidence: float | None = 0.9,
    ) -> int:
        failed_task_id, analysis_id = ids
        with session_scope(self.url) as session:
            review = Review(
                failed_task_id=failed_task_id,
                analysis_id=analysis_id,
                reviewer=reviewer,
                error_message=error_message or scenario.error,
                category=Category(category or scenario.category),
                severity=Severity(scenario.severity),
                confidence=confidence,
                reasoning=f"Checked by {reviewer}: the root cause is the {scenario.category.replace('_', ' ')}.",
                error_lines=[scenario.error],
                suggested_actions=[f"Fix the {scenario.task_id} dependency", "Re-run the task"],
                rating=rating,
                comment=None,
                accepted_as_is=accepted,
            )
            session.add(review)
            session.flush()
            return review.id

    def reviewed_failures(self, groups: int, *, repeats: int = 3, rating: int = 4) -> list[int]:
        """``groups`` distinct failures (cycling through the scenarios), each repeated 1..``repeats`` times and
        reviewed once per repeat; every third review accepts the analysis as is. Returns the review ids."""
        review_ids = []
        for group in range(groups):
            scenario = SCENARIOS[group % len(SCENARIOS)]
            for repeat in range(1 + group % repeats):
                ids = self.failure(scenario, variant=group, repeat=repeat)
                reviewer = ("alice", "bob", "chen")[(group + repeat) % 3]
                review_ids.append(
                    self.review(ids, scenario, reviewer=reviewer, rating=rating, accepted=len(review_ids) % 3 == 2)
                )
        return review_ids
