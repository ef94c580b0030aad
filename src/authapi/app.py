"""The application: `create_app(settings)` and its lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from authapi import health
from authapi.clock import Clock
from authapi.config import Settings
from authapi.context import AppContext
from authapi.db import create_engine, create_sessionmaker
from authapi.errors import install_error_handlers
from authapi.oauth.router import router as oauth_router
from authapi.sessions.refresh_tokens import RefreshTokenCodec, load_refresh_token_key
from authapi.sessions.router import router as sessions_router
from authapi.tokens.access import AccessTokens
from authapi.tokens.keys import load_keys
from authapi.tokens.router import router as tokens_router
from authapi.users.passwords import PasswordHasher
from authapi.users.router import router as users_router

logger = logging.getLogger(__name__)

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


class SecurityHeaders:
    """Adds headers that every response should carry (pure ASGI: no per-request task)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


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
            await context.engine.dispose()

    app = FastAPI(
        title="authapi",
        version="0.1.0",
        summary="Short-lived JWT access tokens, rotating refresh tokens, revocable sessions.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    for router in (users_router, oauth_router, tokens_router, sessions_router, health.router):
        app.include_router(router)
    app.add_middleware(SecurityHeaders)
    return app


def create_app_from_environment() -> FastAPI:
    """The factory `authapi serve` hands to uvicorn (each worker calls it)."""
    return create_app(Settings())
