"""Suite-wide test setup.

Every test runs with its own AIRFLOW_HOME so nothing reads or writes the developer's Airflow, and with the
DAGnostics store engines closed afterwards so SQLite files and PostgreSQL databases can be dropped. llama.cpp's GGUF
converter is fetched once per session into a cache of the session's own, for the tests that export models.
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

from tests.deploy import llama_cpp_support  # noqa: E402


@pytest.fixture(autouse=True)
def _dispose_store_engines():
    yield
    from dagnostics_provider.store.engine import dispose_engines

    dispose_engines()


@pytest.fixture
def sqlite_store(tmp_path, monkeypatch) -> str:
    """A migrated SQLite store in the test's folder, which every DAGnostics call of the test uses."""
    from dagnostics_provider.store.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'dagnostics.db'}"
    upgrade(url)
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__SQL_ALCHEMY_CONN", url)
    return url


@pytest.fixture(scope="session")
def converter_cache(tmp_path_factory) -> Path:
    """This session's own ``~/.cache/dagnostics``, where the pinned converter is extracted."""
    return tmp_path_factory.mktemp("dagnostics-cache")


@pytest.fixture(scope="session")
def pinned_script(converter_cache) -> Path:
    """llama.cpp's converter from the pinned llama-cpp-python sdist, fetched with pip as deployments fetch it."""
    from dagnostics_provider.deploy import llama_cpp_converter

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(llama_cpp_converter, "cache_dir", lambda: converter_cache)
        return llama_cpp_converter.pinned_converter()


@pytest.fixture(scope="session")
def tiny_converter(pinned_script, tmp_path_factory) -> Path:
    """The real converter, taught the tiny test tokenizers' pre-tokenizer (see llama_cpp_support)."""
    return llama_cpp_support.tiny_tokenizer_converter(pinned_script, tmp_path_factory.mktemp("converter"))
