"""Create and upgrade the DAGnostics store with the Alembic migrations shipped in the package."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url

from dagnostics_provider.store.engine import get_engine

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# Its own name, so the store may share a database (or schema) with other applications.
VERSION_TABLE = "dagnostics_alembic_version"


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None, "the package ships no migrations"
    return head


def current_revision(url: str | None = None) -> str | None:
    """The store's revision, or None for an empty store (a missing SQLite file is not created by asking)."""
    engine = get_engine(url)
    if engine.dialect.name == "sqlite":
        database = make_url(str(engine.url)).database
        if database and database != ":memory:" and not Path(database).exists():
            return None
    with engine.connect() as connection:
        return MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}).get_current_revision()


def upgrade(url: str | None = None, revision: str = "head") -> str:
    """Migrate the store to ``revision`` (creating it from empty if needed); returns the revision reached."""
    engine = get_engine(url)
    if engine.dialect.name == "sqlite":
        database = make_url(str(engine.url)).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
    cfg = _alembic_config()
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)
    return current_revision(url) or "base"


def downgrade(url: str | None = None, revision: str = "base") -> str | None:
    engine = get_engine(url)
    cfg = _alembic_config()
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, revision)
    return current_revision(url)


def is_up_to_date(url: str | None = None) -> bool:
    return current_revision(url) == head_revision()
