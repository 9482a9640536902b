from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from dagnostics_provider.analysis.schema import Category, Severity
from dagnostics_provider.store.engine import session_scope
from dagnostics_provider.store.guards import ImmutableRowError
from dagnostics_provider.store.models import (
    Analysis,
    DatasetVersion,
    Deployment,
    DeploymentStatus,
    FailedTask,
    FailureStatus,
    ModelStatus,
    ModelVersion,
    Review,
    ReviewEvent,
)


def _failure(**overrides) -> FailedTask:
    values = dict(
        dag_id="etl_orders",
        task_id="load",
        run_id="scheduled__2026-11-24T00:00:00+00:00",
        map_index=-1,
        try_number=2,
        operator="PythonOperator",
        hostname="worker-1",
        start_date=datetime(2026, 11, 24, 0, 1, tzinfo=timezone.utc),
        end_date=datetime(2026, 11, 24, 0, 2, tzinfo=timezone.utc),
        error_type="psycopg2.OperationalError",
        error_text="Traceback...\npsycopg2.OperationalError: connection refused",
        log_reference="api:/api/v2/dags/etl_orders/dagRuns/x/taskInstances/load/logs/2",
        log_excerpt="ERROR - connection refused",
        fingerprint="a" * 64,
    )
    values.update(overrides)
    return FailedTask(**values)


def _analysis(failed_task: FailedTask) -> Analysis:
    return Analysis(
        failed_task=failed_task,
        analyzer="ollama",
        model="llama3.2:3b",
        prompt_version="dagnostics-v1",
        error_message="psycopg2.OperationalError: connection refused",
        category=Category.dependency_failure,
        severity=Severity.high,
        confidence=0.82,
        reasoning="The database refused the connection.",
        error_lines=["psycopg2.OperationalError: connection refused", "Is the server running on host?"],
        suggested_actions=["Check that the database is up"],
        raw_response='{"error_message": "..."}',
        latency_ms=1234,
    )


def test_every_model_round_trips(migrated_store_url):
    with session_scope(migrated_store_url) as session:
        failure = _failure()
        analysis = _analysis(failure)
        review = Review(
            failed_task=failure,
            analysis=analysis,
            reviewer="alice",
            error_message="FATAL: password authentication failed for user etl",
            category=Category.permission_error,
            severity=Severity.critical,
            confidence=0.95,
            reasoning="The real error is the password.",
            error_lines=["FATAL: password authentication failed for user etl"],
            rating=2,
            comment="AI picked the retry wrapper",
        )
        dataset = DatasetVersion(
            version="ds-20261125-0001",
            uri="file:///tmp/data/training",
            content_hash="f" * 64,
            train_count=40,
            validation_count=10,
            parameters={"min_rating": 3},
            info={"categories": {"permission_error": 12}},
            last_review_id=1,
        )
        model = ModelVersion(
            version="dagnostics-slm-v1.0",
            base_model="HuggingFaceTB/SmolLM2-135M-Instruct",
            dataset_version=dataset,
            uri="file:///tmp/models/dagnostics-slm-v1.0",
            metrics={"category_accuracy": 0.8},
        )
        session.add_all([failure, analysis, review, dataset, model])
        session.flush()
        session.add(ReviewEvent(failed_task_id=failure.id, review_id=review.id, actor="alice", event="submitted"))
        session.add(
            Deployment(
                model_version=model,
                target="http://ollama:11434",
                ollama_model="dagnostics-slm:v1.0",
                alias="dagnostics-slm:latest",
                status=DeploymentStatus.succeeded,
            )
        )

    with session_scope(migrated_store_url) as session:
        failure = session.scalars(select(FailedTask)).one()
        assert failure.status is FailureStatus.pending
        assert failure.start_date.replace(tzinfo=timezone.utc) == datetime(2026, 11, 24, 0, 1, tzinfo=timezone.utc)
        (analysis,) = failure.analyses
        assert analysis.category is Category.dependency_failure
        assert analysis.error_lines[1] == "Is the server running on host?"
        (review,) = failure.reviews
        assert review.analysis_id == analysis.id
        assert (review.category, review.rating, review.reviewer) == (Category.permission_error, 2, "alice")
        # The correction lives beside the AI's suggestion, which is untouched.
        assert analysis.error_message == "psycopg2.OperationalError: connection refused"
        event = session.scalars(select(ReviewEvent)).one()
        assert (event.event, event.review_id) == ("submitted", review.id)
        model = session.scalars(select(ModelVersion)).one()
        assert model.status is ModelStatus.candidate
        assert model.dataset_version.info == {"categories": {"permission_error": 12}}
        deployment = session.scalars(select(Deployment)).one()
        assert deployment.model_version.version == "dagnostics-slm-v1.0"


def test_analyses_reviews_and_events_are_immutable(migrated_store_url):
    with session_scope(migrated_store_url) as session:
        failure = _failure()
        session.add(_analysis(failure))

    with pytest.raises(ImmutableRowError, match="append-only"), session_scope(migrated_store_url) as session:
        session.scalars(select(Analysis)).one().category = Category.unknown

    with pytest.raises(ImmutableRowError, match="cannot be deleted"), session_scope(migrated_store_url) as session:
        session.delete(session.scalars(select(Analysis)).one())

    with session_scope(migrated_store_url) as session:
        assert session.scalars(select(Analysis)).one().category is Category.dependency_failure


def test_two_reviewers_on_one_item_both_keep_their_review(migrated_store_url):
    with session_scope(migrated_store_url) as session:
        failure = _failure()
        analysis = _analysis(failure)
        session.add_all([failure, analysis])
    for reviewer, category in (("alice", Category.permission_error), ("bob", Category.configuration_error)):
        with session_scope(migrated_store_url) as session:
            session.add(
                Review(
                    failed_task_id=failure.id,
                    analysis_id=analysis.id,
                    reviewer=reviewer,
                    error_message="x",
                    category=category,
                    severity=Severity.high,
                    rating=4,
                )
            )
    with session_scope(migrated_store_url) as session:
        reviews = session.get(FailedTask, failure.id).reviews
        assert [(r.reviewer, r.category) for r in reviews] == [
            ("alice", Category.permission_error),
            ("bob", Category.configuration_error),
        ]


def test_database_rejects_out_of_range_rating(migrated_store_url):
    with session_scope(migrated_store_url) as session:
        failure = _failure()
        analysis = _analysis(failure)
        session.add_all([failure, analysis])
    with pytest.raises(IntegrityError), session_scope(migrated_store_url) as session:
        session.add(
            Review(
                failed_task_id=failure.id,
                analysis_id=analysis.id,
                reviewer="alice",
                error_message="x",
                category=Category.unknown,
                severity=Severity.low,
                rating=6,
            )
        )


def test_one_row_per_failed_try(migrated_store_url):
    with session_scope(migrated_store_url) as session:
        session.add(_failure())
    with pytest.raises(IntegrityError), session_scope(migrated_store_url) as session:
        session.add(_failure())
    with session_scope(migrated_store_url) as session:
        session.add(_failure(try_number=3))
        session.flush()
        assert len(session.scalars(select(FailedTask)).all()) == 2


def test_analysis_rows_need_an_existing_failure(migrated_store_url):
    with pytest.raises(IntegrityError), session_scope(migrated_store_url) as session:
        orphan = _analysis(_failure())
        orphan.failed_task = None
        orphan.failed_task_id = 999_999
        session.add(orphan)
