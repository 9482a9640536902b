"""``NewFailuresTrigger`` on a real SQLite store: it fires when a failure starts waiting for analysis, once per
change of the queue, survives an unreadable store, and is what the analyze DAG is scheduled on (issue 15, item 3).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest

from dagnostics_provider.store.failures import FailureRecord, record_failure, request_reanalysis, save_analysis
from dagnostics_provider.store.queue_watermark import pending_watermark
from dagnostics_provider.triggers.new_failures import NewFailuresTrigger

POLL = 0.05


@pytest.fixture
def store(sqlite_store) -> str:
    return sqlite_store


def _fail(task_id: str, try_number: int = 1) -> int:
    return record_failure(FailureRecord(dag_id="etl", task_id=task_id, run_id="r1", try_number=try_number))


def _analyse(failure_id: int) -> None:
    from dagnostics_provider.analysis.extraction import extract_text
    from dagnostics_provider.analysis.heuristic import heuristic_outcome

    save_analysis(
        failure_id,
        heuristic_outcome(extract_text("ValueError: boom")),
        log_excerpt="",
        log_reference=None,
        fingerprint=None,
        error_type=None,
    )


class Events:
    """The trigger's events, collected by a background task of the running event loop."""

    def __init__(self, trigger: NewFailuresTrigger) -> None:
        self.items: list = []
        self._task = asyncio.get_running_loop().create_task(self._collect(trigger))

    async def _collect(self, trigger: NewFailuresTrigger) -> None:
        async for event in trigger.run():
            self.items.append(event.payload)

    async def wait_for(self, count: int, timeout: float = 5.0) -> list:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.items) < count:
            assert asyncio.get_running_loop().time() < deadline, f"{len(self.items)} events, wanted {count}"
            await asyncio.sleep(POLL / 2)
        return self.items

    async def quiet_for(self, seconds: float) -> None:
        before = len(self.items)
        await asyncio.sleep(seconds)
        assert len(self.items) == before, f"unexpected events: {self.items[before:]}"

    def stop(self) -> None:
        self._task.cancel()


def test_it_fires_once_per_change_of_the_queue(store):
    async def scenario() -> None:
        events = Events(NewFailuresTrigger(poll_interval=POLL))
        await events.quiet_for(POLL * 6)  # nothing pending: no event
        first = _fail("extract")
        await events.wait_for(1)
        await events.quiet_for(POLL * 6)  # the same pending failure does not fire again
        _fail("load")
        _fail("transform")  # a burst between two polls is at most two events, usually one
        await events.wait_for(2)
        _analyse(first)  # the queue shrinking is no reason to analyse
        await asyncio.sleep(POLL * 6)
        count = len(events.items)
        request_reanalysis([first])  # put back in the queue by a person: analyse again
        await events.wait_for(count + 1)
        events.stop()
        assert all(datetime.fromisoformat(e["pending_since"]).tzinfo is not None for e in events.items)

    asyncio.run(scenario())


def test_after_a_restart_pending_failures_fire_at_once(store):
    _fail("extract")

    async def scenario() -> None:
        events = Events(NewFailuresTrigger(poll_interval=10))
        await events.wait_for(1, timeout=2)  # the first poll, not after the interval
        events.stop()

    asyncio.run(scenario())


def test_an_unreadable_store_is_logged_and_polled_again(tmp_path, monkeypatch, capfd):
    url = f"sqlite:///{tmp_path / 'later.db'}"  # not migrated yet: "no such table"
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__SQL_ALCHEMY_CONN", url)

    async def scenario() -> None:
        events = Events(NewFailuresTrigger(poll_interval=POLL))
        await asyncio.sleep(POLL * 4)
        assert events.items == [] and not events._task.done()
        from dagnostics_provider.store.migrate import upgrade

        upgrade(url)
        _fail("extract")
        await events.wait_for(1, timeout=10)  # back-off doubles from POLL: well within 10 s
        events.stop()

    asyncio.run(scenario())
    assert "DAGnostics store unreadable" in capfd.readouterr().out  # Airflow's structlog writes to stdout


def test_the_watermark_is_the_newest_pending_change(store):
    assert pending_watermark() is None
    before = datetime.now().astimezone()
    first = _fail("extract")
    mark = pending_watermark()
    assert mark is not None and mark.tzinfo is not None and mark >= before - timedelta(seconds=1)
    _analyse(first)
    assert pending_watermark() is None


def test_it_serializes_for_the_triggerer_and_refuses_a_bad_interval():
    classpath, kwargs = NewFailuresTrigger(poll_interval=3).serialize()
    assert classpath == "dagnostics_provider.triggers.new_failures.NewFailuresTrigger"
    assert kwargs == {"poll_interval": 3.0}
    assert NewFailuresTrigger(**kwargs).poll_interval == 3.0
    with pytest.raises(ValueError, match="positive"):
        NewFailuresTrigger(poll_interval=0)


def test_the_analyze_dag_runs_on_new_failures_or_every_five_minutes():
    from dagnostics_provider.assets import NEW_FAILURES
    from dagnostics_provider.compat import AssetOrTimeSchedule
    from dagnostics_provider.example_dags.dagnostics_analyze_failures import dag

    schedule = dag.timetable
    assert isinstance(schedule, AssetOrTimeSchedule)
    assert list(schedule.asset_condition.objects) == [NEW_FAILURES]
    (watcher,) = NEW_FAILURES.watchers
    assert isinstance(watcher.trigger, NewFailuresTrigger)
    # The SDK's timetable (3.3) says ``expression``; Airflow 3.1's core one keeps it in ``_expression``.
    timetable = schedule.timetable
    assert (getattr(timetable, "expression", None) or timetable._expression) == "*/5 * * * *"
    assert dag.max_active_runs == 1
