from __future__ import annotations

from sqlalchemy import inspect

from dagnostics_provider.store.engine import get_engine
from dagnostics_provider.store.migrate import (
    VERSION_TABLE,
    current_revision,
    downgrade,
    head_revision,
    is_up_to_date,
    upgrade,
)
from dagnostics_provider.store.models import Base

EXPECTED_TABLES = {
    "failed_tasks",
    "analyses",
    "reviews",
    "review_events",
    "dataset_versions",
    "model_versions",
    "deployments",
}


def test_migrate_from_empty_creates_every_table(store_url):
    assert current_revision(store_url) is None
    assert upgrade(store_url) == head_revision()
    tables = set(inspect(get_engine(store_url)).get_table_names())
    assert tables >= EXPECTED_TABLES | {VERSION_TABLE}
    assert is_up_to_date(store_url)


def test_migrations_match_the_models(migrated_store_url):
    """Every column the ORM maps exists in the migrated schema (a model change without a migration fails here)."""
    inspector = inspect(get_engine(migrated_store_url))
    for table in Base.metadata.sorted_tables:
        migrated = {c["name"] for c in inspector.get_columns(table.name)}
        assert migrated == {c.name for c in table.columns}, table.name


def test_migrate_is_idempotent_and_reversible(migrated_store_url):
    assert upgrade(migrated_store_url) == head_revision()
    assert downgrade(migrated_store_url, "base") is None
    remaining = set(inspect(get_engine(migrated_store_url)).get_table_names())
    assert not remaining & EXPECTED_TABLES
    assert upgrade(migrated_store_url) == head_revision()
