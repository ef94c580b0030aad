"""Prometheus metrics: what they are and when they move. A leaf: it imports nothing of
authapi, so that any module may count; reading them out (`GET /metrics`, the gauges'
samples, several workers' sums) is metrics_export.py's.

Business events are counted when their transaction commits, never before: an audit
event or a revocation of a request that rolls back did not happen (`count_on_commit`;
errors that `db.KeepsChanges` commit, so a failed login or a detected reuse counts).
The app binds `apply_committed` and `forget_uncommitted` to its own Session class
(app.py). Refusals by a rate limit are counted as they happen, each request once.
Gauges (the hashing queue, the revoked-session set, the revocation listener) are read
from the app's objects when /metrics is scraped.

With several worker processes, prometheus-client's multiprocess mode keeps each
metric's values in files (metrics_export.py): the variable that turns it on must be
set before this module is first imported, as prometheus-client requires.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

# No `*_created` series beside every counter and histogram: Prometheus does not need them.
disable_created_metrics()  # type: ignore[no-untyped-call]

LOGINS = Counter("authapi_logins", "Password logins, by result.", ["result"])
REFRESHES = Counter("authapi_refreshes", "Successful refresh-token grants.")
ONE_STATEMENT_REFRESHES = Counter(
    "authapi_one_statement_refreshes",
    "Refreshes tried in one statement (PostgreSQL), by outcome: advanced; declined (the "
    "general way decided); failed (an error, the general way answered).",
    ["outcome"],
)
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
MAIL_QUEUED = Counter("authapi_mail_queued", "Mails put in the outbox (counted at commit).")
MAIL_SENT = Counter("authapi_mail_sent", "Mails handed to the relay (or written as .eml files).")
MAIL_RETRIED = Counter(
    "authapi_mail_retried", "Attempts to send a mail that failed and will be tried again."
)
MAIL_FAILED = Counter(
    "authapi_mail_failed", "Mails given up on: refused for good, or not sent within a day."
)
MAIL_OLDEST_PENDING = Gauge(
    "authapi_mail_oldest_pending_age_seconds",
    "Age of the oldest mail not yet sent, as the last sender pass saw it (0: none waiting).",
    multiprocess_mode="livemax",
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


# The two series of each (method, route, status) answered so far: looking them up by
# their labels was three quarters of the cost of counting a request. Bounded as the
# series are: the methods above, the route templates, the statuses the app answers.
_request_series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    key = (method, route, status)
    series = _request_series.get(key)
    if series is None:
        label = method if method in _METHODS else "other"
        series = (
            HTTP_REQUESTS.labels(method=label, route=route, status=str(status)),
            HTTP_DURATION.labels(method=label, route=route),
        )
        # Keyed by the method as sent would let a client grow it: only known ones.
        if method in _METHODS:
            _request_series[key] = series
    counted, duration = series
    counted.inc()
    duration.observe(seconds)


def apply_committed(session: Session) -> None:
    """`after_commit`: count what the transaction held back."""
    for counter, amount in session.info.pop(_PENDING, ()):
        counter.inc(amount)


def forget_uncommitted(session: Session, transaction: SessionTransaction) -> None:
    """`after_transaction_end`: after a commit the list is already gone; after a
    rollback (or a close without a commit) of the outermost transaction, what it would
    have counted never happened."""
    if transaction.parent is None:
        session.info.pop(_PENDING, None)
