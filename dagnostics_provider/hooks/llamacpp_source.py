"""Which GGUF file the in-process ``llamacpp`` analyzer loads: the configured one, or the production version's.

``[dagnostics] llamacpp_model`` names a file (a local path or an object storage URL). Empty means the model in
production: the registry's production version, whose deployment wrote ``<version>/ollama/model.gguf`` (the
bundle of :mod:`dagnostics_provider.deploy.bundle`), so promoting or rolling back a version changes what analyses
load without editing ``airflow.cfg`` on every worker. A file on object storage is downloaded once into a local
cache, because llama.cpp maps the file from a local disk.

Every way of not finding a model raises :class:`~dagnostics_provider.hooks.llm_errors.LLMUnavailable` with a
message that says what to set or do: it ends up verbatim in the ``fallback_reason`` of the heuristic analyses
stored meanwhile, so it names options, versions and paths, never store URLs or credentials.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from dagnostics_provider import artifacts
from dagnostics_provider.hooks.llm_errors import LLMUnavailable

log = logging.getLogger(__name__)

GGUF_MAGIC = b"GGUF"
NO_MODEL = "no GGUF model: set [dagnostics] llamacpp_model or deploy a version"
# The store's ``analyses.model`` column holds 250 characters; a long path keeps its informative end.
MAX_LABEL_CHARS = 250
_CACHE_PURPOSE = "gguf"


@dataclass(frozen=True)
class GgufModel:
    """A local GGUF file, ready for llama.cpp, and how analyses name it."""

    path: Path
    label: str  # recorded as the analysis' model: the registry version, or the configured file
    source: str  # where the choice came from, for log lines


def resolve(configured: str) -> GgufModel:
    """The GGUF file to load: ``configured`` (``[dagnostics] llamacpp_model``) when set, else production's."""
    location = configured.strip()
    if location:
        path = local_file(location, what="[dagnostics] llamacpp_model")
        return GgufModel(path=path, label=label(location), source="[dagnostics] llamacpp_model")
    return production_model()


def production_model() -> GgufModel:
    """The GGUF the deployment of the production version wrote; :data:`NO_MODEL` when there is none."""
    from sqlalchemy.exc import SQLAlchemyError

    from dagnostics_provider.deploy.bundle import BUNDLE_DIR, GGUF_FILE
    from dagnostics_provider.store.engine import StoreConfigurationError
    from dagnostics_provider.store.migrate import current_revision
    from dagnostics_provider.training import registry

    try:
        if current_revision() is None:  # no store yet; asking must not create an empty SQLite file
            raise LLMUnavailable(NO_MODEL)
        version = registry.production_version()
        record = registry.get_version(version) if version else None
    except (SQLAlchemyError, StoreConfigurationError) as exc:
        # The exception text may carry the store's URL; its type is enough to point at the store.
        raise LLMUnavailable(
            f"cannot read the production version from the DAGnostics store ({type(exc).__name__}); "
            "set [dagnostics] llamacpp_model to a GGUF file"
        ) from None
    if record is None:
        raise LLMUnavailable(NO_MODEL)
    location = artifacts.to_path(record.uri) / BUNDLE_DIR / GGUF_FILE
    path = local_file(
        location,
        what=f"production version {record.version}",
        missing_hint=(
            "deploy it with [dagnostics] deploy_import_format = gguf (dagnostics training deploy-ollama) or set "
            "[dagnostics] llamacpp_model"
        ),
        cache_name=record.version,
    )
    return GgufModel(path=path, label=record.version, source=f"production version {record.version}")


def local_file(
    location: str | artifacts.ArtifactPath,
    *,
    what: str,
    missing_hint: str = "set [dagnostics] llamacpp_model to a GGUF file",
    cache_name: str | None = None,
) -> Path:
    """A local, existing GGUF file for ``location``; object storage is downloaded into a local cache first."""
    path = artifacts.to_path(location) if isinstance(location, str) else location
    shown = artifacts.to_uri(path)
    if not path.exists():
        raise LLMUnavailable(f"{what}: {shown} does not exist; {missing_hint}")
    if not path.is_file():
        raise LLMUnavailable(f"{what}: {shown} is not a file; {missing_hint}")
    if not artifacts.is_local(path):
        path = _downloaded(path, cache_name or hashlib.sha256(shown.encode()).hexdigest()[:16])
    check_gguf(path, what=what, shown=shown)
    return Path(path)


def check_gguf(path: Path, *, what: str, shown: str | None = None) -> None:
    """Refuse a file that is not GGUF before llama.cpp tries to map it (its own error says little)."""
    try:
        with open(path, "rb") as handle:
            magic = handle.read(len(GGUF_MAGIC))
    except OSError as exc:
        raise LLMUnavailable(f"{what}: cannot read {shown or path}: {exc.strerror or exc}") from None
    if magic != GGUF_MAGIC:
        raise LLMUnavailable(
            f"{what}: {shown or path} is not a GGUF file (it does not start with {GGUF_MAGIC.decode()}); "
            "export the model with llama.cpp's convert_hf_to_gguf.py or deploy a version"
        )


def label(location: str) -> str:
    """How analyses record a configured file: as configured, its end kept when it is too long for the store."""
    return location if len(location) <= MAX_LABEL_CHARS else "..." + location[-(MAX_LABEL_CHARS - 3) :]


def _downloaded(remote: artifacts.ArtifactPath, name: str) -> Path:
    """``remote`` copied to ``<tmp>/dagnostics-gguf/<name>/``; a complete copy of the same size is reused.

    Versions are immutable once trained, so the size is enough to notice a re-exported file without hashing
    gigabytes on every task start.
    """
    target = Path(tempfile.gettempdir()) / f"dagnostics-{_CACHE_PURPOSE}" / name / remote.name
    size = remote.stat().st_size
    if target.exists() and target.stat().st_size == size:
        return target
    log.info("Downloading %s (%d bytes) to %s", artifacts.to_uri(remote), size, target)
    artifacts.copy_file(remote, target)
    return target
