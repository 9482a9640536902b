"""The review store: the review queue, review submission, feedback statistics and feedback export.

One package for everything reviewers produce, because the "DAGnostics Feedback" view, its JSON endpoints and the
``dagnostics training feedback-stats`` / ``export-feedback`` commands must agree on what an item, a review and an
"agreement" are.  Everything here is a plain function over the store; nothing knows about Flask.

Each concern has its module: :mod:`.queue` (queue pages, fingerprint groups, neighbours), :mod:`.item` (one item
for the review page), :mod:`.submission` (storing reviews), :mod:`.statistics`, :mod:`.export` and
:mod:`.dag_access` (the DAGs a user may see and review); :mod:`.common` holds what they share.

An *item* of the queue is one failed try shown with its newest analysis.  Its review status comes from its
reviews: none (``unreviewed``), or the newest one accepted the AI analysis unchanged (``accepted``) or changed at
least one field (``corrected``).  Reviews are append-only, so two reviewers of one item both keep theirs and a
reviewer who changes their mind adds a newer review.

The queries are shaped for a store of 100 000 analyses (``benchmarks/bench_review_ui.py``) on SQLite as well as
PostgreSQL, with the indexes of migration 0002: "newest analysis of a failure" is a ``NOT EXISTS`` probe on an
index; a page is picked from index-only columns first and only its 50 wide rows are read afterwards; counts skip
the newest-analysis probe when no analysis field is filtered; review summaries and fingerprint counts are fetched
for the page's rows only.  On SQLite every transaction takes the write lock (see
:mod:`dagnostics_provider.store.engine`), so the export reads in short batches instead of holding one transaction
open while a download streams.
"""

from dagnostics_provider.store.reviews.common import (
    AGREEMENT_FIELDS,
    DEFAULT_MIN_RATING,
    EXPORT_STATUSES,
    REVIEW_FIELDS,
    ItemNotFound,
    QueueSort,
    ReviewForbidden,
    ReviewRejected,
    ReviewStatus,
    changed_fields,
)
from dagnostics_provider.store.reviews.dag_access import ALL_DAGS, DagAccess, DagScope, store_dag_ids
from dagnostics_provider.store.reviews.export import (
    CSV_COLUMNS,
    count_feedback,
    count_feedback_by_rating,
    iter_feedback,
    to_csv,
    to_jsonl,
)
from dagnostics_provider.store.reviews.item import ReviewItem, ReviewRecord, get_review_item
from dagnostics_provider.store.reviews.queue import (
    FingerprintGroup,
    GroupPage,
    Neighbours,
    QueueFilters,
    QueueItem,
    QueuePage,
    distinct_dag_ids,
    list_fingerprint_groups,
    list_queue,
    neighbours,
    next_unreviewed,
)
from dagnostics_provider.store.reviews.statistics import feedback_stats
from dagnostics_provider.store.reviews.submission import SubmittedReview, submit_review

__all__ = [
    "AGREEMENT_FIELDS",
    "ALL_DAGS",
    "CSV_COLUMNS",
    "DEFAULT_MIN_RATING",
    "EXPORT_STATUSES",
    "REVIEW_FIELDS",
    "DagAccess",
    "DagScope",
    "FingerprintGroup",
    "GroupPage",
    "ItemNotFound",
    "Neighbours",
    "QueueFilters",
    "QueueItem",
    "QueuePage",
    "QueueSort",
    "ReviewForbidden",
    "ReviewItem",
    "ReviewRecord",
    "ReviewRejected",
    "ReviewStatus",
    "SubmittedReview",
    "changed_fields",
    "count_feedback",
    "count_feedback_by_rating",
    "distinct_dag_ids",
    "feedback_stats",
    "get_review_item",
    "iter_feedback",
    "list_fingerprint_groups",
    "list_queue",
    "neighbours",
    "next_unreviewed",
    "store_dag_ids",
    "submit_review",
    "to_csv",
    "to_jsonl",
]
