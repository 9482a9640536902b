"""SQLAlchemy 2 models of the DAGnostics store.

The shape follows one rule: what a person or a model said is never overwritten.  An AI analysis is immutable
once written; a review is a new row per submission (two reviewers on one item both keep theirs, a reviewer who
changes their mind adds a newer row); every review action also lands in the append-only ``review_events``
log.  The ORM refuses updates and deletes of immutable rows (see :mod:`dagnostics_provider.store.guards`).
"""

from __future__ import annotations

import enum
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from dagnostics_provider.analysis.schema import Category, Severity

# Deterministic constraint names keep Alembic migrations identical on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments INTEGER PRIMARY KEY; BigInteger elsewhere.
Id = BigInteger().with_variant(Integer(), "sqlite")
# Row ids are BIGINT on PostgreSQL and 64-bit on SQLite; a larger number would fail inside the database driver,
# so lookups by an id from outside (a URL, a JSON body) check it first.
MAX_ROW_ID = (1 << 63) - 1


def is_row_id(value: int) -> bool:
    """Whether ``value`` can be a row id at all (1 to :data:`MAX_ROW_ID`)."""
    return 1 <= value <= MAX_ROW_ID


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class FailureStatus(str, enum.Enum):
    """Where a failed task instance is in the analysis pipeline."""

    pending = "pending"  # recorded, waiting for analysis
    analyzed = "analyzed"  # has at least one stored analysis
    analysis_failed = "analysis_failed"  # analysis raised; kept so nothing is silently dropped
    ignored = "ignored"  # excluded by a person (not a DAGnostics decision)


class ModelStatus(str, enum.Enum):
    candidate = "candidate"
    production = "production"
    retired = "retired"


class DeploymentStatus(str, enum.Enum):
    started = "started"
    succeeded = "succeeded"
    failed = "failed"
    rolled_back = "rolled_back"


def _enum(enum_cls: type[enum.Enum], name: str) -> Enum:
    # Stored as VARCHAR + CHECK (native_enum=False) so adding a value is a plain migration on every backend.
    return Enum(enum_cls, name=name, native_enum=False, validate_strings=True, length=32)


