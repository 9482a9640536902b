"""``dagnostics failures``: what the listener recorded and what the analyses said, from a terminal."""

from __future__ import annotations

import argparse
import json

from sqlalchemy import select
from sqlalchemy.orm import selectinload


def _list(args: argparse.Namespace) -> int:
    from dagnostics_provider.store.engine import session_scope
    from dagnostics_provider.store.models import FailedTask

    with session_scope() as session:
        query = select(FailedTask).options(selectinload(FailedTask.analyses)).order_by(FailedTask.id.desc())
        if args.dag_id:
            query = query.where(FailedTask.dag_id == args.dag_id)
        rows = session.scalars(query.limit(args.limit)).all()
        records = []
        for failure in rows:
            latest = failure.analyses[-1] if failure.analyses else None
            records.append(
                {
                    "id": failure.id,
                    "dag_id": failure.dag_id,
                    "task_id": failure.task_id,
                    "run_id": failure.run_id,
                    "map_index": failure.map_index,
                    "try_number": failure.try_number,
                    "failed_at": failure.failed_at.isoformat() if failure.failed_at else None,
                    "status": failure.status.value,
                    "fingerprint": failure.fingerprint,
                    "analyzer": latest.analyzer if latest else None,
                    "model": latest.model if latest else None,
                    "fallback_reason": latest.fallback_reason if latest else None,
                    "category": latest.category.value if latest else None,
                    "severity": latest.severity.value if latest else None,
                    "confidence": latest.confidence if latest else None,
                    "error_message": latest.error_message if latest else None,
                }
            )
    if args.format == "json":
        print(json.dumps(records, ensure_ascii=False), file=args.out)
        return 0
    if not records:
        print("No failed tasks recorded yet.", file=args.out)
        return 0
    for r in records:
        task = f"{r['dag_id']}.{r['task_id']}" + (f"[{r['map_index']}]" if r["map_index"] >= 0 else "")
        print(f"#{r['id']} {task} try {r['try_number']} ({r['run_id']}) {r['status']}", file=args.out)
        if r["analyzer"]:
            verdict = f"{r['category']}/{r['severity']} {r['confidence']:.2f} [{r['analyzer']}]"
            print(f"    {verdict} {r['error_message'][:160]}", file=args.out)
    return 0


def register(groups: argparse._SubParsersAction) -> None:
    failures = groups.add_parser("failures", help="list recorded failed tasks and their latest analyses")
    verbs = failures.add_subparsers(dest="failures_command", required=True, metavar="VERB")
    listing = verbs.add_parser("list", help="newest failures first")
    listing.add_argument("--dag-id", help="only this DAG")
    listing.add_argument("--limit", type=int, default=20, help="how many (default: 20)")
    listing.add_argument("--format", choices=("text", "json"), default="text")
    listing.set_defaults(handler=_list)
