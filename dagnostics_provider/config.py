"""The ``[dagnostics]`` configuration section: declared once, read everywhere through this module.

Every option is declared here with its default, and ``get_provider_info()`` publishes the same declarations so
``airflow config list`` shows them.  Readers always pass the default as an explicit ``fallback`` because a task
process on a worker may run without the provider's defaults loaded into Airflow's configuration; the
``AIRFLOW__DAGNOSTICS__<OPTION>`` environment variables work through Airflow's own configuration parser.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

SECTION = "dagnostics"
VERSION_ADDED = "0.1.0"


@dataclass(frozen=True)
class Option:
    """One option of the ``[dagnostics]`` section."""

    name: str
    type: str  # "string" | "integer" | "float" | "boolean", as Airflow's provider config schema names them
    default: str
    description: str
    example: str
    sensitive: bool = False


OPTIONS: dict[str, Option] = {
    option.name: option
    for option in (
        Option(
            name="sql_alchemy_conn",
            type="string",
            default="",
            description=(
                "SQLAlchemy URL of the DAGnostics store. Takes precedence over the connection named by "
                "``store_conn_id``. Empty means: use that connection if it exists, else a SQLite file "
                "``dagnostics.db`` under AIRFLOW_HOME."
            ),
            example="postgresql+psycopg2://dagnostics:secret@db.internal:5432/dagnostics",
            sensitive=True,
        ),
        Option(
            name="store_conn_id",
            type="string",
            default="dagnostics_default",
            description=(
                "Airflow connection (postgres, mysql or sqlite) that points at the DAGnostics store when "
                "``sql_alchemy_conn`` is empty."
            ),
            example="dagnostics_default",
        ),
        Option(
            name="sqlite_busy_timeout_ms",
            type="integer",
            default="30000",
            description=(
                "How long a writer waits for a locked SQLite store before failing. Workers, the scheduler "
                "and the api-server share one file, so short waits are normal."
            ),
            example="30000",
        ),
    )
}


def _option(name: str) -> Option:
    try:
        return OPTIONS[name]
    except KeyError:
        raise KeyError(f"[{SECTION}] has no option {name!r}; known options: {', '.join(sorted(OPTIONS))}") from None


def get(name: str) -> str:
    """Return an option as text, falling back to its declared default."""
    from airflow.configuration import conf

    option = _option(name)
    value = conf.get(SECTION, name, fallback=option.default)
    return option.default if value is None else str(value)


def get_int(name: str) -> int:
    value = get(name)
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"[{SECTION}] {name} must be an integer, got {value!r}") from None


def get_float(name: str) -> float:
    value = get(name)
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"[{SECTION}] {name} must be a number, got {value!r}") from None


_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off", ""}


def get_bool(name: str) -> bool:
    value = get(name).strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"[{SECTION}] {name} must be true or false, got {value!r}")


def airflow_home() -> Path:
    """AIRFLOW_HOME as Airflow itself resolves it (``~/airflow`` when unset)."""
    return Path(os.environ.get("AIRFLOW_HOME", "~/airflow")).expanduser()


def provider_config_section() -> dict:
    """The ``config`` entry of ``get_provider_info()``, built from :data:`OPTIONS`."""
    return {
        SECTION: {
            "description": "DAGnostics: failed-task analysis, review store, training and deployment.",
            "options": {
                option.name: {
                    "description": option.description,
                    "version_added": VERSION_ADDED,
                    "type": option.type,
                    "example": option.example,
                    "default": option.default,
                    "sensitive": option.sensitive,
                }
                for option in OPTIONS.values()
            },
        }
    }
