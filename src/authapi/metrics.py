"""Prometheus metrics: what they are, when they move, and `GET /metrics`.

Business events are counted when their transaction commits, never before: an audit
event or a revocation of a request that rolls back did not happen (`count_on_commit`;
errors that `db.KeepsChanges` commit, so a failed login or a detected reuse counts).
Refusals by a rate limit are counted as they happen, each request once. Gauges (the
hashing queue, the revoked-session set, the revocation listener) are read from the
app's objects when /metrics is scraped.

With several worker processes (`authapi serve --workers N`), prometheus-client's
multiprocess mode adds up every worker's values: `PROMETHEUS_MULTIPROC_DIR` names the
folder of their files (`serve` sets it up, see `multiprocess_dir`). Like
prometheus-client itself, this module reads that variable when it is first imported.
Then each worker also writes its gauges every `SAMPLE_SECONDS`, since a scrape reaches
only one of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import hmac
import logging
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from authapi.config import Settings
from authapi.errors import error_response

if TYPE_CHECKING:
    from authapi.context import AppContext

logger = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
MULTIPROCESS = MULTIPROC_ENV in os.environ
SAMPLE_SECONDS = 1.0

# No `*_created` series beside every counter and histogram: Prometheus does not need them.
disable_created_metrics()  # type: ignore[no-untyped-call]

LOGINS = Counter("authapi_logins", "Password logins, by result.", ["result"])
REFRESHES = Counter("authapi_refreshes", "Successful refresh-token grants.")
REUSE_DETECTIONS = Counter(
    "authapi_refresh_token_reuse_detections",
    "Rotated refresh tokens presented again after the grace window (the session is revoked).",
)
REVOCATIONS = Counter("authapi_session_revocations", "Sessions revoked, by reason.", ["reason"])
RATE_LIMITED = Counter(
    "authapi_rate_limited_requests", "Requests refused by a rate limit, by limit.", ["limit"]
)
HTTP_REQUESTS = Counter(
    "authapi_http_requests",
    "Requests answered, by method, route template and status.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "authapi_http_request_duration_seconds",
    "Time from the request's arrival to the end of its answer, by method and route template.",
    ["method", "route"],
)
HASHING_QUEUE = Gauge(
    "authapi_password_hashing_queue_depth",
    "Logins and registrations admitted to hash a password: running plus waiting.",
    multiprocess_mode="livesum",
)
HASHING_CAPACITY = Gauge(
    "authapi_password_hashing_queue_capacity",
    "How many may be admitted at once (hash workers + hash queue); past it, 503.",
    multiprocess_mode="livesum",
)
REVOKED_SESSIONS = Gauge(
    "authapi_revoked_sessions",
    "Sessions in the in-memory revocation set (revoked within one access-token lifetime).",
    multiprocess_mode="livemax",
)
REVOCATION_LISTENER = Gauge(
    "authapi_revocation_listener_connected",
    "1 while the PostgreSQL LISTEN connection for revocations is up (lowest of the workers); "
    "always 0 on SQLite or with instant revocation off, where no listener runs.",
    multiprocess_mode="livemin",
)

# The audit events that are metrics, by their value (audit.service.Event).
_AUDIT_COUNTERS: dict[str, Counter] = {
    "login_succeeded": LOGINS.labels(result="succeeded"),
    "login_failed": LOGINS.labels(result="failed"),
    "refresh": REFRESHES,
    "reuse_detected": REUSE_DETECTIONS,
}
# Anything else a client can write into a method stays one label value.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Key of Session.info: the counts of the current transaction, not yet committed.
_PENDING = "authapi.metrics.pending"


def count_on_commit(db: AsyncSession | Session, counter: Counter, amount: float = 1) -> None:
    """Add `amount` to `counter` when `db`'s transaction commits (an AsyncSession or a
    Session); if it rolls back, never."""
    db.info.setdefault(_PENDING, []).append((counter, amount))


def count_audit_event(db: AsyncSession | Session, event_name: str) -> None:
    counter = _AUDIT_COUNTERS.get(event_name)
    if counter is not None:
        count_on_commit(db, counter)


def count_revocations(db: AsyncSession | Session, reason: str, count: int) -> None:
    if count:
        count_on_commit(db, REVOCATIONS.labels(reason=reason), count)


def count_rate_limited(limit: str) -> None:
    RATE_LIMITED.labels(limit=limit).inc()


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    method = method if method in _METHODS else "other"
    HTTP_REQUESTS.labels(method=method, route=route, status=str(status)).inc()
    HTTP_DURATION.labels(method=method, route=route).observe(seconds)


@event.listens_for(Session, "after_commit")
def _count_committed(session: Session) -> None:
    for counter, amount in session.info.pop(_PENDING, ()):
        counter.inc(amount)


@event.listens_for(Session, "after_transaction_end")
def _forget_uncommitted(session: Session, transaction: SessionTransaction) -> None:
    # After a commit the list is already gone; after a rollback (or a close without a
    # commit) of the outermost transaction, what it would have counted never happened.
    if transaction.parent is None:
        session.info.pop(_PENDING, None)


def sample(context: AppContext) -> None:
    """Set the gauges from this process's objects."""
    HASHING_QUEUE.set(context.hasher.pending)
    HASHING_CAPACITY.set(context.hasher.max_pending)
    REVOKED_SESSIONS.set(len(context.revoked_sessions))
    REVOCATION_LISTENER.set(1 if context.revocation_feed.listening else 0)


