"""``AnalyzeFailuresOperator``: analyse the failed tasks the listener recorded, in batches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator


class AnalyzeFailuresOperator(BaseOperator):
    """Analyse pending failures: fetch each log, extract the root cause, ask the LLM (or fall back to heuristics).

    Each failure is analysed once; ``dagnostics analyze`` or :func:`request_reanalysis` puts one back in the
    queue. A failure whose analysis raises is kept with status ``analysis_failed`` and the reason, and the batch
    goes on. The work lives in :mod:`dagnostics_provider.analysis.service`; this operator only runs it.

    :param batch_size: failures taken from the queue per batch.
    :param max_batches: stop after this many batches (None: until the queue is empty), so one run stays short.
    :param llm_provider: ``ollama``, ``openai``, ``llamacpp`` or ``heuristic``; default ``[dagnostics] llm_provider``.
    """

    template_fields: Sequence[str] = ("batch_size", "max_batches", "llm_provider")
    ui_color = "#f3e5f5"

    def __init__(
        self,
        *,
        batch_size: int = 25,
        max_batches: int | None = 4,
        llm_provider: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.batch_size = batch_size
        self.max_batches = max_batches
        self.llm_provider = llm_provider

    def execute(self, context: Any) -> dict[str, Any]:
        from dagnostics_provider.analysis.service import analyze_pending

        summary = analyze_pending(
            batch_size=int(self.batch_size),
            max_batches=None if self.max_batches is None else int(self.max_batches),
            provider=self.llm_provider,
        )
        self.log.info(
            "DAGnostics analysed %d failure(s): %d by the LLM, %d by heuristics, %d failed; %d still pending",
            summary["analyzed"],
            summary["by_llm"],
            summary["by_heuristic"],
            summary["failed"],
            summary["pending"],
        )
        return summary
