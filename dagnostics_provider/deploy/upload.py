"""Uploading a bundle's files to Ollama as blobs, with progress people can follow.

Each file is hashed, offered with ``HEAD`` first (an unchanged base or tokenizer is not sent twice) and streamed
from disk (:meth:`OllamaHook.push_blob`), so memory stays flat for multi-GB weights. Progress goes through
logging, which the Airflow task log and the CLI's stderr both show: bytes, percent and throughput, at most every
few seconds so a large upload does not flood the log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from dagnostics_provider.hooks.ollama import OllamaHook

log = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 5.0
_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def format_bytes(count: float) -> str:
    for unit in _UNITS:
        if count < 1024 or unit == _UNITS[-1]:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


class UploadProgress:
    """A ``progress(sent, total)`` callback logging one file's upload every few seconds and when it is done."""

    def __init__(
        self, name: str, *, interval: float = PROGRESS_INTERVAL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.name = name
        self._interval = interval
        self._clock = clock
        self._started = clock()
        self._last_logged = self._started

    def __call__(self, sent: int, total: int) -> None:
        now = self._clock()
        if sent < total and now - self._last_logged < self._interval:
            return
        self._last_logged = now
        elapsed = max(now - self._started, 1e-6)
        log.info(
            "Uploading %s: %s of %s (%.0f%%), %s/s",
            self.name,
            format_bytes(sent),
            format_bytes(total),
            100 * sent / total if total else 100,
            format_bytes(sent / elapsed),
        )


def upload_files(hook: OllamaHook, directory: Path, names: tuple[str, ...]) -> dict[str, str]:
    """Push every named file in ``directory``; return ``{name: digest}`` for ``/api/create``'s ``files``."""
    total = sum((directory / name).stat().st_size for name in names)
    log.info("Uploading %d file(s), %s, to Ollama at %s", len(names), format_bytes(total), hook.base_url)
    return {name: hook.push_blob(directory / name, progress=UploadProgress(name)) for name in names}
