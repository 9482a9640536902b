"""One training run end to end, exactly as ``LoRATrainingOperator`` and ``dagnostics training train-local`` run it.

dataset → reserved version → training (resumable) → evaluation against the base and the production model →
upload → store row. Every step can be repeated: a retried task reuses its reserved version, resumes from the
newest checkpoint, skips training when the version directory is already complete, and returns a version that
finished before without touching it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from dagnostics_provider import artifacts
from dagnostics_provider.training import registry
from dagnostics_provider.training.dataset import INFO_FILE, TRAIN_FILE, VALIDATION_FILE
from dagnostics_provider.training.layout import TRAINING_INFO_FILE, TRANSFORMERS
from dagnostics_provider.training.trainer import TrainingParams

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DatasetRef:
    """The data a version is trained on, and how the registry recognises it."""

    train_file: str
    validation_file: str
    content_hash: str
    version: str | None
    version_id: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def describe_dataset(train_file: str | os.PathLike[str], validation_file: str | os.PathLike[str]) -> DatasetRef:
    """Identify the dataset: the builder's version and hash from its dataset_info.json, else a hash of the files."""
    train, validation = artifacts.to_path(train_file), artifacts.to_path(validation_file)
    info_path = train.parent / INFO_FILE  # the dataset builder's, beside its two files
    version = digest = None
    if info_path.exists():
        info = json.loads(info_path.read_text(encoding="utf-8"))
        version, digest = info.get("version"), info.get("content_hash")
    if not digest:
        sha = hashlib.sha256()
        for path in (train, validation):
            sha.update(path.read_bytes())
        digest = sha.hexdigest()
    return DatasetRef(
        artifacts.to_uri(train), artifacts.to_uri(validation), digest, version, _dataset_version_id(version)
    )


def _dataset_version_id(version: str | None) -> int | None:
    if version is None:
        return None
    from dagnostics_provider.store.datasets import get_dataset_version

    try:
        return get_dataset_version(version).id
    except LookupError:
        return None


def latest_dataset_files() -> tuple[str, str]:
    """The two files of the newest dataset version in the store."""
    from dagnostics_provider.store.datasets import latest_dataset_version

    latest = latest_dataset_version()
    if latest is None:
        raise LookupError("no dataset version in the store yet: run `dagnostics training generate-dataset` first")
    location = artifacts.to_path(latest.uri)
    return artifacts.to_uri(location / TRAIN_FILE), artifacts.to_uri(location / VALIDATION_FILE)


@dataclass(frozen=True)
class TrainedVersion:
    """A trained, evaluated and registered version; :meth:`to_xcom` is what the operator returns."""

    version: str
    uri: str
    metrics: dict[str, Any]
    reused: bool  # it had finished before (a retry or a re-run on unchanged data)

    def to_xcom(self) -> dict[str, Any]:
        return asdict(self)


def _store_metrics(results: dict[str, Any]) -> dict[str, Any]:
    keys = ("fine_tuned", "base", "production", "production_version", "examples", "dataset", "generated_at")
    return {key: results.get(key) for key in keys}


def _finished_locally(work: Path, key: str) -> bool:
    info_path = work / TRAINING_INFO_FILE
    return info_path.exists() and json.loads(info_path.read_text(encoding="utf-8")).get("run_key") == key


