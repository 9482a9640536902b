"""Suite-wide test setup.

Every test runs with its own AIRFLOW_HOME so nothing reads or writes the developer's Airflow, and with the
DAGnostics store engines closed afterwards so SQLite files and PostgreSQL databases can be dropped.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Before anything imports Airflow: a throwaway home for the whole session (tests that need their own set one).
_SESSION_HOME = Path(tempfile.mkdtemp(prefix="dagnostics-tests-airflow-home-"))
os.environ["AIRFLOW_HOME"] = str(_SESSION_HOME)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _dispose_store_engines():
    yield
    from dagnostics_provider.store.engine import dispose_engines

    dispose_engines()
