"""one dataset version per content hash: dataset_versions.content_hash becomes unique

Registering a dataset version used to select by hash and insert when nothing was found; two processes building
the same content at the same moment both found nothing and both inserted, so a store can already hold several
rows for one hash.  Before the unique index can exist they are merged into the oldest row of each hash (the
lowest id, the one ``dataset_version_by_hash`` has always returned):

* every foreign key to ``dataset_versions`` (found by reflection; ``model_versions.dataset_version_id`` in the
  0001 schema) is re-pointed at it, so no model version loses its dataset;
* it keeps the newest ``last_review_id`` of the group (the newest review any of those builds read);
* the removed rows' version, uri, creation time and ``last_review_id`` are listed in its ``info`` under
  ``merged_duplicates``, so the version names found in old dataset_info.json files and logs can be traced.

The downgrade restores the non-unique index; merged rows are not split again.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 10:00:00
"""

from __future__ import annotations

from itertools import groupby
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UNIQUE_INDEX = "uq_dataset_versions_content_hash"
OLD_INDEX = "ix_dataset_versions_content_hash"

dataset_versions = sa.table(
    "dataset_versions",
    sa.column("id", sa.BigInteger()),
    sa.column("version", sa.String(64)),
    sa.column("uri", sa.Text()),
    sa.column("content_hash", sa.String(64)),
    sa.column("info", sa.JSON()),
    sa.column("last_review_id", sa.BigInteger()),
    sa.column("created_at", sa.DateTime(timezone=True)),
)


def _references(bind: sa.engine.Connection) -> list[tuple[str, str]]:
    """(table, column) of every single-column foreign key to ``dataset_versions.id``."""
    inspector = sa.inspect(bind)
    found = []
    for table in inspector.get_table_names():
        for fk in inspector.get_foreign_keys(table):
            if fk["referred_table"] == "dataset_versions":
                assert fk["referred_columns"] == ["id"] and len(fk["constrained_columns"]) == 1, fk
                found.append((table, fk["constrained_columns"][0]))
    return found


def _merged(row: Any) -> dict[str, Any]:
    created = row.created_at
    return {
        "id": row.id,
        "version": row.version,
        "uri": row.uri,
        "created_at": created.isoformat() if created is not None else None,
        "last_review_id": row.last_review_id,
    }


def _merge_duplicates() -> None:
    bind = op.get_bind()
    t = dataset_versions
    duplicated = (
        sa.select(t.c.content_hash).group_by(t.c.content_hash).having(sa.func.count(t.c.id) > 1).scalar_subquery()
    )
    rows = bind.execute(sa.select(t).where(t.c.content_hash.in_(duplicated)).order_by(t.c.content_hash, t.c.id)).all()
    if not rows:
        return
    references = _references(bind)
    for _, group in groupby(rows, key=lambda r: r.content_hash):
        keep, *removed = list(group)
        removed_ids = [r.id for r in removed]
        for table, column in references:
            ref = sa.table(table, sa.column(column, sa.BigInteger()))
            bind.execute(sa.update(ref).where(ref.c[column].in_(removed_ids)).values({column: keep.id}))
        review_ids = [r.last_review_id for r in (keep, *removed) if r.last_review_id is not None]
        info = dict(keep.info or {})
        info["merged_duplicates"] = list(info.get("merged_duplicates", [])) + [_merged(r) for r in removed]
        bind.execute(
            sa.update(t)
            .where(t.c.id == keep.id)
            .values(info=info, last_review_id=max(review_ids) if review_ids else None)
        )
        bind.execute(sa.delete(t).where(t.c.id.in_(removed_ids)))


def upgrade() -> None:
    _merge_duplicates()
    with op.batch_alter_table("dataset_versions", schema=None) as batch_op:
        batch_op.drop_index(OLD_INDEX)
        batch_op.create_index(UNIQUE_INDEX, ["content_hash"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("dataset_versions", schema=None) as batch_op:
        batch_op.drop_index(UNIQUE_INDEX)
        batch_op.create_index(OLD_INDEX, ["content_hash"], unique=False)
