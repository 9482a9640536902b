"""Where DAGnostics keeps the files it produces: training datasets, models, evaluation results.

Everything lives under one root, ``[dagnostics] artifact_root``: a local folder (default
``$AIRFLOW_HOME/dagnostics``) or an object storage URL.  URLs become Airflow ``ObjectStoragePath`` objects, so
``s3://aws_conn@bucket/dagnostics`` reads and writes with the Airflow connection ``aws_conn`` and the dataset a task
wrote on one worker is there for the training task on another.  A scheme no Airflow provider registers
(``memory://``, or ``gs://`` with gcsfs installed but not the Google provider) is opened with plain fsspec and the
filesystem's own credentials.  Local paths stay ``pathlib.Path``: both types offer the same path API.

Writes are atomic per file: :func:`atomic_writer` writes to a hidden temporary name next to the target and
renames it into place only after the last byte is written, so a crash never leaves a half file under the real
name.  A set of files (a dataset, a model) is committed by writing its manifest last; readers treat a folder
without its manifest as incomplete.  On object stores the rename is a server-side copy and delete.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, TYPE_CHECKING, Union

from dagnostics_provider import config

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

ArtifactPath = Union[Path, "ObjectStoragePath"]

DATASETS_DIR = ("data", "training")
MODELS_DIR = ("models",)


def _object_storage_path(url: str) -> ObjectStoragePath:
    try:
        from airflow.sdk import ObjectStoragePath
        from airflow.sdk.io import attach, has_fs
    except ImportError:  # Airflow 3.0 layout
        from airflow.io import attach, has_fs
        from airflow.io.path import ObjectStoragePath

    path = ObjectStoragePath(url)
    if not has_fs(path.protocol):
        # Not registered by any provider: let fsspec open it (raises ValueError for an unknown protocol).
        import fsspec

        attach(path.protocol, fs=fsspec.filesystem(path.protocol))
    return path


def to_path(location: str | os.PathLike[str] | ArtifactPath) -> ArtifactPath:
    """A path object for a local path, a ``file://`` URI or an object storage URL (as stored in the registry)."""
    if not isinstance(location, (str, os.PathLike)):
        return location  # already an ObjectStoragePath
    text = os.fspath(location)
    if text.startswith("file://"):
        return Path(text[len("file://") :])
    if "://" in text:
        return _object_storage_path(text)
    return Path(text).expanduser()


def to_uri(path: ArtifactPath) -> str:
    """How a path is recorded (XCom, the store): an absolute local path, or the object storage URL."""
    if isinstance(path, Path):
        return str(path.resolve())
    return str(path)


def is_local(path: ArtifactPath) -> bool:
    return isinstance(path, Path)


def artifact_root() -> ArtifactPath:
    configured = config.get("artifact_root").strip()
    return to_path(configured) if configured else config.airflow_home() / "dagnostics"


def artifact_path(*parts: str) -> ArtifactPath:
    """A path under the artifact root."""
    return artifact_root().joinpath(*parts)


def datasets_dir() -> ArtifactPath:
    """Default home of training datasets, ``<artifact root>/data/training``; each version gets a folder in it."""
    return artifact_path(*DATASETS_DIR)


def models_dir() -> ArtifactPath:
    """Home of fine-tuned models, ``<artifact root>/models``."""
    return artifact_path(*MODELS_DIR)


@contextmanager
def atomic_writer(path: ArtifactPath, mode: str = "wb") -> Iterator[IO]:
    """Open ``path`` for writing (``"wb"`` or ``"w"``, UTF-8) so that it appears complete or not at all.

    A local parent folder is created.  On an error inside the block the temporary file is removed and ``path`` is
    left as it was.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_writer writes new files only (mode 'wb' or 'w'), not {mode!r}")
    text = {"encoding": "utf-8", "newline": "\n"} if mode == "w" else {}
    if is_local(path):
        path.parent.mkdir(parents=True, exist_ok=True)  # object stores have no folders to create
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        if is_local(path):
            with open(temporary, mode, **text) as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())  # the data is on disk before the name points at it
            os.replace(temporary, path)
        else:
            with temporary.open(mode, **text) as handle:
                yield handle
            temporary.fs.mv(temporary.path, path.path)
    except BaseException:
        _remove_quietly(temporary)
        raise


def copy_file(source: ArtifactPath | Path, target: ArtifactPath) -> None:
    """Copy one file, local or in object storage, to ``target`` atomically, streaming 1 MiB at a time."""
    with source.open("rb") as data, atomic_writer(target) as out:
        shutil.copyfileobj(data, out, 1 << 20)


def _remove_quietly(path: ArtifactPath) -> None:
    with suppress(Exception):  # cleanup must never hide the error that caused it
        if path.exists():
            path.unlink()
