"""The model registry: version numbers, version directories, the production pointer and the store rows.

Versions are ``dagnostics-slm-vMAJOR.MINOR``. Each base model gets its own MAJOR the first time it is trained and
keeps it, and every further training of that base is the next MINOR (the guide's v1.1 "more feedback", v2.0 "new
base model"), so the number alone tells which base a version sits on.

A training run reserves its version before it trains, under a *run key* (dataset content, base model, training
parameters): a retried task, or a DAG re-run on unchanged data, finds the reservation and reuses the version
instead of minting a duplicate.

Each version lives in ``<models dir>/dagnostics-slm-vX.Y/`` (``[dagnostics] artifact_root``, local or object
storage). Production is the store row with status ``production`` plus ``<models dir>/production.json``
(``{"version": ...}``; object stores have no symlinks), written atomically after the store commits. Promoting
retires the previous production version; :func:`previous_production` names the one to roll back to.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from dagnostics_provider import artifacts
from dagnostics_provider.store.engine import session_scope
from dagnostics_provider.store.models import ModelStatus, ModelVersion
from dagnostics_provider.training.layout import PRODUCTION_FILE, TRAINING_INFO_FILE

log = logging.getLogger(__name__)

PREFIX = "dagnostics-slm"
_VERSION = re.compile(rf"^{PREFIX}-v(\d+)\.(\d+)$")
_RESERVE_ATTEMPTS = 3
# training_info["state"] of a row: reserved before training, trained once the directory is complete.
RESERVED = "reserved"
TRAINED = "trained"


class RegistryError(ValueError):
    """A registry request that cannot be honoured (unknown version, promoting an untrained one...)."""


@dataclass(frozen=True)
class VersionRecord:
    """A model version as the store knows it (a plain copy, usable after the session closed)."""

    version: str
    base_model: str
    status: str
    uri: str
    metrics: dict[str, Any]
    training_info: dict[str, Any]
    dataset_version_id: int | None
    created_at: datetime | None
    promoted_at: datetime | None

    @property
    def trained(self) -> bool:
        return self.training_info.get("state") == TRAINED


def _record(row: ModelVersion) -> VersionRecord:
    return VersionRecord(
        version=row.version,
        base_model=row.base_model,
        status=row.status.value,
        uri=row.uri,
        metrics=dict(row.metrics or {}),
        training_info=dict(row.training_info or {}),
        dataset_version_id=row.dataset_version_id,
        created_at=row.created_at,
        promoted_at=row.promoted_at,
    )


def parse_version(version: str) -> tuple[int, int]:
    match = _VERSION.match(version)
    if not match:
        raise RegistryError(f"{version!r} is not a model version name ({PREFIX}-vMAJOR.MINOR)")
    return int(match.group(1)), int(match.group(2))


def is_version_name(text: str) -> bool:
    return bool(_VERSION.match(text))


def format_version(major: int, minor: int) -> str:
    return f"{PREFIX}-v{major}.{minor}"


def next_version(existing: Iterable[tuple[str, str]], base_model: str) -> str:
    """The version after ``existing`` (version, base model) pairs for a run on ``base_model``."""
    numbers = {}
    for version, base in existing:
        if _VERSION.match(version):
            numbers.setdefault(base, []).append(parse_version(version))
    if base_model in numbers:
        major, minor = max(numbers[base_model])
        return format_version(major, minor + 1)
    majors = [major for versions in numbers.values() for major, _ in versions]
    return format_version(max(majors, default=0) + 1, 0)


def run_key(dataset_hash: str, base_model: str, params_fingerprint: str) -> str:
    """What makes two training runs the same run: same data, same base, same parameters."""
    return hashlib.sha256(f"{dataset_hash}\n{base_model}\n{params_fingerprint}".encode()).hexdigest()


def models_root(root: str | artifacts.ArtifactPath | None = None) -> artifacts.ArtifactPath:
    return artifacts.to_path(root) if root is not None else artifacts.models_dir()


def version_dir(version: str, root: str | artifacts.ArtifactPath | None = None) -> artifacts.ArtifactPath:
    parse_version(version)
    return models_root(root) / version


def reserve_version(
    base_model: str,
    key: str,
    *,
    dataset_version_id: int | None = None,
    root: str | artifacts.ArtifactPath | None = None,
) -> VersionRecord:
    """The version for the run ``key``: the one reserved before under the same key, else the next free one."""
    for attempt in range(1, _RESERVE_ATTEMPTS + 1):
        try:
            return _reserve_once(base_model, key, dataset_version_id, root)
        except IntegrityError:  # another run took the same number between our read and our insert
            if attempt == _RESERVE_ATTEMPTS:
                raise
            log.info("Version number taken by a concurrent run; trying again")


def _reserve_once(
    base_model: str, key: str, dataset_version_id: int | None, root: str | artifacts.ArtifactPath | None
) -> VersionRecord:
    with session_scope() as session:
        rows = session.scalars(select(ModelVersion)).all()
        for row in rows:
            if (row.training_info or {}).get("run_key") == key:
                log.info("Run key %s… already has version %s; reusing it", key[:12], row.version)
                return _record(row)
        version = next_version(((r.version, r.base_model) for r in rows), base_model)
        row = ModelVersion(
            version=version,
            base_model=base_model,
            dataset_version_id=dataset_version_id,
            uri=artifacts.to_uri(version_dir(version, root)),
            status=ModelStatus.candidate,
            metrics={},
            training_info={"run_key": key, "state": RESERVED},
        )
        session.add(row)
        session.flush()
        log.info("Reserved model version %s for base %s", version, base_model)
        return _record(row)


def record_trained(version: str, *, uri: str, training_info: dict[str, Any], metrics: dict[str, Any]) -> VersionRecord:
    """Mark a reserved version trained, with where its directory is and what it scored."""
    with session_scope() as session:
        row = _row(session, version)
        key = (row.training_info or {}).get("run_key")
        row.uri = uri
        row.training_info = {**training_info, "run_key": key, "state": TRAINED}
        row.metrics = metrics
        session.flush()
        return _record(row)


def record_metrics(version: str, metrics: dict[str, Any]) -> VersionRecord:
    """Replace a version's evaluation metrics (a re-evaluation, e.g. on a newer validation set)."""
    with session_scope() as session:
        row = _row(session, version)
        row.metrics = metrics
        session.flush()
        return _record(row)


