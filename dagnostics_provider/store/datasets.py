"""The registry of training datasets in the store.

A dataset version is identified by the hash of its content, so building again over unchanged feedback returns
the version that already exists instead of registering a copy: a retraining DAG can rebuild on every run and only
trains when the data changed.  ``last_review_id`` is the newest review the build read (the snapshot bound, not
only the reviews that became examples); "new feedback since this dataset" counts reviews after it.
"""

from __future__ import annotations

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dagnostics_provider.store.engine import session_scope
from dagnostics_provider.store.models import DatasetVersion, Review


def _by_hash(session: Session, content_hash: str) -> DatasetVersion | None:
    return session.scalars(select(DatasetVersion).where(DatasetVersion.content_hash == content_hash)).one_or_none()


def register_dataset_version(candidate: DatasetVersion, url: str | None = None) -> tuple[DatasetVersion, bool]:
    """Register ``candidate`` unless a version with its content hash exists; returns (the version, created).

    When the content is already registered, that version is returned and its ``last_review_id`` moves forward
    to the candidate's: the build read newer reviews and none of them changed the data, so they are no longer
    "new feedback" for it.

    Race-safe across processes: looking the hash up first is only the cheap common case.  Two builds of the same
    content at the same moment both find nothing, so the insert runs in a SAVEPOINT and the unique index on
    ``content_hash`` decides; the loser's insert fails (on PostgreSQL it waits for the winner's commit first),
    only the savepoint is rolled back, and the loser returns the winner's row.  Both builds therefore report the
    same version, and exactly one reports it as created.  (A same-second build also has the same version name,
    so the failing constraint may be ``version``'s; either way the winner's row is found by hash.)
    """
    with session_scope(url) as session:
        existing = _by_hash(session, candidate.content_hash)
        if existing is None:
            try:
                with session.begin_nested():
                    session.add(candidate)
                return candidate, True
            except IntegrityError:
                existing = _by_hash(session, candidate.content_hash)
                if existing is None:  # not a same-content race (a version name taken by other content)
                    raise
        if candidate.last_review_id is not None and (existing.last_review_id or 0) < candidate.last_review_id:
            # Conditional UPDATE, not read-modify-write: concurrent builds may only move it forward.
            session.execute(
                update(DatasetVersion)
                .where(DatasetVersion.id == existing.id)
                .where(
                    or_(
                        DatasetVersion.last_review_id.is_(None),
                        DatasetVersion.last_review_id < candidate.last_review_id,
                    )
                )
                .values(last_review_id=candidate.last_review_id)
                .execution_options(synchronize_session=False)
            )
            session.refresh(existing)
        return existing, False


def dataset_version_by_hash(content_hash: str, url: str | None = None) -> DatasetVersion | None:
    """The version holding ``content_hash`` (at most one: the column is unique since migration 0003)."""
    with session_scope(url) as session:
        return _by_hash(session, content_hash)


def get_dataset_version(version: str, url: str | None = None) -> DatasetVersion:
    with session_scope(url) as session:
        found = session.scalars(select(DatasetVersion).where(DatasetVersion.version == version)).one_or_none()
        if found is None:
            raise LookupError(f"no dataset version {version!r} in the DAGnostics store")
        return found


def latest_dataset_version(url: str | None = None) -> DatasetVersion | None:
    """The most recently registered dataset version, or None before the first build."""
    with session_scope(url) as session:
        return session.scalars(select(DatasetVersion).order_by(DatasetVersion.id.desc()).limit(1)).first()


def new_reviews_since(dataset: DatasetVersion | None, *, min_rating: int | None = None, url: str | None = None) -> int:
    """Reviews submitted after ``dataset`` was built (all reviews when there is none), optionally rated >= N.

    Counts submissions, not items: a reviewer revising an answer is new feedback too.
    """
    query = select(func.count(Review.id))
    if dataset is not None and dataset.last_review_id is not None:
        query = query.where(Review.id > dataset.last_review_id)
    if min_rating is not None:
        query = query.where(Review.rating >= min_rating)
    with session_scope(url) as session:
        return int(session.scalar(query) or 0)
