"""Fill a store with analysed failures the way production does, from real task logs of the labelled corpus.

Each log goes through the real extraction and heuristic analysis, and the results are stored with the same
store calls the analyze operator uses, so the review UI is tested on the excerpts, error lines and fingerprints
it will see in production.  One extra failure carries HTML in its log and analysis (logs are attacker-
controlled), and one corpus log is stored twice with different runs so a fingerprint group exists.
:func:`seed_history` adds older, mostly reviewed failures for the api-server tests and their screenshots.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

from dagnostics_provider.analysis.service import analyze_log
from dagnostics_provider.store.failures import FailureRecord, record_failure, save_analysis

CORPUS_LOGS = Path(__file__).resolve().parents[1] / "corpus" / "logs"
SEEDED_LOGS = (
    "af3_json_postgres_refused.log",
    "af3_json_azure_blob_permission_mismatch.log",
    "af3_json_k8s_pod_oomkilled.log",
    "af3_json_execution_timeout.log",
)
REPEATED_LOG = "af3_json_postgres_refused.log"  # stored a second time: a fingerprint group of two
XSS_LINE = "<script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned'\">"
LLM_MODEL = "llama3.2:3b"


@dataclass(frozen=True)
class Seeded:
    failure_ids: list[int]  # in insertion order; the newest failure is last
    group_ids: tuple[int, int]  # the two failures that share a fingerprint
    xss_id: int


def _dag_id(log_name: str) -> str:
    return "etl_" + Path(log_name).stem.split("_", 2)[-1]


def store_failure(url: str, dag_id: str, log_text: str, index: int, *, llm: bool) -> int:
    """Analyse ``log_text`` as the analyze operator does and store it as failed try ``index`` of ``dag_id``."""
    analysis = analyze_log([log_text.encode()], None)
    failed_at = datetime(2026, 11, 20, 8, 0, tzinfo=timezone.utc) + timedelta(hours=index)
    failure_id = record_failure(
        FailureRecord(
            dag_id=dag_id,
            task_id="load",
            run_id=f"scheduled__{failed_at:%Y-%m-%dT%H:%M:%S}+00:00",
            try_number=1,
            operator="PythonOperator",
            end_date=failed_at,
            error_type=analysis.extraction.exception_type,
        ),
        url,
    )
    outcome = analysis.outcome
    if llm:  # as if an LLM had answered: the UI groups agreement by analyzer and model
        outcome = replace(outcome, analyzer="ollama", model=LLM_MODEL, latency_ms=1830)
    save_analysis(
        failure_id,
        outcome,
        log_excerpt=analysis.extraction.context,
        log_reference=f"api:/api/v2/dags/x/dagRuns/y/taskInstances/load/logs/{index}",
        fingerprint=analysis.fingerprint,
        error_type=analysis.extraction.exception_type,
        url=url,
    )
    return failure_id


def seed_store(url: str) -> Seeded:
    """Analyse and store the seeded corpus logs (plus the repeat and the HTML one) into a migrated store."""
    ids = []
    for index, name in enumerate(SEEDED_LOGS):
        ids.append(store_failure(url, _dag_id(name), (CORPUS_LOGS / name).read_text(), index, llm=index % 2 == 0))
    repeat = store_failure(url, _dag_id(REPEATED_LOG), (CORPUS_LOGS / REPEATED_LOG).read_text(), 10, llm=True)
    xss_log = (
        "[2026-11-20T09:00:00] INFO - starting\n"
        f"[2026-11-20T09:00:01] ERROR - {XSS_LINE}\n"
        f"ValueError: bad payload {XSS_LINE}\n"
    )
    xss = store_failure(url, "etl_html_payload", xss_log, 11, llm=False)
    ids += [repeat, xss]
    return Seeded(failure_ids=ids, group_ids=(ids[SEEDED_LOGS.index(REPEATED_LOG)], repeat), xss_id=xss)


def seed_history(url: str, *, count: int = 36, days: int = 30) -> list[int]:
    """Older failures, most of them reviewed over the last ``days`` days by a few reviewers (the screenshots'
    statistics). They failed before the :func:`seed_store` ones, so those stay at the top of the queue."""
    from sqlalchemy import update

    from dagnostics_provider.store.engine import session_scope
    from dagnostics_provider.store.models import Review
    from dagnostics_provider.store.reviews import REVIEW_FIELDS, get_review_item, submit_review

    logs = sorted(path for path in CORPUS_LOGS.glob("af3_json_*.log") if path.name not in SEEDED_LOGS)
    now = datetime.now(timezone.utc)
    ids = []
    for index in range(count):
        path = logs[index % len(logs)]
        failure_id = store_failure(url, _dag_id(path.name), path.read_text(), -24 * (index + 1), llm=index % 3 != 0)
        ids.append(failure_id)
        if index % 4 == 3:
            continue  # left for the queue
        analysis = get_review_item(failure_id, url=url).analysis
        correction = {name: analysis[name] for name in REVIEW_FIELDS}
        if index % 3 == 1:
            correction["category"] = (
                "configuration_error" if analysis["category"] != "configuration_error" else "unknown"
            )
        if index % 5 == 2:
            correction["severity"] = "critical"
        review_id = submit_review(
            failure_id,
            reviewer=("alice", "bob", "chen")[index % 3],
            rating=(5, 4, 2, 4, 3, 5, 4)[index % 7],
            correction=None if index % 3 == 0 else correction,
            url=url,
        ).review_id
        reviewed_at = now - timedelta(days=(index * 7) % days, hours=index % 5)
        with session_scope(url) as session:  # reviews are immutable through the ORM; the seed backdates them
            session.execute(
                update(Review.__table__).where(Review.__table__.c.id == review_id).values(created_at=reviewed_at)
            )
    return ids
