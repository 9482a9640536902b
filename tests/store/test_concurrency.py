"""Writers in separate processes (task processes, the scheduler, the api-server) must not lose rows."""

from __future__ import annotations

import multiprocessing

from sqlalchemy import func, select

from dagnostics_provider.store.engine import session_scope
from dagnostics_provider.store.models import FailedTask

WRITERS = 6
ROWS_PER_WRITER = 40


def _write_rows(url: str, writer: int) -> None:
    for row in range(ROWS_PER_WRITER):
        # Read-then-write in one transaction: the pattern that deadlocks SQLite's deferred transactions.
        with session_scope(url) as session:
            session.scalar(select(func.count(FailedTask.id)))
            session.add(
                FailedTask(dag_id="dag", task_id=f"writer_{writer}", run_id=f"run_{row}", try_number=1, map_index=-1)
            )


def test_concurrent_writers_lose_no_rows(migrated_store_url):
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_write_rows, args=(migrated_store_url, w)) for w in range(WRITERS)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [0] * WRITERS
    with session_scope(migrated_store_url) as session:
        assert session.scalar(select(func.count(FailedTask.id))) == WRITERS * ROWS_PER_WRITER
