"""How far the analysis queue has moved: the newest change among failures waiting for analysis.

The new-failure trigger polls this instead of Airflow: one indexed ``max()`` over the DAGnostics store, never a
query against the scheduler's database.  A newly recorded failure and a failure put back in the queue (a
re-analysis request) both move it, because both touch ``updated_at``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select

from dagnostics_provider.store.engine import session_scope
from dagnostics_provider.store.models import FailedTask, FailureStatus
from dagnostics_provider.store.reviews.common import utc


def pending_watermark(url: str | None = None) -> datetime | None:
    """The newest ``updated_at`` among pending failures (aware UTC), or None when nothing waits."""
    with session_scope(url) as session:
        newest = session.scalar(
            select(func.max(FailedTask.updated_at)).where(FailedTask.status == FailureStatus.pending)
        )
    if isinstance(newest, str):  # SQLite returns max() of a DATETIME column as text
        newest = datetime.fromisoformat(newest)
    return None if newest is None else utc(newest)
