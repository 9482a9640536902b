"""The "DAGnostics Feedback" view: review queue, review page, statistics, export and their JSON endpoints.

Served by the FAB provider's ``/pluginsv2`` app under ``/pluginsv2/dagnostics/``.  Every route goes through
:func:`_guarded`, which resolves the Airflow login from the JWT (see :mod:`.auth`), checks the route's permission
and, for changes made from a browser session, the CSRF token (see :mod:`.csrf`).  The view never writes
``flask.session``: that cookie belongs to the FAB login.  Everything the store returns reaches the page through
Jinja's autoescaping, and a Content-Security-Policy allows only this view's own scripts and styles, so a log
line such as ``<script>`` is shown as text and could not run even if it were not escaped.

Routes (relative to ``/pluginsv2/dagnostics``)::

    GET  /                       review queue (filters, sorts, grouping by fingerprint)       read
    GET  /review/<id>            review page                                                  read
    POST /review/<id>            submit a correction or accept the AI analysis (form)         review + CSRF
    GET  /next                   go to the next unreviewed item                               read
    GET  /stats                  statistics                                                   read
    GET  /export                 export form                                                  read
    GET  /diagnosis              one task instance's diagnosis (the Airflow "Diagnosis" tab)   read
    GET  /api/queue              the queue as JSON                                          read
    GET  /api/diagnosis          one task instance's diagnosis as JSON                      read
    GET  /api/feedback/stats     statistics as JSON (the guide's feedback/stats)            read
    GET  /api/feedback/export    reviewed feedback as JSONL or CSV (download)              read
    POST /api/reviews            submit a review as JSON                                   review (+ CSRF with cookies)
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from flask import Response, jsonify, redirect, render_template, request, url_for
from flask_appbuilder import BaseView, expose
from sqlalchemy.exc import SQLAlchemyError

from dagnostics_provider import __version__, links
from dagnostics_provider.analysis.schema import CATEGORIES, CATEGORY_DEFINITIONS, CATEGORY_EXAMPLES, SEVERITIES
from dagnostics_provider.compat import external_view_arg
from dagnostics_provider.plugins.views import csrf
from dagnostics_provider.plugins.views.auth import Principal, dag_access, login_url, resolve_principal
from dagnostics_provider.plugins.views.charts import column_chart
from dagnostics_provider.plugins.views.diff import field_diffs
from dagnostics_provider.plugins.views.forms import correction_from_form, form_values
from dagnostics_provider.plugins.views.log_panel import panel_lines
from dagnostics_provider.plugins.views.params import (
    QueueQuery,
    item_link_params,
    json_flag,
    json_row_id,
    parse_export_query,
    parse_queue_query,
)
from dagnostics_provider.plugins.views.permissions import (
    RESOURCE_NAME,
    VIEW_ACTIONS,
    is_fab_security_manager,
    sync_fab_permissions,
)
from dagnostics_provider.store import reviews
from dagnostics_provider.store.diagnosis import Diagnosis, DiagnosisState, TaskInstanceRef, task_diagnosis
from dagnostics_provider.store.engine import resolve_url

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
READ, REVIEW = "read", "review"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'self'"
)
REVIEW_STATUSES = tuple(status.value for status in reviews.ReviewStatus)


def _wants_json() -> bool:
    """The JSON endpoints are the view methods named ``api_*``; they answer errors in JSON too."""
    return (request.endpoint or "").rpartition(".")[2].startswith("api_")


def _refuse(status: int, message: str, principal: Principal | None = None) -> Response:
    if _wants_json():
        response = jsonify({"error": message})
        response.status_code = status
        return response
    html = render_template("dagnostics/error.html", status=status, message=message, principal=principal)
    return Response(html, status=status, mimetype="text/html")


def _guarded(permission: str) -> Callable:
    """Require an Airflow login with ``permission``; POSTs from a browser session also need the CSRF token."""

    def decorate(method: Callable) -> Callable:
        @functools.wraps(method)
        def wrapper(self: DagnosticsFeedbackView, *args: Any, **kwargs: Any) -> Any:
            principal = resolve_principal(request.headers, request.cookies)
            if principal is None:
                if request.method == "GET" and not _wants_json():
                    return redirect(login_url(request.script_root + request.full_path.rstrip("?")))
                return _refuse(401, "Log in to Airflow first (or send an Authorization: Bearer token).")
            allowed = principal.can_review if permission == REVIEW else principal.can_read
            if not allowed:
                needed = f"can_edit on {RESOURCE_NAME}" if permission == REVIEW else f"can_read on {RESOURCE_NAME}"
                return _refuse(403, f"Your Airflow role does not allow this ({needed}).", principal)
            if request.method == "POST" and principal.from_cookie:
                presented = request.headers.get(csrf.HEADER) or request.form.get(csrf.FORM_FIELD)
                if not csrf.is_valid(principal.token, presented):
                    return _refuse(
                        403,
                        "The form's security token is missing or out of date (did you log in again?). "
                        "Reload the page and submit again.",
                        principal,
                    )
            # The DAGs this user may see and review, over those with failures in the store (see .auth).
            principal = replace(principal, dags=dag_access(principal, reviews.store_dag_ids(resolve_url())))
            return method(self, principal, *args, **kwargs)

        return wrapper

    return decorate


def _queue_query(principal: Principal) -> QueueQuery:
    """The queue the request asks for, limited to the DAGs the user may read (never widened by a parameter)."""
    query = parse_queue_query(request.args)
    return replace(query, filters=replace(query.filters, dag_ids=principal.dags.readable))


def _task_instance_url(failure: dict[str, Any]) -> str:
    """The failed try in Airflow's own UI (under ``[api] base_url``)."""
    return links.task_log_url(
        failure["dag_id"], failure["run_id"], failure["task_id"], failure["map_index"], failure["try_number"]
    )