@contextlib.asynccontextmanager
async def sampling(context: AppContext) -> AsyncIterator[None]:
    """For the app's lifespan: in multiprocess mode, keep this worker's gauges fresh,
    and take them out of the sums when it stops."""
    sample(context)
    if not MULTIPROCESS:
        yield
        return

    async def sample_forever() -> None:
        while True:
            await asyncio.sleep(SAMPLE_SECONDS)
            sample(context)

    task = asyncio.create_task(sample_forever())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


def exposition() -> bytes:
    """The text format of every metric: this process's, or all workers' added up."""
    if not MULTIPROCESS:
        return generate_latest(REGISTRY)
    _forget_dead_workers()
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


def _forget_dead_workers() -> None:
    """Drop the gauges of workers that died without stopping (killed, crashed): a
    restarted worker has a new process id, and the dead one's queue depth must not
    stay in the sum for ever. Counters keep their files, so totals never go down."""
    folder = os.environ[MULTIPROC_ENV]
    for path in glob.glob(os.path.join(folder, "gauge_live*_*.db")):
        pid_text = os.path.basename(path).rsplit("_", 1)[-1].removesuffix(".db")
        if pid_text.isdigit() and not _alive(int(pid_text)):
            multiprocess.mark_process_dead(int(pid_text), folder)  # type: ignore[no-untyped-call]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def multiprocess_dir(workers: int) -> Iterator[None]:
    """For `authapi serve`: with several workers, a fresh folder for their metrics
    (removed at the end); an operator's own `PROMETHEUS_MULTIPROC_DIR` is emptied of
    a previous run's files at the start and kept."""
    configured = os.environ.get(MULTIPROC_ENV)
    if configured:
        for path in glob.glob(os.path.join(configured, "*.db")):
            os.remove(path)
        yield
        return
    if workers <= 1:
        yield
        return
    folder = tempfile.mkdtemp(prefix="authapi-metrics-")
    os.environ[MULTIPROC_ENV] = folder
    try:
        yield
    finally:
        del os.environ[MULTIPROC_ENV]
        shutil.rmtree(folder, ignore_errors=True)


def _declare_series() -> None:
    """Every labelled series at 0 from the start, so that the first revocation of a
    kind, or the first refusal by a limit, is an increase that `rate()` sees.
    (Imported here: those modules count through this one.)"""
    from authapi.ratelimit.service import ADDRESS_LIMITS, OTHER_LIMITS
    from authapi.sessions.models import RevokeReason

    for reason in RevokeReason:
        REVOCATIONS.labels(reason=reason.value)
    for limit in [*ADDRESS_LIMITS, *OTHER_LIMITS]:
        RATE_LIMITED.labels(limit=limit)


def install_metrics(app: FastAPI, settings: Settings) -> None:
    """`GET /metrics`, unless turned off. Its counters tell anyone who reads them how
    logins fare and which limits refuse, so it is served only for `Authorization:
    Bearer <AUTHAPI_METRICS_TOKEN>`, or, with `AUTHAPI_METRICS_PUBLIC=true`, to anyone
    who can reach it (a scraper on a private network); with neither it answers 404 and
    names those settings. Not in the OpenAPI document: it is for the operator's
    scraper, not for API clients."""
    if not settings.metrics_enabled:
        return
    _declare_series()
    token = settings.metrics_token.get_secret_value().encode() if settings.metrics_token else None

    async def metrics(request: Request) -> Response:
        if token is None and not settings.metrics_public:
            return error_response(
                404,
                "not_found",
                "GET /metrics is served only with AUTHAPI_METRICS_TOKEN set (then for "
                "Authorization: Bearer <that token>) or with AUTHAPI_METRICS_PUBLIC=true.",
            )
        if token is not None:
            scheme, _, presented = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(presented.encode(), token):
                return error_response(
                    401,
                    "invalid_token",
                    "The metrics token is missing or wrong.",
                    {"WWW-Authenticate": "Bearer"},
                )
        sample(request.app.state.context)
        return Response(exposition(), media_type=CONTENT_TYPE_LATEST)

    app.add_api_route("/metrics", metrics, methods=["GET"], include_in_schema=False)