class FailedTask(Base):
    """One failed try of one task instance, as the listener (or a backfill from the REST API) saw it."""

    __tablename__ = "failed_tasks"
    __table_args__ = (
        UniqueConstraint("dag_id", "task_id", "run_id", "map_index", "try_number", name="uq_failed_tasks_try"),
        Index("ix_failed_tasks_status_failed_at", "status", "failed_at"),
        Index("ix_failed_tasks_dag_task", "dag_id", "task_id"),
        # Review queue: fingerprint groups read (fingerprint, failed_at) without touching the wide rows.
        Index("ix_failed_tasks_fingerprint_failed_at", "fingerprint", "failed_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    dag_id: Mapped[str] = mapped_column(String(250))
    task_id: Mapped[str] = mapped_column(String(250))
    run_id: Mapped[str] = mapped_column(String(250))
    map_index: Mapped[int] = mapped_column(Integer, default=-1)
    try_number: Mapped[int] = mapped_column(Integer)
    operator: Mapped[str | None] = mapped_column(String(250))
    hostname: Mapped[str | None] = mapped_column(String(250))
    # The task's state when recorded: failed, up_for_retry, or failed by hand in the UI.
    task_state: Mapped[str] = mapped_column(String(32), default="failed")
    marked_by_user: Mapped[bool] = mapped_column(Boolean, default=False)
    start_date: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    end_date: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    error_type: Mapped[str | None] = mapped_column(String(250))
    error_text: Mapped[str | None] = mapped_column(Text)  # the error with its traceback, bounded by the listener
    log_reference: Mapped[str | None] = mapped_column(Text)  # where the full log lives (REST path, file, URL)
    log_excerpt: Mapped[str | None] = mapped_column(Text)  # the extracted context the analysis was made from
    fingerprint: Mapped[str | None] = mapped_column(String(64), index=True)
    status: Mapped[FailureStatus] = mapped_column(_enum(FailureStatus, "failure_status"), default=FailureStatus.pending)
    status_detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    analyses: Mapped[list[Analysis]] = relationship(back_populates="failed_task", order_by="Analysis.id")
    reviews: Mapped[list[Review]] = relationship(back_populates="failed_task", order_by="Review.id")


class Analysis(Base):
    """An AI (or heuristic) analysis of a failed task. Immutable: a re-analysis adds a row."""

    __tablename__ = "analyses"
    __table_args__ = (
        CheckConstraint("confidence >= 0 AND confidence <= 1", name="confidence_range"),
        # Review queue: "newest analysis per failed try" plus its filter columns, answered from the index alone.
        Index("ix_analyses_queue", "failed_task_id", "id", "category", "severity", "confidence"),
        Index("ix_analyses_confidence", "confidence"),  # "lowest confidence first"
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    failed_task_id: Mapped[int] = mapped_column(ForeignKey("failed_tasks.id", ondelete="RESTRICT"), index=True)
    analyzer: Mapped[str] = mapped_column(String(32))  # heuristic | ollama | openai | llamacpp
    model: Mapped[str | None] = mapped_column(String(250))
    prompt_version: Mapped[str] = mapped_column(String(32))
    error_message: Mapped[str] = mapped_column(Text)
    category: Mapped[Category] = mapped_column(_enum(Category, "category"))
    severity: Mapped[Severity] = mapped_column(_enum(Severity, "severity"))
    confidence: Mapped[float] = mapped_column(Float)
    reasoning: Mapped[str] = mapped_column(Text, default="")
    error_lines: Mapped[list[Any]] = mapped_column(default=list)
    suggested_actions: Mapped[list[Any]] = mapped_column(default=list)
    raw_response: Mapped[str | None] = mapped_column(Text)
    fallback_reason: Mapped[str | None] = mapped_column(Text)  # why the LLM answer was not used, if it was not
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    failed_task: Mapped[FailedTask] = relationship(back_populates="analyses")


class Review(Base):
    """One reviewer's correction and rating of one analysis. Never updated; a resubmission is a newer row."""

    __tablename__ = "reviews"
    __table_args__ = (
        CheckConstraint("rating >= 1 AND rating <= 5", name="rating_range"),
        CheckConstraint("confidence IS NULL OR (confidence >= 0 AND confidence <= 1)", name="confidence_range"),
        Index("ix_reviews_failed_task_reviewer", "failed_task_id", "reviewer"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    failed_task_id: Mapped[int] = mapped_column(ForeignKey("failed_tasks.id", ondelete="RESTRICT"), index=True)
    analysis_id: Mapped[int] = mapped_column(ForeignKey("analyses.id", ondelete="RESTRICT"), index=True)
    reviewer: Mapped[str] = mapped_column(String(250))
    error_message: Mapped[str] = mapped_column(Text)
    category: Mapped[Category] = mapped_column(_enum(Category, "category"))
    severity: Mapped[Severity] = mapped_column(_enum(Severity, "severity"))
    confidence: Mapped[float | None] = mapped_column(Float)
    reasoning: Mapped[str] = mapped_column(Text, default="")
    error_lines: Mapped[list[Any]] = mapped_column(default=list)
    suggested_actions: Mapped[list[Any]] = mapped_column(default=list)
    rating: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text)
    accepted_as_is: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)

    failed_task: Mapped[FailedTask] = relationship(back_populates="reviews")
    analysis: Mapped[Analysis] = relationship()


class ReviewEvent(Base):
    """Append-only audit log of everything reviewers did (submit, accept, apply to a fingerprint group...)."""

    __tablename__ = "review_events"
    __table_args__ = (Index("ix_review_events_review_id", "review_id"),)  # how a review came about (export)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    failed_task_id: Mapped[int] = mapped_column(ForeignKey("failed_tasks.id", ondelete="RESTRICT"), index=True)
    review_id: Mapped[int | None] = mapped_column(ForeignKey("reviews.id", ondelete="RESTRICT"))
    actor: Mapped[str] = mapped_column(String(250))
    event: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DatasetVersion(Base):
    """A training dataset built from reviewed feedback: one row per content hash.

    The unique index on ``content_hash`` is what makes two simultaneous builds of the same content register one
    version (the loser's insert fails and it returns the winner's row, see
    :func:`dagnostics_provider.store.datasets.register_dataset_version`); a select-then-insert alone races.
    """

    __tablename__ = "dataset_versions"
    __table_args__ = (Index("uq_dataset_versions_content_hash", "content_hash", unique=True),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    version: Mapped[str] = mapped_column(String(64), unique=True)
    uri: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    train_count: Mapped[int] = mapped_column(Integer)
    validation_count: Mapped[int] = mapped_column(Integer)
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    info: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The newest review included: "new feedback since this dataset" is counted from it.
    last_review_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ModelVersion(Base):
    """A fine-tuned model ``dagnostics-slm-vMAJOR.MINOR`` and its place in the registry."""

    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    version: Mapped[str] = mapped_column(String(64), unique=True)
    base_model: Mapped[str] = mapped_column(String(250))
    dataset_version_id: Mapped[int | None] = mapped_column(ForeignKey("dataset_versions.id", ondelete="RESTRICT"))
    uri: Mapped[str] = mapped_column(Text)
    status: Mapped[ModelStatus] = mapped_column(_enum(ModelStatus, "model_status"), default=ModelStatus.candidate)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    training_info: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    promoted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    dataset_version: Mapped[DatasetVersion | None] = relationship()


class Deployment(Base):
    """One attempt to put a model version into an Ollama server (and any rollback)."""

    __tablename__ = "deployments"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="RESTRICT"), index=True)
    target: Mapped[str] = mapped_column(Text)  # the Ollama base URL
    ollama_model: Mapped[str] = mapped_column(String(250))  # the version's own tag
    alias: Mapped[str | None] = mapped_column(String(250))  # the name the analyzer uses, e.g. dagnostics-slm:latest
    status: Mapped[DeploymentStatus] = mapped_column(_enum(DeploymentStatus, "deployment_status"))
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    model_version: Mapped[ModelVersion] = relationship()


IMMUTABLE_MODELS: tuple[type[Base], ...] = (Analysis, Review, ReviewEvent)