def _log_context(failure: dict[str, Any]) -> str | None:
    """What the analysis was made from: the extracted excerpt, else the listener's error text."""
    return failure["log_excerpt"] if failure["log_excerpt"] is not None else failure["error_text"]


def _task_instance_query() -> tuple[TaskInstanceRef | None, int | None, str | None]:
    """The task instance (and optional try) a Diagnosis request names, or the reason it names none.

    The Diagnosis tab's href gets the ids from Airflow's UI placeholders, filled differently by Airflow version
    (see :func:`dagnostics_provider.compat.external_view_arg`); ``{MAP_INDEX}`` stays unfilled for a task that is
    not mapped, which means ``-1``.
    """
    names = ("dag_id", "run_id", "task_id")
    values = {name: (external_view_arg(request.args.get(name), f"{{{name.upper()}}}") or "").strip() for name in names}
    missing = [name for name in names if not values[name]]
    if missing:
        return None, None, f"give {', '.join(missing)} (and map_index for a mapped task) of the task instance"
    raw_map_index = (external_view_arg(request.args.get("map_index"), "{MAP_INDEX}") or "").strip()
    map_index = -1 if not raw_map_index else _as_int(raw_map_index)
    try_number = _as_int(request.args.get("try_number")) if request.args.get("try_number") else None
    if map_index is None or map_index < -1 or (request.args.get("try_number") and (try_number or 0) < 1):
        return None, None, "map_index must be an integer >= -1 and try_number a positive integer"
    return TaskInstanceRef(map_index=map_index, **values), try_number, None


def _as_int(value: str | None) -> int | None:
    try:
        return int(value or "")
    except ValueError:
        return None


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat()
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    return value