def train_version(
    params: TrainingParams,
    train_file: str | None = None,
    validation_file: str | None = None,
    *,
    output_dir: str | None = None,
    resume: bool = True,
    evaluate: bool = True,
    compare_production: bool = True,
    eval_max_new_tokens: int | None = None,
    eval_batch_size: int = 8,
) -> TrainedVersion:
    """Train, evaluate and register a version; see the module docstring.

    ``train_file``/``validation_file`` default to the newest dataset version in the store; ``output_dir``
    replaces ``<artifact root>/models`` as the home of versions and of production.json.
    """
    from accelerate import PartialState

    from dagnostics_provider.training import evaluation, trainer

    if train_file is None or validation_file is None:
        train_file, validation_file = latest_dataset_files()
    dataset = describe_dataset(train_file, validation_file)
    key = registry.run_key(dataset.content_hash, params.model_name, params.fingerprint())
    state = PartialState()
    with state.main_process_first():  # under `accelerate launch` rank 0 reserves, the others find its reservation
        record = registry.reserve_version(
            params.model_name, key, dataset_version_id=dataset.version_id, root=output_dir
        )
    if record.trained:
        log.info("Version %s was already trained on this data with these parameters: %s", record.version, record.uri)
        return TrainedVersion(record.version, record.uri, record.metrics, reused=True)
    target = registry.version_dir(record.version, output_dir)
    work = Path(target) if artifacts.is_local(target) else registry.local_cache(record.version, "training")
    if _finished_locally(work, key):
        log.info("%s already holds the trained version %s; not training again", work, record.version)
    else:
        extra = {"version": record.version, "run_key": key, "dataset": dataset.to_dict()}
        trainer.train(params, dataset.train_file, dataset.validation_file, work, resume=resume, extra_info=extra)
    if not state.is_main_process:
        return TrainedVersion(record.version, record.uri, {}, reused=False)
    metrics: dict[str, Any] = {}
    if evaluate:
        production = registry.production_version() if compare_production else None
        production_dir = None
        if production and production != record.version:
            production_dir = registry.local_copy(registry.get_version(production).uri)
        results = evaluation.evaluate_version(
            work,
            dataset.validation_file,
            production_dir=production_dir,
            production_version=production if production_dir else None,
            max_new_tokens=eval_max_new_tokens,
            batch_size=eval_batch_size,
        )
        metrics = _store_metrics(results)
    uri = registry.publish(work, record.version, output_dir)
    info = json.loads((work / TRAINING_INFO_FILE).read_text(encoding="utf-8"))
    info.get("training", {}).pop("log_history", None)  # in the file and the loss curve; not needed in the store
    registry.record_trained(record.version, uri=uri, training_info=info, metrics=metrics)
    log.info("Model version %s trained and registered at %s", record.version, uri)
    return TrainedVersion(record.version, uri, metrics, reused=False)


def evaluate_model(
    model: str,
    dataset_file: str | None = None,
    *,
    use_registry: bool = True,
    compare_base: bool = True,
    compare_production: bool = True,
    max_new_tokens: int | None = None,
    batch_size: int = 8,
    schema_constrained: bool = False,
    engine: str = TRANSFORMERS,
    quantize: str | None = None,
    convert_script: str | None = None,
) -> dict[str, Any]:
    """Evaluate a version given by name (``dagnostics-slm-vX.Y``), folder or URL; see evaluate_version.

    With ``use_registry`` a version name is looked up in the store, the production version joins the comparison
    and a registered version's metrics are replaced by the new ones. evaluation_results.json is written into the
    version's folder, also when that folder is in object storage.
    """
    from dagnostics_provider.training import evaluation
    from dagnostics_provider.training.layout import EVALUATION_FILE

    location = model
    if use_registry and registry.is_version_name(model) and not Path(model).exists():
        location = registry.get_version(model).uri
    local = registry.local_copy(location)
    version = evaluation.read_training_info(local).get("version")
    production = registry.production_version() if use_registry and compare_production else None
    production_dir = None
    if production and production != version:
        production_dir = registry.local_copy(registry.get_version(production).uri)
    results = evaluation.evaluate_version(
        local,
        dataset_file,
        production_dir=production_dir,
        production_version=production if production_dir else None,
        include_base=compare_base,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        schema_constrained=schema_constrained,
        engine=engine,
        quantize=quantize,
        convert_script=convert_script,
    )
    target = artifacts.to_path(location)
    if not artifacts.is_local(target):
        with artifacts.atomic_writer(target / EVALUATION_FILE, "w") as out:
            out.write((local / EVALUATION_FILE).read_text(encoding="utf-8"))
    if use_registry and version and any(v.version == version for v in registry.list_versions()):
        registry.record_metrics(version, _store_metrics(results))
    return results
