"""Task logs, whichever way they are fetched, and the byte-stream contract every source keeps.

A source (the REST API hook, the local log folder) yields ``bytes`` chunks that each hold one or more complete
lines ending in ``\\n``: a consumer can split every chunk on newlines without carrying state from one chunk to the
next. Airflow 3 writes one JSON object per line; a plain-text line stays a plain-text line.

Sources never hold a whole log: lines are batched into chunks of about :data:`CHUNK_BYTES`, one line is at most
:data:`MAX_LINE_BYTES` (a longer one is cut into several), and a log stops after ``[dagnostics] max_log_bytes``
with a truncation notice, because a runaway task can write gigabytes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator

log = logging.getLogger(__name__)

CHUNK_BYTES = 64 * 1024
MAX_LINE_BYTES = 1024 * 1024
TRUNCATION_LOGGER = "dagnostics.logs"


class LogUnavailableError(LookupError):
    """No log can be read for a task try: it is missing or empty, or no configured source could deliver it."""


def split_lines(chunks: Iterable[bytes], max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[bytes]:
    """Re-cut arbitrary byte chunks into lines that each end in ``\\n``.

    A line longer than ``max_line_bytes`` is cut into pieces (each given its own ``\\n``) so a log without
    newlines cannot make us buffer it whole; a last line without a newline gets one.
    """
    pending = bytearray()
    for chunk in chunks:
        pending += chunk
        start = 0
        while (end := pending.find(b"\n", start)) != -1:
            yield bytes(pending[start : end + 1])
            start = end + 1
        del pending[:start]
        while len(pending) >= max_line_bytes:
            yield bytes(pending[:max_line_bytes]) + b"\n"
            del pending[:max_line_bytes]
    if pending:
        yield bytes(pending) + b"\n"


def truncation_notice(max_bytes: int) -> bytes:
    """The JSON line that ends a truncated log, shaped like Airflow's structured log lines so parsers keep it."""
    return (
        json.dumps(
            {
                "event": f"DAGnostics truncated this log after {max_bytes} bytes ([dagnostics] max_log_bytes)",
                "level": "warning",
                "logger": TRUNCATION_LOGGER,
            }
        ).encode()
        + b"\n"
    )


def bounded_chunks(lines: Iterator[bytes], max_bytes: int, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    """Batch whole lines into chunks of about ``chunk_bytes`` and stop before ``max_bytes`` with a notice.

    The source iterator is closed on the way out, so an HTTP response or file it holds is released as soon as
    the budget is spent rather than when the garbage collector gets to it.
    """
    batch: list[bytes] = []
    batch_size = 0
    total = 0
    try:
        for line in lines:
            if total + len(line) > max_bytes:
                log.warning("Task log truncated after %d bytes ([dagnostics] max_log_bytes)", total)
                batch.append(truncation_notice(max_bytes))
                break
            batch.append(line)
            batch_size += len(line)
            total += len(line)
            if batch_size >= chunk_bytes:
                yield b"".join(batch)
                batch, batch_size = [], 0
        if batch:
            yield b"".join(batch)
    finally:
        close = getattr(lines, "close", None)
        if close is not None:
            close()
