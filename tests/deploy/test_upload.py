"""Blob uploads stream from disk in chunks and report progress a person can read, without flooding the log."""

from __future__ import annotations

import logging
import os

from dagnostics_provider.deploy.upload import UploadProgress, format_bytes
from dagnostics_provider.hooks.ollama import OllamaHook
from tests.fakes.fake_ollama import FakeOllama

MIB = 1024 * 1024


def test_a_blob_is_streamed_in_chunks_with_progress(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(os.urandom(3 * MIB))
    seen: list[tuple[int, int]] = []
    with FakeOllama() as fake:
        digest = OllamaHook(base_url=fake.url, timeout=10).push_blob(path, progress=lambda *p: seen.append(p))
        assert fake.blobs[digest] == path.read_bytes()
        assert fake.requests[-1].headers["content-length"] == str(3 * MIB)
    sent = [s for s, _ in seen]
    assert sent == sorted(sent) and sent[-1] == 3 * MIB and {t for _, t in seen} == {3 * MIB}
    chunks = [b - a for a, b in zip([0, *sent[:-1]], sent, strict=True)]
    assert len(chunks) > 10 and max(chunks) <= MIB  # never the whole file in memory


def test_progress_is_logged_every_interval_and_at_the_end(caplog):
    now = [100.0]
    progress = UploadProgress("model.safetensors", interval=5.0, clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger="dagnostics_provider.deploy.upload")
    for step in range(1, 11):  # 10 chunks of 100 MiB, one per second
        now[0] += 1.0
        progress(step * 100 * MIB, 1000 * MIB)
    assert caplog.messages == [
        "Uploading model.safetensors: 500.0 MiB of 1000.0 MiB (50%), 100.0 MiB/s",
        "Uploading model.safetensors: 1000.0 MiB of 1000.0 MiB (100%), 100.0 MiB/s",
    ]


def test_format_bytes():
    assert [format_bytes(n) for n in (0, 1023, 1536, 5 * MIB, 3 * 1024 * MIB)] == [
        "0 B",
        "1023 B",
        "1.5 KiB",
        "5.0 MiB",
        "3.0 GiB",
    ]
