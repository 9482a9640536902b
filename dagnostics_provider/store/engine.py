"""Where the DAGnostics store lives and how to talk to it.

Resolution order: ``[dagnostics] sql_alchemy_conn``, then the Airflow connection ``[dagnostics] store_conn_id``
(``dagnostics_default``), then a SQLite file ``$AIRFLOW_HOME/dagnostics.db``.  The connection lookup goes through
Airflow's hooks, which in a task process use the Task SDK (never the metadata DB directly).

SQLite is shared by the listener in every task process, the scheduler-side operators and the api-server view,
so it runs in WAL mode with a busy timeout and takes its write lock at ``BEGIN`` (``BEGIN IMMEDIATE``): with
SQLite's default deferred transactions two writers that both read first deadlock and one fails with
"database is locked" instead of waiting.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

from dagnostics_provider import config

log = logging.getLogger(__name__)

# SQLAlchemy drivers for the Airflow connection types a store can be given as.
_DRIVERS = {"postgres": "postgresql+psycopg2", "postgresql": "postgresql+psycopg2", "mysql": "mysql+mysqldb"}

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


class StoreConfigurationError(RuntimeError):
    """The store's location is configured in a way that cannot work."""


def default_sqlite_url() -> str:
    return f"sqlite:///{(config.airflow_home() / 'dagnostics.db').resolve()}"


def _url_from_connection(conn_id: str) -> str | None:
    from airflow.exceptions import AirflowNotFoundException

    try:
        from airflow.sdk import BaseHook
    except ImportError:  # Airflow 3.0 layout
        from airflow.hooks.base import BaseHook

    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None
    conn_type = (conn.conn_type or "").lower()
    if conn_type == "sqlite":
        path = conn.host or conn.schema
        if not path:
            raise StoreConfigurationError(f"connection {conn_id!r} is of type sqlite but names no file in host")
        return f"sqlite:///{path}"
    if conn_type not in _DRIVERS:
        raise StoreConfigurationError(
            f"connection {conn_id!r} has type {conn_type!r}; the store supports postgres, mysql and sqlite"
        )
    return URL.create(
        _DRIVERS[conn_type],
        username=conn.login or None,
        password=conn.password or None,
        host=conn.host or None,
        port=conn.port or None,
        database=conn.schema or None,
        query={k: str(v) for k, v in (conn.extra_dejson or {}).items() if isinstance(v, (str, int))},
    ).render_as_string(hide_password=False)


def resolve_url() -> str:
    """The SQLAlchemy URL of the store, following the documented resolution order."""
    explicit = config.get("sql_alchemy_conn").strip()
    if explicit:
        return explicit
    from_connection = _url_from_connection(config.get("store_conn_id"))
    return from_connection or default_sqlite_url()


def _configure_sqlite(engine: Engine) -> None:
    busy_timeout_ms = config.get_int("sqlite_busy_timeout_ms")

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:
        # Let SQLAlchemy, not pysqlite, decide when transactions begin (see "begin" below).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def get_engine(url: str | None = None) -> Engine:
    """One engine per URL per process (engines own connection pools; creating one per call leaks them)."""
    url = url or resolve_url()
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            parsed = make_url(url)
            if parsed.get_backend_name() == "sqlite":
                engine = create_engine(url, connect_args={"timeout": config.get_int("sqlite_busy_timeout_ms") / 1000})
                _configure_sqlite(engine)
            else:
                engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
            _engines[url] = engine
            log.debug("DAGnostics store engine created for %s", parsed.render_as_string(hide_password=True))
        return engine


def dispose_engines() -> None:
    """Close every pooled connection (tests, and processes that fork)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    import dagnostics_provider.store.guards  # noqa: F401  (registers the immutability guard)

    factory = sessionmaker(bind=get_engine(url), expire_on_commit=False)
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
