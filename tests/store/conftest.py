"""Store fixtures: the same tests run against SQLite and a real PostgreSQL server.

PostgreSQL comes from ``DAGNOSTICS_TEST_PG_URL`` (a server URL; each test gets a fresh database on it), which
``scripts/test_services.sh`` sets for ``make test`` and ``.ci/run``.  Without it the PostgreSQL variants are
skipped, except in CI (``CI=true``), where a missing server is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

PG_URL_ENV = "DAGNOSTICS_TEST_PG_URL"


def _postgres_database() -> Iterator[str]:
    server_url = os.environ.get(PG_URL_ENV)
    if not server_url:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{PG_URL_ENV} is not set in CI: .ci/run must start PostgreSQL")
        pytest.skip(f"{PG_URL_ENV} not set: no PostgreSQL server for this run")
    name = f"dagnostics_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        from dagnostics_provider.store.engine import dispose_engines

        dispose_engines()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request, tmp_path) -> Iterator[str]:
    """An empty database URL of each supported backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'dagnostics.db'}"
    else:
        yield from _postgres_database()


@pytest.fixture
def migrated_store_url(store_url) -> str:
    from dagnostics_provider.store.migrate import upgrade

    upgrade(store_url)
    return store_url