def _row(session: Any, version: str) -> ModelVersion:
    row = session.scalars(select(ModelVersion).where(ModelVersion.version == version)).one_or_none()
    if row is None:
        raise RegistryError(f"no model version {version!r} in the DAGnostics store")
    return row


def get_version(version: str) -> VersionRecord:
    with session_scope() as session:
        return _record(_row(session, version))


def list_versions() -> list[VersionRecord]:
    """Every version, oldest first."""
    with session_scope() as session:
        return [_record(r) for r in session.scalars(select(ModelVersion).order_by(ModelVersion.id)).all()]


def production_version() -> str | None:
    """The version in production (the store is the authority; production.json mirrors it for file readers)."""
    with session_scope() as session:
        row = session.scalars(select(ModelVersion).where(ModelVersion.status == ModelStatus.production)).first()
        return row.version if row else None


def previous_production() -> str | None:
    """The version that was in production just before the current one: the target of a rollback."""
    with session_scope() as session:
        current = session.scalars(select(ModelVersion).where(ModelVersion.status == ModelStatus.production)).first()
        query = select(ModelVersion).where(
            ModelVersion.promoted_at.is_not(None), ModelVersion.status != ModelStatus.production
        )
        if current is not None and current.promoted_at is not None:
            query = query.where(ModelVersion.promoted_at < current.promoted_at)
        row = session.scalars(query.order_by(ModelVersion.promoted_at.desc())).first()
        return row.version if row else None


def promote(version: str, *, root: str | artifacts.ArtifactPath | None = None) -> VersionRecord:
    """Make ``version`` production: the previous production version is retired, production.json rewritten.

    Promoting the current production version again only rewrites production.json. Rollback is
    ``promote(previous_production())``.
    """
    now = datetime.now(timezone.utc)
    with session_scope() as session:
        row = _row(session, version)
        if (row.training_info or {}).get("state") != TRAINED:
            raise RegistryError(f"{version} has not finished training; only trained versions can be promoted")
        previous = None
        if row.status != ModelStatus.production:
            for current in session.scalars(
                select(ModelVersion).where(ModelVersion.status == ModelStatus.production)
            ).all():
                current.status, previous = ModelStatus.retired, current.version
            row.status, row.promoted_at = ModelStatus.production, now
        session.flush()
        record = _record(row)
    _write_production_pointer(record, previous, root)
    log.info("Model version %s is production%s", version, f" (was {previous})" if previous else "")
    return record


def _write_production_pointer(
    record: VersionRecord, previous: str | None, root: str | artifacts.ArtifactPath | None = None
) -> None:
    pointer = {
        "version": record.version,
        "uri": record.uri,
        "base_model": record.base_model,
        "promoted_at": record.promoted_at.isoformat() if record.promoted_at else None,
        "previous": previous,
    }
    with artifacts.atomic_writer(models_root(root) / PRODUCTION_FILE, "w") as out:
        out.write(json.dumps(pointer, indent=2) + "\n")


def read_production_pointer(root: str | artifacts.ArtifactPath | None = None) -> dict[str, Any] | None:
    """production.json as written by :func:`promote`, or None before the first promotion."""
    path = models_root(root) / PRODUCTION_FILE
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def copy_tree(source: artifacts.ArtifactPath, target: artifacts.ArtifactPath, *, last: str | None = None) -> None:
    """Copy every file under ``source`` to ``target``; ``last`` (a file name at the top) is written last."""
    files = [p for p in source.rglob("*") if p.is_file()]
    files.sort(key=lambda p: p.relative_to(source).parts == (last,))  # False sorts first: the marker goes last
    for path in files:
        artifacts.copy_file(path, target.joinpath(*path.relative_to(source).parts))


def publish(local_dir: Path, version: str, root: str | artifacts.ArtifactPath | None = None) -> str:
    """Put a finished version directory under the models dir (a copy when that is remote); returns its URI.

    training_info.json goes last: a directory without it is an incomplete upload.
    """
    target = version_dir(version, root)
    if not (artifacts.is_local(target) and Path(target).resolve() == local_dir.resolve()):
        copy_tree(local_dir, target, last=TRAINING_INFO_FILE)
        log.info("Model version %s uploaded to %s", version, artifacts.to_uri(target))
    return artifacts.to_uri(target)


def local_cache(version: str, purpose: str = "models") -> Path:
    """A stable local folder for a version (the same path on a retry, so training can resume there)."""
    return Path(tempfile.gettempdir()) / f"dagnostics-{purpose}" / version


def local_copy(uri: str) -> Path:
    """A local directory with the version at ``uri``: the directory itself, or a downloaded copy of it."""
    location = artifacts.to_path(uri)
    if artifacts.is_local(location):
        return Path(location)
    cache = local_cache(location.name)
    if cache.exists():
        shutil.rmtree(cache)
    copy_tree(location, cache)
    return cache