class DagnosticsFeedbackView(BaseView):
    """Review and correct failed-task analyses inside Airflow; every correction becomes training data."""

    route_base = "/dagnostics"
    default_view = "queue"
    template_folder = str(HERE / "templates")
    class_permission_name = RESOURCE_NAME
    base_permissions = list(VIEW_ACTIONS)

    _permissions_lock = threading.Lock()
    _permissions_synced = False

    def create_blueprint(self, appbuilder: Any, endpoint: str | None = None, static_folder: str | None = None):
        """Register the routes with this package's static files and its own CSRF scheme.

        FAB registers plugin views without a static folder, and the FAB provider's Flask-WTF protection would
        demand a token kept in Flask's session, which this view must not write (see :mod:`.csrf`).
        """
        from airflow.providers.fab.www.app import csrf as flask_wtf_csrf

        blueprint = super().create_blueprint(appbuilder, endpoint=endpoint, static_folder=str(HERE / "static"))
        flask_wtf_csrf.exempt(blueprint)
        blueprint.before_request(self._ensure_permissions)
        blueprint.after_request(_security_headers)
        blueprint.register_error_handler(SQLAlchemyError, _store_unavailable)
        blueprint.register_error_handler(reviews.ItemNotFound, lambda exc: _refuse(404, str(exc)))
        blueprint.register_error_handler(Exception, _unexpected)
        return blueprint

    def _ensure_permissions(self) -> None:
        """Create the FAB permissions and the reviewer role once per process, on the first request.

        Not at registration: the FAB provider also registers plugin views inside every ``airflow users …`` and
        ``airflow roles …`` command, and FAB's own role sync is not safe against another process granting
        permissions at the same moment (a fresh installation starting its api-server while creating users).
        Like FAB's own views, only with ``[fab] update_fab_perms`` on; otherwise ``dagnostics roles sync``.
        """
        if DagnosticsFeedbackView._permissions_synced:
            return
        with DagnosticsFeedbackView._permissions_lock:
            if DagnosticsFeedbackView._permissions_synced:
                return
            from airflow.configuration import conf

            security_manager = getattr(self.appbuilder, "sm", None)
            if is_fab_security_manager(security_manager) and conf.getboolean("fab", "update_fab_perms", fallback=True):
                try:
                    for change in sync_fab_permissions(security_manager):
                        log.info("DAGnostics Feedback permissions: %s", change)
                except Exception:
                    log.exception("Could not create the DAGnostics Feedback permissions; run `dagnostics roles sync`")
                    return  # tried again on the next request
            DagnosticsFeedbackView._permissions_synced = True

    def _render(self, template: str, principal: Principal, page: str, status: int = 200, **context: Any) -> Response:
        html = render_template(
            f"dagnostics/{template}",
            principal=principal,
            page=page,
            csrf_token=csrf.csrf_token(principal.token) if principal.from_cookie else "",
            version=__version__,
            categories=CATEGORIES,
            category_definitions=CATEGORY_DEFINITIONS,
            category_examples=CATEGORY_EXAMPLES,
            severities=SEVERITIES,
            statuses=REVIEW_STATUSES,
            **context,
        )
        return Response(html, status=status, mimetype="text/html")

    # -------------------------------------------------------------------------------------------- queue

    @expose("/")
    @_guarded(READ)
    def queue(self, principal: Principal) -> Response:
        query = _queue_query(principal)
        url = resolve_url()
        context: dict[str, Any] = {"query": query, "link_params": item_link_params(query), "notice": None}
        if query.grouped:
            context["groups"] = reviews.list_fingerprint_groups(query.filters, page=query.page, url=url)
        else:
            context["result"] = reviews.list_queue(query.filters, sort=query.sort, page=query.page, url=url)
        if request.args.get("notice") == "none-left":
            context["notice"] = "Nothing left to review with these filters."
        return self._render(
            "queue.html",
            principal,
            "queue",
            dag_ids=reviews.distinct_dag_ids(url=url, dag_ids=principal.dags.readable),
            **context,
        )

    @expose("/next")
    @_guarded(READ)
    def next_unreviewed(self, principal: Principal) -> Response:
        query = _queue_query(principal)
        after = _as_int(request.args.get("after"))
        target = reviews.next_unreviewed(query.filters, sort=query.sort, after_id=after, url=resolve_url())
        if target is None:
            return redirect(url_for(".queue", **item_link_params(query), notice="none-left"))
        return redirect(url_for(".review", failure_id=target, **item_link_params(query)))

    @expose("/api/queue")
    @_guarded(READ)
    def api_queue(self, principal: Principal) -> Response:
        query = _queue_query(principal)
        if query.problems:
            return _refuse(400, "; ".join(query.problems))
        url = resolve_url()
        if query.grouped:
            groups = reviews.list_fingerprint_groups(query.filters, page=query.page, url=url)
            return jsonify(_jsonable({**asdict(groups), "pages": groups.pages}))
        result = reviews.list_queue(query.filters, sort=query.sort, page=query.page, url=url)
        items = [{**asdict(item), "status": item.status.value} for item in result.items]
        return jsonify(_jsonable({"items": items, "total": result.total, "page": result.page, "pages": result.pages}))

    # -------------------------------------------------------------------------------------------- one item

    @expose("/review/<int:failure_id>")
    @_guarded(READ)
    def review(self, principal: Principal, failure_id: int) -> Response:
        item = reviews.get_review_item(failure_id, url=resolve_url(), dag_ids=principal.dags.readable)
        submitted = _as_int(request.args.get("submitted"))
        return self._review_page(principal, item, _queue_query(principal), submitted)

    @expose("/review/<int:failure_id>", methods=["POST"])
    @_guarded(REVIEW)
    def submit(self, principal: Principal, failure_id: int) -> Response:
        query = _queue_query(principal)
        url = resolve_url()
        accept = request.form.get("action") == "accept"
        try:
            submitted = reviews.submit_review(
                failure_id,
                reviewer=principal.name,
                rating=request.form.get("rating") or ("5" if accept else ""),
                correction=None if accept else correction_from_form(request.form),
                analysis_id=_as_int(request.form.get("analysis_id")),
                comment=request.form.get("comment"),
                apply_to_group=request.form.get("apply_to_group") == "on",
                access=principal.dags,
                url=url,
            )
        except (reviews.ReviewRejected, reviews.ReviewForbidden) as exc:
            status = 403 if isinstance(exc, reviews.ReviewForbidden) else 400
            item = reviews.get_review_item(failure_id, url=url, dag_ids=principal.dags.readable)
            return self._review_page(principal, item, query, None, error=str(exc), form=request.form, status=status)
        target = url_for(".review", failure_id=failure_id, submitted=submitted.review_id, **item_link_params(query))
        return redirect(target, code=303)

    def _review_page(
        self,
        principal: Principal,
        item: reviews.ReviewItem,
        query: QueueQuery,
        submitted_id: int | None,
        *,
        error: str | None = None,
        form: Any = None,
        status: int = 200,
    ) -> Response:
        ai_values = {name: item.analysis[name] for name in reviews.REVIEW_FIELDS}
        submitted = next((r for r in item.reviews if r.id == submitted_id), None)
        # Right after a submit the form holds what was saved, not the AI's values again: showing those under the
        # saved diff invited a second, contradicting submission.
        saved = (
            {**form_values(submitted.values), "rating": str(submitted.rating), "comment": submitted.comment or ""}
            if submitted
            else {}
        )
        values = {**form_values(ai_values), **saved, **(form.to_dict() if form is not None else {})}
        selected = values["error_lines"].splitlines()
        context = _log_context(item.failure)
        nav = reviews.neighbours(item.failure["id"], query.filters, sort=query.sort, url=resolve_url())
        return self._render(
            "review.html",
            principal,
            "review",
            status=status,
            item=item,
            query=query,
            link_params=item_link_params(query),
            nav=nav,
            lines=panel_lines(context, item.analysis["error_lines"], selected),
            ai_values=form_values(ai_values),
            values=values,
            error=error,
            submitted=submitted,
            submitted_diffs=field_diffs(submitted.suggestion, submitted.values) if submitted else None,
            review_diffs={r.id: field_diffs(r.suggestion, r.values) for r in item.reviews},
            airflow_url=_task_instance_url(item.failure),
            may_review=principal.can_review and principal.dags.may_edit(item.failure["dag_id"]),
        )

    @expose("/api/reviews", methods=["POST"])
    @_guarded(REVIEW)
    def api_submit(self, principal: Principal) -> Response:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return _refuse(400, "send a JSON object with failed_task_id (int), rating and correction or accept")
        try:
            failure_id = json_row_id(body, "failed_task_id", required=True)
            analysis_id = json_row_id(body, "analysis_id")
            accept, apply_to_group = json_flag(body, "accept"), json_flag(body, "apply_to_group")
        except ValueError as exc:
            return _refuse(400, str(exc))
        correction = body.get("correction")
        if not accept and not isinstance(correction, dict):
            return _refuse(400, 'give "correction" (every field of the analysis) or "accept": true')
        try:
            submitted = reviews.submit_review(
                failure_id,
                reviewer=principal.name,
                rating=body.get("rating", 5 if accept else None),
                correction=None if accept else correction,
                analysis_id=analysis_id,
                comment=body.get("comment"),
                apply_to_group=apply_to_group,
                access=principal.dags,
                url=resolve_url(),
            )
        except reviews.ReviewRejected as exc:
            return _refuse(400, str(exc))
        except reviews.ReviewForbidden as exc:
            return _refuse(403, str(exc))
        response = jsonify(asdict(submitted))
        response.status_code = 201
        return response

    # -------------------------------------------------------------------------------------------- diagnosis

    @expose("/diagnosis")
    @_guarded(READ)
    def diagnosis(self, principal: Principal) -> Response:
        """The compact diagnosis of one task instance: what Airflow's "Diagnosis" tab shows in its frame."""
        ref, try_number, problem = _task_instance_query()
        if ref is None:
            return _refuse(400, problem or "bad request", principal)
        found = task_diagnosis(ref, try_number, url=resolve_url(), dag_ids=principal.dags.readable)
        item = found.item
        context: dict[str, Any] = {"d": found, "states": DiagnosisState, "now": datetime.now(timezone.utc)}
        if item is not None:
            review = item.reviews[0] if item.reviews else None
            context.update(
                a=item.analysis,
                review=review,
                review_diffs=field_diffs(review.suggestion, review.values) if review else [],
                lines=panel_lines(
                    _log_context(item.failure),
                    item.analysis["error_lines"],
                    review.values["error_lines"] if review else item.analysis["error_lines"],
                ),
                log_url=_task_instance_url(item.failure),
            )
        return self._render("diagnosis.html", principal, "diagnosis", **context)

    @expose("/api/diagnosis")
    @_guarded(READ)
    def api_diagnosis(self, principal: Principal) -> Response:
        ref, try_number, problem = _task_instance_query()
        if ref is None:
            return _refuse(400, problem or "bad request")
        found = task_diagnosis(ref, try_number, url=resolve_url(), dag_ids=principal.dags.readable)
        return jsonify(_jsonable(_diagnosis_json(found)))

    # -------------------------------------------------------------------------------------------- statistics

    @expose("/stats")
    @_guarded(READ)
    def stats(self, principal: Principal) -> Response:
        stats = reviews.feedback_stats(url=resolve_url(), dag_ids=principal.dags.readable)
        histogram = column_chart([(f"{r}★", n) for r, n in stats["rating_histogram"].items()], width=320)
        per_day = column_chart(
            [(day["date"][5:], day["count"]) for day in stats["feedback_per_day"]], width=640, max_labels=8
        )
        reviewed, suggested = stats["category_distribution"], stats["suggested_category_distribution"]
        categories = sorted(set(reviewed) | set(suggested), key=lambda c: -(reviewed.get(c, 0) + suggested.get(c, 0)))
        return self._render(
            "stats.html",
            principal,
            "stats",
            stats=stats,
            histogram=histogram,
            per_day=per_day,
            category_rows=categories,
            category_max=max([*reviewed.values(), *suggested.values(), 1]),
        )

    @expose("/api/feedback/stats")
    @_guarded(READ)
    def api_stats(self, principal: Principal) -> Response:
        query = parse_export_query(request.args)  # only ``since`` applies here
        if query.problems:
            return _refuse(400, "; ".join(query.problems))
        return jsonify(reviews.feedback_stats(since=query.since, url=resolve_url(), dag_ids=principal.dags.readable))

    # -------------------------------------------------------------------------------------------- export

    @expose("/export")
    @_guarded(READ)
    def export(self, principal: Principal) -> Response:
        query = parse_export_query(request.args)
        count = reviews.count_feedback(
            min_rating=query.min_rating,
            since=query.since,
            until=query.until,
            status=query.status,
            latest_per_item=query.latest_per_item,
            dag_ids=principal.dags.readable,
            url=resolve_url(),
        )
        by_rating = (
            reviews.count_feedback_by_rating(
                since=query.since,
                until=query.until,
                status=query.status,
                latest_per_item=query.latest_per_item,
                dag_ids=principal.dags.readable,
                url=resolve_url(),
            )
            if count == 0
            else None
        )
        host = request.host_url.rstrip("/")
        return self._render(
            "export.html",
            principal,
            "export",
            query=query,
            count=count,
            by_rating=by_rating,
            export_url=host + url_for(".api_export"),
            token_url=f"{host}{links.airflow_base_path()}/auth/token",
        )

    @expose("/api/feedback/export")
    @_guarded(READ)
    def api_export(self, principal: Principal) -> Response:
        query = parse_export_query(request.args)
        if query.problems:
            return _refuse(400, "; ".join(query.problems))
        rows = reviews.iter_feedback(
            min_rating=query.min_rating,
            since=query.since,
            until=query.until,
            status=query.status,
            latest_per_item=query.latest_per_item,
            dag_ids=principal.dags.readable,
            url=resolve_url(),
        )
        body, mimetype = (
            (reviews.to_jsonl(rows), "application/x-ndjson")
            if query.format == "jsonl"
            else (reviews.to_csv(rows), "text/csv")
        )
        filename = f"dagnostics-feedback-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}.{query.format}"
        return Response(
            body,
            mimetype=mimetype,
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )


