"""One dataset version per content hash, even when two processes build the same content at the same moment.

``dataset_versions.content_hash`` is unique (migration 0003), and registering a version inserts first and, when
another process won, returns that process's row: both builds report the same version.
"""

from __future__ import annotations

import multiprocessing
import queue as queue_module
from datetime import datetime, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, inspect, select
from sqlalchemy.exc import IntegrityError

from dagnostics_provider.store import datasets
from dagnostics_provider.store.engine import get_engine, session_scope
from dagnostics_provider.store.migrate import VERSION_TABLE, current_revision, downgrade, upgrade
from dagnostics_provider.store.models import Base, DatasetVersion, Deployment, DeploymentStatus, ModelVersion

ROUNDS = 20
PROCESSES = 2
# The PostgreSQL variant of ``store_url`` only; it skips like every PostgreSQL test when there is no server.
postgres_only = pytest.mark.parametrize(
    "store_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)


def _digest(round_: int) -> str:
    return f"{round_:064x}"


def _candidate(digest: str, version: str, *, last_review_id: int | None = None) -> DatasetVersion:
    return DatasetVersion(
        version=version,
        uri=f"file:///tmp/data/training/{version}",
        content_hash=digest,
        train_count=8,
        validation_count=2,
        parameters={},
        info={},
        last_review_id=last_review_id,
        created_at=datetime(2026, 11, 25, tzinfo=timezone.utc),
    )


def _register_rounds(url: str, worker: int, barrier, results) -> None:
    """In a spawned process: register the same content as the other worker, released together by ``barrier``."""
    with session_scope(url) as session:  # connect before the race, so both start from the barrier
        session.scalar(select(func.count(DatasetVersion.id)))
    for round_ in range(ROUNDS):
        digest = _digest(round_)
        # Even rounds: both builds ran in the same second (same version name); odd: the clock ticked between.
        version = f"ds-{round_:04d}-{digest[:8]}" if round_ % 2 == 0 else f"ds-{round_:04d}-w{worker}-{digest[:8]}"
        barrier.wait(timeout=60)
        try:
            row, created = datasets.register_dataset_version(_candidate(digest, version, last_review_id=worker), url)
            results.put((round_, worker, row.id, row.version, created, None))
        except Exception as error:  # reported, so the test says what went wrong in which round
            results.put((round_, worker, None, None, None, f"{type(error).__name__}: {error}"))


@postgres_only
def test_simultaneous_registrations_of_the_same_content_make_one_version(migrated_store_url):
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES)
    results = context.Queue()
    workers = [
        context.Process(target=_register_rounds, args=(migrated_store_url, w, barrier, results))
        for w in range(PROCESSES)
    ]
    for process in workers:
        process.start()
    reports = []
    try:
        for _ in range(ROUNDS * PROCESSES):
            reports.append(results.get(timeout=120))
    except queue_module.Empty:
        pass
    for process in workers:
        process.join(timeout=60)
    assert [p.exitcode for p in workers] == [0] * PROCESSES

    errors = [r for r in reports if r[5] is not None]
    with session_scope(migrated_store_url) as session:
        per_hash = dict(
            session.execute(
                select(DatasetVersion.content_hash, func.count(DatasetVersion.id)).group_by(DatasetVersion.content_hash)
            ).all()
        )
    duplicated = {h: n for h, n in per_hash.items() if n != 1}
    assert not errors and not duplicated, (
        f"{len(errors)} failed registrations, {len(duplicated)} of {ROUNDS} hashes registered more than once; "
        f"first error: {errors[0][5].splitlines()[0] if errors else None}"
    )
    assert len(reports) == ROUNDS * PROCESSES
    assert len(per_hash) == ROUNDS
    for round_ in range(ROUNDS):
        seen = {(r[2], r[3]) for r in reports if r[0] == round_}
        assert len(seen) == 1, f"round {round_}: the processes report different versions {seen}"
        assert sorted(r[4] for r in reports if r[0] == round_) == [False, True]  # exactly one created it


def _rows(url: str) -> list[DatasetVersion]:
    with session_scope(url) as session:
        return list(session.scalars(select(DatasetVersion).order_by(DatasetVersion.id)))


