"""The learning benchmark's data: the real-failure corpus as a store of reviewed failures, and held-out references.

The dev split goes through the path a team's data takes (``benchmarks/bench_learning.py``): each log is analysed by
the heuristic analyzer and stored as a failed try, then "reviewed" from its label the way an engineer reviews: an
analysis that already names the labelled root-cause line and category is accepted as is (rating 5); any other is
corrected (rating 4) to the labelled root-cause line, category and severity, with the label's note as reasoning.
The dataset is then generated from those reviews by the project's own ``generate_dataset``.

The held-out split is never stored or reviewed: it becomes a JSONL file in the dataset's row format whose
reference answers are built from the labels the same way, for ``dagnostics training evaluate --dataset``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagnostics_provider import prompt_format
from dagnostics_provider.analysis.extraction import Extraction, extract
from dagnostics_provider.analysis.heuristic import analyze_heuristically
from dagnostics_provider.analysis.schema import MAX_LINE_CHARS, MAX_MESSAGE_CHARS, AnalysisResult

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "real_corpus"
MAX_CONTEXT_CHARS = 6_000  # the analyzer's default context budget


@dataclass(frozen=True)
class LabelledLog:
    label: dict[str, Any]
    extraction: Extraction

    @property
    def id(self) -> str:
        return self.label["id"]


def load_split(split: str, corpus: Path = CORPUS) -> list[LabelledLog]:
    """Every labelled log of ``split`` ("dev" or "heldout"), extracted as the analyzer would."""
    labels = json.loads((corpus / "labels.json").read_text(encoding="utf-8"))
    logs = []
    for label in labels:
        if label["split"] != split:
            continue
        with (corpus / label["file"]).open("rb") as handle:
            extraction = extract(iter(lambda: handle.read(1 << 16), b""), max_context_chars=MAX_CONTEXT_CHARS)
        logs.append(LabelledLog(label, extraction))
    return logs


def root_cause_line(log: LabelledLog) -> str:
    """The log line that holds the labelled root cause: the extractor's candidate or context line containing one
    of the accepted substrings, else the first substring itself."""
    accepted = log.label["root_cause"]
    texts = [c.line.text for c in log.extraction.candidates] + list(log.extraction.error_lines)
    for text in texts:
        if any(fragment in text for fragment in accepted):
            return text.strip()
    return accepted[0]


def names_root_cause(text: str | None, label: dict[str, Any]) -> bool:
    """The grading rule of the accuracy benchmark: a line is right when it contains an accepted substring."""
    return bool(text) and any(fragment in text for fragment in label["root_cause"])


def reference_analysis(log: LabelledLog) -> AnalysisResult:
    """What a reviewer would leave for this log: the labelled line, category and severity, the note as reasoning."""
    heuristic = analyze_heuristically(log.extraction)
    line = root_cause_line(log)
    return AnalysisResult(
        error_message=line[:MAX_MESSAGE_CHARS],
        category=log.label["category"],
        severity=log.label["severity"],
        confidence=0.9,
        reasoning=log.label.get("note") or heuristic.reasoning,
        error_lines=[line[:MAX_LINE_CHARS]],
        suggested_actions=heuristic.suggested_actions,
    )


def review_of(log: LabelledLog) -> tuple[dict[str, Any] | None, int]:
    """(correction or None to accept, rating) as an engineer reviewing the heuristic analysis would submit."""
    heuristic = analyze_heuristically(log.extraction)
    right = names_root_cause(heuristic.error_message, log.label) and heuristic.category == log.label["category"]
    if right and heuristic.severity == log.label["severity"]:
        return None, 5
    return reference_analysis(log).model_dump(), 4


def store_reviewed(
    logs: list[LabelledLog], url: str | None = None, reviewer: str = "corpus-reviewer"
) -> dict[str, int]:
    """Record, analyse and review every log in the store at ``url``; returns corpus id -> failed task id."""
    from datetime import datetime, timedelta, timezone

    from dagnostics_provider.analysis.heuristic import heuristic_outcome
    from dagnostics_provider.store.failures import FailureRecord, record_failure, save_analysis
    from dagnostics_provider.store.reviews import submit_review

    started = datetime(2026, 1, 1, tzinfo=timezone.utc)
    ids = {}
    for index, log in enumerate(logs):
        failed_at = started + timedelta(minutes=index)
        failure_id = record_failure(
            FailureRecord(
                dag_id=log.label["repo"].replace("/", "__")[:200],
                task_id=log.id[:200],
                run_id=f"corpus__{failed_at:%Y%m%dT%H%M}",
                try_number=1,
                end_date=failed_at,
                error_type=log.extraction.exception_type,
            ),
            url,
        )
        save_analysis(
            failure_id,
            heuristic_outcome(log.extraction),
            log_excerpt=log.extraction.context,
            log_reference=log.label.get("provenance"),
            fingerprint=None,
            error_type=log.extraction.exception_type,
            url=url,
        )
        correction, rating = review_of(log)
        submit_review(failure_id, reviewer=reviewer, rating=rating, correction=correction, url=url)
        ids[log.id] = failure_id
    return ids


def write_reference_rows(logs: list[LabelledLog], path: Path) -> Path:
    """A JSONL file in the dataset's row format, ``id`` = the corpus id, answers built from the labels."""
    with path.open("w", encoding="utf-8") as out:
        for log in logs:
            row = prompt_format.training_example(log.extraction.context, reference_analysis(log))
            out.write(json.dumps({"id": log.id, **row}, ensure_ascii=False) + "\n")
    return path
