"""Alembic environment for the DAGnostics store; the URL comes from :mod:`dagnostics_provider.store.migrate`."""

from __future__ import annotations

from alembic import context

from dagnostics_provider.store.migrate import VERSION_TABLE
from dagnostics_provider.store.models import Base


def run_migrations() -> None:
    connection = context.config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