def _diagnosis_json(found: Diagnosis) -> dict[str, Any]:
    """The diagnosis for scripts: the state, the try, and the analysis with its newest review once analysed."""
    body: dict[str, Any] = {
        **asdict(found.ref),
        "state": found.state.value,
        "try_number": found.try_number,
        "failure_id": found.failure_id,
        "failed_at": found.failed_at,
        "detail": found.detail,
        "tries": [asdict(t) for t in found.tries],
    }
    if found.item is not None:
        newest = found.item.reviews[0] if found.item.reviews else None
        body["analysis"] = found.item.analysis
        body["review_status"] = found.item.status.value
        body["review"] = None if newest is None else {"reviewer": newest.reviewer, **newest.values}
    return body


def _security_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    if not (request.endpoint or "").endswith(".static"):
        response.headers["Cache-Control"] = "no-store"  # pages carry CSRF tokens and reviewers' data
    return response


def _unexpected(exc: Exception) -> Response:
    """A bug of ours: logged with its traceback, answered in the route's own format (JSON for ``api_*``), not with
    FAB's HTML error page (which a script cannot parse and which loads its CSS from a CDN)."""
    from werkzeug.exceptions import HTTPException

    if isinstance(exc, HTTPException):  # Flask's own 4xx (a malformed body, a wrong method): keep its code
        return _refuse(exc.code or 400, exc.description or exc.name)
    log.exception("DAGnostics Feedback: unexpected error on %s %s", request.method, request.path)
    return _refuse(500, "DAGnostics Feedback failed unexpectedly; the api-server log has the details.")


def _store_unavailable(exc: SQLAlchemyError) -> Response:
    log.exception("DAGnostics store error in the review UI")
    return _refuse(
        503,
        "The DAGnostics store cannot be read. Check [dagnostics] sql_alchemy_conn and run "
        f"`dagnostics db migrate`. ({type(exc).__name__}: {getattr(exc, 'orig', None) or exc})"[:600],
    )
