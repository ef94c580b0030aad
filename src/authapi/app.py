"""The application: `create_app(settings)` and its lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from authapi import health
from authapi.audit.router import router as audit_router
from authapi.clock import Clock
from authapi.config import Settings
from authapi.context import AppContext
from authapi.db import create_engine, create_sessionmaker
from authapi.demo import install_demo
from authapi.dependencies import refuse_secrets_in_query
from authapi.docs import install_docs
from authapi.errors import install_error_handlers
from authapi.middleware import SecurityHeaders, SizeLimits
from authapi.oauth.browser import DELIVERY_HEADER
from authapi.oauth.router import router as oauth_router
from authapi.openapi import document_errors
from authapi.ratelimit.service import RateLimiter
from authapi.sessions.refresh_tokens import RefreshTokenCodec, load_refresh_token_key
from authapi.sessions.router import router as sessions_router
from authapi.tokens.access import AccessTokens
from authapi.tokens.keys import load_keys
from authapi.tokens.router import router as tokens_router
from authapi.users.passwords import PasswordHasher
from authapi.users.router import router as users_router

logger = logging.getLogger(__name__)


def build_context(settings: Settings, clock: Clock) -> AppContext:
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    keys = load_keys(settings)
    engine = create_engine(settings)
    return AppContext(
        settings=settings,
        clock=clock,
        engine=engine,
        sessionmaker=create_sessionmaker(engine),
        hasher=PasswordHasher(settings),
        access_tokens=AccessTokens(
            keys,
            issuer=settings.issuer,
            audience=settings.audience,
            client_id=settings.client_id,
            ttl=settings.access_token_ttl,
        ),
        refresh_tokens=RefreshTokenCodec(load_refresh_token_key(settings)),
        rate_limiter=RateLimiter(settings),
    )


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        context = build_context(settings, clock or Clock())
        app.state.context = context
        await context.hasher.dummy_hash()  # computed once, not on the first unknown email
        try:
            yield
        finally:
            context.hasher.close()
            context.rate_limiter.close()
            await context.engine.dispose()

    app = FastAPI(
        docs_url=None,  # served offline by install_docs below
        redoc_url=None,
        title="authapi",
        version="0.1.0",
        summary="Short-lived JWT access tokens, rotating refresh tokens, revocable sessions.",
        lifespan=lifespan,
        dependencies=[Depends(refuse_secrets_in_query)],
    )
    install_error_handlers(app)
    for router in (
        users_router,
        oauth_router,
        tokens_router,
        sessions_router,
        audit_router,
        health.router,
    ):
        app.include_router(router)
    document_errors(app)
    install_docs(app)
    if settings.demo_spa:
        install_demo(app)
    # The last added runs first: every answer, even a refusal of an oversized request
    # (which never reaches the app) or a CORS preflight, gets the security headers.
    app.add_middleware(SizeLimits)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=True,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", DELIVERY_HEADER],
            max_age=600,
        )
    app.add_middleware(SecurityHeaders, hsts_max_age=settings.hsts_max_age)
    return app


def create_app_from_environment() -> FastAPI:
    """The factory `authapi serve` hands to uvicorn (each worker calls it)."""
    return create_app(Settings())
