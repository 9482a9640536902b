"""ORM-level guards that keep analyses, reviews and review events immutable.

Immutability is what lets the dataset builder trust that an AI suggestion and a reviewer's correction are what
they were when written.  The guard runs on every flush of every session, so no code path can quietly edit or
delete such a row through the ORM.
"""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.orm import Session

from dagnostics_provider.store.models import IMMUTABLE_MODELS


class ImmutableRowError(RuntimeError):
    """Raised when code tries to change or delete a row that is append-only by design."""


@event.listens_for(Session, "before_flush")
def _refuse_changes_to_immutable_rows(session: Session, _flush_context, _instances) -> None:
    for obj in session.dirty:
        if isinstance(obj, IMMUTABLE_MODELS) and session.is_modified(obj, include_collections=False):
            raise ImmutableRowError(f"{type(obj).__name__} {obj.id} is append-only and cannot be modified")
    for obj in session.deleted:
        if isinstance(obj, IMMUTABLE_MODELS):
            raise ImmutableRowError(f"{type(obj).__name__} {obj.id} is append-only and cannot be deleted")
