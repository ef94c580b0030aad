"""Reading the metrics out: `GET /metrics`, the gauges' samples, and the sums of
several workers.

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
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator

from fastapi import FastAPI, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)

from authapi.config import Settings
from authapi.context import AppContext
from authapi.error_bodies import error_response
from authapi.metrics import (
    HASHING_CAPACITY,
    HASHING_QUEUE,
    MAIL_OLDEST_PENDING,
    RATE_LIMITED,
    REVOCATION_LISTENER,
    REVOCATIONS,
    REVOKED_SESSIONS,
)
from authapi.ratelimit.service import ADDRESS_LIMITS, OTHER_LIMITS
from authapi.sessions.models import RevokeReason

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
MULTIPROCESS = MULTIPROC_ENV in os.environ
SAMPLE_SECONDS = 1.0


def sample(context: AppContext) -> None:
    """Set the gauges from this process's objects."""
    HASHING_QUEUE.set(context.hasher.pending)
    HASHING_CAPACITY.set(context.hasher.max_pending)
    REVOKED_SESSIONS.set(len(context.revoked_sessions))
    REVOCATION_LISTENER.set(1 if context.revocation_feed.listening else 0)
    MAIL_OLDEST_PENDING.set(context.mail_sender.oldest_pending_age)


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
    kind, or the first refusal by a limit, is an increase that `rate()` sees."""
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
