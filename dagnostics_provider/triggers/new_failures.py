"""``NewFailuresTrigger``: start the analysis within seconds of a failure, without polling the scheduler.

The analyze DAG used to run every five minutes, so a diagnosis arrived up to five minutes after the failure plus
the analysis time.  This trigger watches the DAGnostics store from Airflow's triggerer and fires an event when a
failure starts waiting for analysis; as the watcher of the asset the analyze DAG is scheduled on
(:data:`dagnostics_provider.assets.NEW_FAILURES`), each event becomes an asset event and the scheduler starts an
analysis run.  The listener cannot emit that asset event itself: it runs in the user's task process, which may not
touch Airflow's database and has no outlet for it.

Polling costs one indexed ``max()`` on the store every ``poll_interval`` seconds, in a thread so the triggerer's
event loop never blocks.  Events fire only when the queue's watermark moves, so a burst of failures between two
polls is one event, and the scheduler folds events that arrive while an analysis runs into one more run
(``max_active_runs=1``).  A store that cannot be read (locked, down, not migrated yet) is logged and polled again
after a back-off; the trigger never dies of it.  After a restart of the triggerer the first poll fires if anything
is pending, so nothing recorded while it was down waits for the periodic sweep.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent
from asgiref.sync import sync_to_async

DEFAULT_POLL_INTERVAL = 2.0
MAX_BACKOFF = 60.0


class NewFailuresTrigger(BaseEventTrigger):
    """Fires when a failed task starts waiting for analysis in the DAGnostics store.

    :param poll_interval: seconds between two looks at the store (the latency it adds, at most).
    """

    def __init__(self, poll_interval: float = DEFAULT_POLL_INTERVAL) -> None:
        super().__init__()
        if poll_interval <= 0:
            raise ValueError("poll_interval must be a positive number of seconds")
        self.poll_interval = float(poll_interval)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", {"poll_interval": self.poll_interval}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from sqlalchemy.exc import SQLAlchemyError

        from dagnostics_provider.store.queue_watermark import pending_watermark

        read = sync_to_async(pending_watermark, thread_sensitive=False)
        seen: datetime | None = None
        delay = self.poll_interval
        while True:
            try:
                newest = await read()
            except (SQLAlchemyError, OSError) as exc:
                delay = min(MAX_BACKOFF, delay * 2)
                self.log.warning("DAGnostics store unreadable (%s); looking again in %.0f s", exc, delay)
            else:
                delay = self.poll_interval
                if newest is not None and (seen is None or newest > seen):
                    seen = newest
                    self.log.info("Failures wait for analysis (newest change %s): starting an analysis run", newest)
                    yield TriggerEvent({"pending_since": newest.isoformat()})
            await asyncio.sleep(delay)