def test_registering_known_content_returns_the_existing_version(migrated_store_url):
    first, created = datasets.register_dataset_version(
        _candidate("a" * 64, "ds-1", last_review_id=5), migrated_store_url
    )
    assert created
    again, created = datasets.register_dataset_version(
        _candidate("a" * 64, "ds-2", last_review_id=3), migrated_store_url
    )
    assert not created and (again.id, again.version, again.last_review_id) == (first.id, "ds-1", 5)  # never back
    again, created = datasets.register_dataset_version(
        _candidate("a" * 64, "ds-3", last_review_id=9), migrated_store_url
    )
    assert not created and (again.id, again.last_review_id) == (first.id, 9)
    assert [(r.version, r.last_review_id) for r in _rows(migrated_store_url)] == [("ds-1", 9)]


@pytest.mark.parametrize("same_name", [True, False], ids=["same-version-name", "other-version-name"])
def test_a_lost_race_returns_the_winners_version(migrated_store_url, monkeypatch, same_name):
    """The loser's lookup saw no row (the winner had not committed): its insert fails and it returns the winner's."""
    winner, _ = datasets.register_dataset_version(_candidate("b" * 64, "ds-b", last_review_id=4), migrated_store_url)
    lookup = datasets._by_hash
    calls = []

    def stale_first_lookup(session, content_hash):
        calls.append(content_hash)
        return None if len(calls) == 1 else lookup(session, content_hash)

    monkeypatch.setattr(datasets, "_by_hash", stale_first_lookup)
    name = "ds-b" if same_name else "ds-b-later"
    row, created = datasets.register_dataset_version(_candidate("b" * 64, name, last_review_id=7), migrated_store_url)

    assert len(calls) == 2 and not created
    assert (row.id, row.version, row.last_review_id) == (winner.id, "ds-b", 7)
    assert [(r.version, r.last_review_id) for r in _rows(migrated_store_url)] == [("ds-b", 7)]


def test_a_version_name_taken_by_other_content_is_an_error(migrated_store_url):
    datasets.register_dataset_version(_candidate("c" * 64, "ds-c"), migrated_store_url)
    with pytest.raises(IntegrityError):
        datasets.register_dataset_version(_candidate("d" * 64, "ds-c"), migrated_store_url)
    assert [r.content_hash for r in _rows(migrated_store_url)] == ["c" * 64]


def test_the_database_refuses_a_second_row_for_one_hash(migrated_store_url):
    with session_scope(migrated_store_url) as session:
        session.add(_candidate("e" * 64, "ds-e1"))
    with pytest.raises(IntegrityError), session_scope(migrated_store_url) as session:
        session.add(_candidate("e" * 64, "ds-e2"))


def test_the_migrated_dataset_versions_table_matches_the_model(migrated_store_url):
    """What ``alembic check`` would say about dataset_versions: nothing (index names and uniqueness included)."""
    with get_engine(migrated_store_url).connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "version_table": VERSION_TABLE,
                "compare_type": True,
                "include_object": lambda obj, name, type_, *_: (
                    name == "dataset_versions" if type_ == "table" else obj.table.name == "dataset_versions"
                ),
            },
        )
        assert compare_metadata(context, Base.metadata) == []
    indexes = {i["name"]: i for i in inspect(get_engine(migrated_store_url)).get_indexes("dataset_versions")}
    assert indexes["uq_dataset_versions_content_hash"]["unique"]
    assert "ix_dataset_versions_content_hash" not in indexes


def _model(version: str, dataset_id: int) -> ModelVersion:
    return ModelVersion(
        version=version,
        base_model="HuggingFaceTB/SmolLM2-135M-Instruct",
        dataset_version_id=dataset_id,
        uri=f"file:///tmp/models/{version}",
        metrics={},
        training_info={},
    )


