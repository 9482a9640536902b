"""indexes for the review queue, its statistics and the feedback export

The queue reads "the newest analysis of each failed try" with filters on category, severity and confidence,
sorts by failure time or by confidence, groups by fingerprint, and the export looks up how each review came
about.  These indexes let every such query read an index instead of the wide rows (log excerpts, raw LLM
answers): on 100 000 analyses, counting the unreviewed queue drops from ~600 ms to ~85 ms on SQLite and the
"lowest confidence first" page from ~450 ms to under a millisecond (see benchmarks/bench_review_ui.py).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 15:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("analyses", schema=None) as batch_op:
        batch_op.create_index(
            "ix_analyses_queue", ["failed_task_id", "id", "category", "severity", "confidence"], unique=False
        )
        batch_op.create_index("ix_analyses_confidence", ["confidence"], unique=False)
    with op.batch_alter_table("failed_tasks", schema=None) as batch_op:
        batch_op.create_index("ix_failed_tasks_fingerprint_failed_at", ["fingerprint", "failed_at"], unique=False)
    with op.batch_alter_table("review_events", schema=None) as batch_op:
        batch_op.create_index("ix_review_events_review_id", ["review_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("review_events", schema=None) as batch_op:
        batch_op.drop_index("ix_review_events_review_id")
    with op.batch_alter_table("failed_tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_failed_tasks_fingerprint_failed_at")
    with op.batch_alter_table("analyses", schema=None) as batch_op:
        batch_op.drop_index("ix_analyses_confidence")
        batch_op.drop_index("ix_analyses_queue")
