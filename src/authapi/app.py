"""The application: `create_app(settings)` and its lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from sqlalchemy import event
from starlette.middleware import Middleware

from authapi import health, logs, metrics, metrics_export
from authapi.access_tokens.cache import VerifiedTokens
from authapi.access_tokens.router import router as access_tokens_router
from authapi.access_tokens.service import AccessTokens
from authapi.account.pages import install_pages
from authapi.account.router import router as account_router
from authapi.audit.router import router as audit_router
from authapi.clock import Clock
from authapi.config import Settings
from authapi.context import AppContext
from authapi.data_dir import secure_data_dir
from authapi.db import TrackedSession, create_engine, create_sessionmaker
from authapi.demo import install_demo
from authapi.dependencies import refuse_secrets_in_query
from authapi.docs import install_docs
from authapi.error_handlers import install_error_handlers
from authapi.expiring import ExpiringCache
from authapi.fd_table import presize as presize_fd_table
from authapi.gc_tuning import tune_for_serving
from authapi.hashing_admission import HashingAdmission
from authapi.issuer.hosts import ForeignHostWarning
from authapi.issuer.record import check_issuer
from authapi.mail import outbox
from authapi.mail.delivery import transport_for
from authapi.mail.sender import MailSender
from authapi.mail.tokens import MailTokenKey
from authapi.mfa.codes import CodeChecker
from authapi.mfa.recovery_codes import RecoveryCodeKey
from authapi.mfa.router import router as mfa_router
from authapi.mfa.tokens import MfaTokenKey
from authapi.middleware import JSONErrorCORS, RequestContext, SecurityHeaders, SizeLimits
from authapi.oauth.browser import DELIVERY_HEADER
from authapi.oauth.issuing import TokenIssuer
from authapi.oauth.router import router as oauth_router
from authapi.openapi import correct_openapi
from authapi.passkeys.relying_party import from_settings as relying_party_from_settings
from authapi.passkeys.router import router as passkeys_router
from authapi.ratelimit.devices import DeviceCookies
from authapi.ratelimit.service import RateLimiter
from authapi.revocations import publish
from authapi.revocations.feed import RevocationFeed
from authapi.revocations.registry import RevokedSessions
from authapi.sessions.one_trip import OneTripRotation
from authapi.sessions.rotation import RefreshTokenCodec, load_refresh_token_key
from authapi.sessions.router import router as sessions_router
from authapi.sessions.service import SessionPolicy
from authapi.signing.reload import SigningKeyReloader, load_signing_keys
from authapi.signing.router import router as signing_router
from authapi.signing.sealing import load_key_encryption_key
from authapi.users.admin_router import router as admin_users_router
from authapi.users.passwords import PasswordHasher
from authapi.users.router import router as users_router

logger = logging.getLogger(__name__)

# GET /users/me answers kept in memory (about 1 KB each).
PROFILES_CACHED = 10_000


def session_class(mail_queued: asyncio.Event | None = None) -> type[TrackedSession]:
    """A Session class of this app's own, with what must happen when one of its
    transactions commits or rolls back: the metrics it held back are counted, the
    sessions it revoked are refused here, the mail it queued is sent now. Bound to this
    class, not to every Session of the process, so that another app or a command's
    sessions in the same process take no part in it."""

    class AppSession(TrackedSession):
        pass

    event.listen(AppSession, "after_commit", metrics.apply_committed)
    event.listen(AppSession, "after_transaction_end", metrics.forget_uncommitted)
    event.listen(AppSession, "after_commit", publish.apply_committed)
    event.listen(AppSession, "after_soft_rollback", publish.discard_rolled_back)
    if mail_queued is not None:
        after_commit, after_transaction_end = outbox.wake_on_commit(mail_queued.set)
        event.listen(AppSession, "after_commit", after_commit)
        event.listen(AppSession, "after_transaction_end", after_transaction_end)
    return AppSession


async def build_context(settings: Settings, clock: Clock) -> AppContext:
    # First: passkey settings that contradict each other stop the start here.
    relying_party = relying_party_from_settings(settings)
    secure_data_dir(settings)  # before anything is written there
    kek = load_key_encryption_key(settings)
    engine = create_engine(settings)
    try:
        keys = await load_signing_keys(settings, engine, kek, clock)
    except BaseException:
        await engine.dispose()
        raise
    revoked_sessions = RevokedSessions(settings.access_token_ttl)
    access_tokens = AccessTokens(
        keys,
        issuer=settings.issuer,
        audience=settings.audience,
        client_id=settings.client_id,
        ttl=settings.access_token_ttl,
    )
    verified_tokens = VerifiedTokens(access_tokens.verify)
    refresh_token_key = load_refresh_token_key(settings)
    refresh_tokens = RefreshTokenCodec(refresh_token_key)
    rate_limiter = RateLimiter(settings, DeviceCookies(refresh_token_key))
    # Every transaction that revokes sessions adds them here when it commits.
    mail_queued = asyncio.Event()  # and one that queued mail wakes the sender
    sessionmaker = create_sessionmaker(
        engine,
        info={publish.REGISTRY: revoked_sessions} if settings.instant_revocation else None,
        session_class=session_class(mail_queued),
    )
    return AppContext(
        settings=settings,
        clock=clock,
        engine=engine,
        sessionmaker=sessionmaker,
        hasher=PasswordHasher(settings),
        access_tokens=access_tokens,
        verified_tokens=verified_tokens,
        profiles=ExpiringCache(PROFILES_CACHED),
        refresh_tokens=refresh_tokens,
        token_issuer=TokenIssuer(access_tokens, refresh_tokens),
        session_policy=SessionPolicy.from_settings(settings),
        rate_limiter=rate_limiter,
        revoked_sessions=revoked_sessions,
        revocation_feed=RevocationFeed(settings, clock, engine, revoked_sessions),
        # A removed key's tokens must not verify from the cache either.
        signing_keys=SigningKeyReloader(
            settings, engine, kek, access_tokens, on_change=verified_tokens.clear
        ),
        mail_sender=MailSender(
            settings, clock, sessionmaker, transport_for(settings), wakeup=mail_queued
        ),
        mail_tokens=MailTokenKey(refresh_token_key),
        kek=kek,
        codes=CodeChecker(settings, kek, RecoveryCodeKey(refresh_token_key), rate_limiter),
        mfa_tokens=MfaTokenKey(refresh_token_key),
        relying_party=relying_party,
        one_trip=OneTripRotation(engine) if engine.dialect.name == "postgresql" else None,
    )


def middleware_stack(settings: Settings) -> list[Middleware]:
    """Outermost first: each one sees what the ones below it answer."""
    cors = Middleware(
        JSONErrorCORS,
        allow_origins=settings.cors_origins,
        allow_credentials=True,
        allow_methods=["GET", "POST", "PATCH", "DELETE"],
        allow_headers=["Authorization", "Content-Type", DELIVERY_HEADER],
        max_age=600,
    )
    return [
        # Outermost of all: every answer, even a refusal below, gets a request id, an
        # access-log line and its latency measured.
        Middleware(
            RequestContext,
            trusted_proxies=settings.trusted_proxies,
            access_log=settings.access_log,
        ),
        # Every answer, even a refusal of an oversized request (which never reaches the
        # app) or a CORS preflight, gets the security headers.
        Middleware(
            SecurityHeaders,
            hsts_max_age=settings.hsts_max_age,
            trusted_proxies=settings.trusted_proxies,
        ),
        # Outside the refusals below (the 503 of HashingAdmission, the 413 and 431 of
        # SizeLimits), so that they carry its headers and a browser can read them.
        *([cors] if settings.cors_origins else []),
        # It only looks (one warning per process). Outside the refusals below, so that a
        # client they refuse is noticed too; a CORS preflight, answered above, is not
        # looked at: the request that follows it is.
        Middleware(ForeignHostWarning, issuer=settings.issuer),
        # Outside SizeLimits, whose refusal of an oversized streamed body is an
        # exception that only the app's handlers answer: this one bounds what it reads
        # itself and lets such a body go on to SizeLimits.
        Middleware(HashingAdmission),
        # Innermost, next to the app: its streamed-body refusal is raised where the app
        # reads the body, so the app's own handlers answer it.
        Middleware(SizeLimits),
    ]


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        context = await build_context(settings, clock or Clock())
        app.state.context = context
        await context.hasher.dummy_hash()  # computed once, not on the first unknown email
        await check_issuer(context.sessionmaker, settings.issuer, context.clock.now())
        await context.revocation_feed.start()
        await context.signing_keys.start()
        await context.mail_sender.start()
        try:
            async with metrics_export.sampling(context):
                yield
        finally:
            await context.mail_sender.stop()
            await context.signing_keys.stop()
            await context.revocation_feed.stop()
            context.hasher.close()
            context.rate_limiter.close()
            await context.engine.dispose()

    logs.install_record_factory()  # log records carry the id RequestContext sets
    app = FastAPI(
        docs_url=None,  # served offline by install_docs below
        redoc_url=None,
        title="authapi",
        version="0.1.0",
        summary="Short-lived JWT access tokens, rotating refresh tokens, revocable sessions.",
        lifespan=lifespan,
        dependencies=[Depends(refuse_secrets_in_query)],
        middleware=middleware_stack(settings),
    )
    install_error_handlers(app)
    for router in (
        users_router,
        account_router,
        oauth_router,
        access_tokens_router,
        signing_router,
        sessions_router,
        audit_router,
        admin_users_router,
        mfa_router,
        passkeys_router,
        health.router,
    ):
        app.include_router(router)
    correct_openapi(app)
    install_docs(app)
    install_pages(app)
    metrics_export.install_metrics(app, settings)
    if settings.demo_spa:
        install_demo(app)
    return app


def create_app_from_environment() -> FastAPI:
    """The factory `authapi serve` hands to uvicorn (each worker calls it)."""
    tune_for_serving()  # a serving process's garbage collection (gc_tuning.py)
    presize_fd_table()  # no stall at a burst of connections (fd_table.py)
    return create_app(Settings())