def test_migration_merges_duplicate_hashes_into_the_oldest_row(store_url):
    """A store at 0002 that a race left with duplicate hashes: references move to the oldest row of each hash."""
    upgrade(store_url, "0002")
    with session_scope(store_url) as session:
        rows = [
            _candidate("1" * 64, "ds-x1", last_review_id=10),
            _candidate("2" * 64, "ds-y1", last_review_id=None),
            _candidate("1" * 64, "ds-x2", last_review_id=12),  # newer duplicates of x, one reading newer reviews
            _candidate("3" * 64, "ds-z1", last_review_id=1),  # not duplicated: untouched
            _candidate("1" * 64, "ds-x3", last_review_id=11),
            _candidate("2" * 64, "ds-y2", last_review_id=None),
        ]
        session.add_all(rows)
        session.flush()
        x1, y1, x2, z1, x3, y2 = (r.id for r in rows)
        models = [
            _model("dagnostics-slm-v1.0", x2),
            _model("dagnostics-slm-v1.1", x3),
            _model("dagnostics-slm-v2.0", y2),
        ]
        models.append(_model("dagnostics-slm-v3.0", z1))
        models.append(_model("dagnostics-slm-v3.1", x1))
        session.add_all(models)
        session.flush()
        session.add(
            Deployment(
                model_version_id=models[0].id,
                target="http://ollama:11434",
                ollama_model="dagnostics-slm-v1.0",
                status=DeploymentStatus.succeeded,
            )
        )

    assert upgrade(store_url, "0003") == "0003"

    kept = {r.content_hash[0]: r for r in _rows(store_url)}
    assert sorted(kept) == ["1", "2", "3"]  # one row per hash
    assert (kept["1"].id, kept["2"].id, kept["3"].id) == (x1, y1, z1)  # the oldest of each
    assert kept["1"].last_review_id == 12  # the newest review any of the merged builds read
    assert kept["2"].last_review_id is None and kept["3"].last_review_id == 1
    assert [m["version"] for m in kept["1"].info["merged_duplicates"]] == ["ds-x2", "ds-x3"]
    assert [m["id"] for m in kept["2"].info["merged_duplicates"]] == [y2]
    assert "merged_duplicates" not in kept["3"].info
    with session_scope(store_url) as session:
        pointed = dict(session.execute(select(ModelVersion.version, ModelVersion.dataset_version_id)).all())
        deployments = session.scalars(select(Deployment)).all()
    assert pointed == {
        "dagnostics-slm-v1.0": x1,
        "dagnostics-slm-v1.1": x1,
        "dagnostics-slm-v2.0": y1,
        "dagnostics-slm-v3.0": z1,
        "dagnostics-slm-v3.1": x1,
    }
    assert [d.model_version_id for d in deployments] == [models[0].id]

    # Downgrade restores the non-unique index (merged rows stay merged); upgrading again is clean.
    assert downgrade(store_url, "0002") == "0002"
    indexes = {i["name"]: i["unique"] for i in inspect(get_engine(store_url)).get_indexes("dataset_versions")}
    assert not indexes["ix_dataset_versions_content_hash"] and "uq_dataset_versions_content_hash" not in indexes
    assert upgrade(store_url, "0003") == "0003" == current_revision(store_url)
    assert len(_rows(store_url)) == 3


BUILD_ROUNDS = 4


def _build_rounds(url: str, output: str, barrier, results) -> None:
    """In a spawned process: build the dataset each round, released together with the other builder."""
    from dagnostics_provider.training.dataset import DatasetOptions, generate_dataset

    for round_ in range(BUILD_ROUNDS):
        barrier.wait(timeout=60)
        try:
            result = generate_dataset(output, DatasetOptions(min_examples=1), url=url)
            results.put((round_, result.version, result.uri, result.reused, None))
        except Exception as error:
            results.put((round_, None, None, None, f"{type(error).__name__}: {error}"))


@postgres_only
def test_simultaneous_dataset_builds_report_the_same_version(migrated_store_url, tmp_path):
    """The caller's contract: two builds over the same feedback at once both get one version (one reuses it)."""
    from tests.training.dataset_factories import SCENARIOS, StoreFactory

    factory = StoreFactory(migrated_store_url)
    factory.reviewed_failures(6)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES + 1)  # the test releases each round once its new feedback is in
    results = context.Queue()
    builders = [
        context.Process(target=_build_rounds, args=(migrated_store_url, str(tmp_path / "out"), barrier, results))
        for _ in range(PROCESSES)
    ]
    for process in builders:
        process.start()
    reports = []
    for round_ in range(BUILD_ROUNDS):
        if round_:
            factory.review(factory.failure(SCENARIOS[round_], variant=50 + round_), SCENARIOS[round_])
        barrier.wait(timeout=120)
        reports += [results.get(timeout=120) for _ in range(PROCESSES)]
    for process in builders:
        process.join(timeout=60)
    assert [p.exitcode for p in builders] == [0] * PROCESSES
    assert not [r for r in reports if r[4] is not None], reports

    registered = {r.version: r.uri for r in _rows(migrated_store_url)}
    assert len(registered) == BUILD_ROUNDS
    for round_ in range(BUILD_ROUNDS):
        mine = [r for r in reports if r[0] == round_]
        assert len({(r[1], r[2]) for r in mine}) == 1, mine
        assert sorted(r[3] for r in mine) == [False, True], mine
        assert registered[mine[0][1]] == mine[0][2]
