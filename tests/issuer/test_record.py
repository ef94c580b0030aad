"""The issuer recorded in the shared database: the first instance's stays, and one that
starts with another issuer logs an error naming both."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from authapi.app import create_app
from authapi.issuer.models import RecordedIssuer
from tests.support.servers import authapi_env, run_authapi
from tests.support.settings import make_settings

ONE = "https://one.example.com"
TWO = "https://two.example.com"


@pytest.fixture
async def no_record(database_url: str) -> AsyncIterator[None]:
    """Start from a database that has no issuer recorded (other tests' apps record one),
    and leave it so: this module's issuers are not those of the tests after it."""
    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        async with engine.begin() as connection:
            await connection.execute(delete(RecordedIssuer))
        yield
        async with engine.begin() as connection:
            await connection.execute(delete(RecordedIssuer))
    finally:
        await engine.dispose()


async def recorded(database_url: str) -> list[str]:
    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            return list(await connection.scalars(select(RecordedIssuer.issuer)))
    finally:
        await engine.dispose()


@asynccontextmanager
async def instance(database_url: str, data_dir: Path, issuer: str) -> AsyncIterator[FastAPI]:
    app = create_app(make_settings(database_url, data_dir, issuer=issuer))
    async with LifespanManager(app):
        yield app


def issuer_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "authapi.issuer.record" and record.levelno == logging.ERROR
    ]


@pytest.mark.usefixtures("no_record")
class TestIssuerRecord:
    async def test_the_first_start_records_its_issuer(
        self, database_url: str, data_dir: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        async with instance(database_url, data_dir, ONE):
            pass

        assert await recorded(database_url) == [ONE]
        assert issuer_errors(caplog) == []

    async def test_another_issuer_is_an_error_naming_both(
        self, database_url: str, data_dir: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        async with instance(database_url, data_dir, ONE):
            async with instance(database_url, data_dir, TWO):
                pass

        [error] = issuer_errors(caplog)
        assert f"this instance's issuer is {TWO}, but the database records {ONE}" in error
        assert f"run `authapi issuer set {TWO}`" in error

    async def test_the_record_stays_the_first(
        self, database_url: str, data_dir: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        for issuer in (ONE, TWO):
            async with instance(database_url, data_dir, issuer):
                pass
        caplog.clear()

        async with instance(database_url, data_dir, ONE):
            pass

        assert await recorded(database_url) == [ONE]
        assert issuer_errors(caplog) == []

    async def test_issuer_set_is_the_way_to_change_it(
        self,
        database_url: str,
        data_dir: Path,
        tmp_path: Path,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        async with instance(database_url, data_dir, ONE):
            pass
        env = authapi_env(database_url, data_dir)

        changed = run_authapi("issuer", "set", f"{TWO}/", env=env, cwd=tmp_path)
        shown = run_authapi("issuer", "show", env=env, cwd=tmp_path)

        assert changed.returncode == 0, changed.stderr
        assert changed.stdout == f"issuer recorded: {TWO} (was: {ONE})\n"
        assert shown.stdout == f"{TWO}\n"
        async with instance(database_url, data_dir, TWO):
            pass
        assert issuer_errors(caplog) == []
        async with instance(database_url, data_dir, ONE):
            pass
        [error] = issuer_errors(caplog)
        assert f"the database records {TWO}" in error


@pytest.mark.parametrize(
    "url", ["auth.example.com", "ftp://auth.example.com", "https://", "https://a.example/#x"]
)
def test_issuer_set_refuses_what_is_no_issuer(tmp_path: Path, url: str) -> None:
    result = run_authapi("issuer", "set", url, env=authapi_env(None, tmp_path), cwd=tmp_path)

    assert result.returncode == 2
    assert "must be an http:// or https:// URL" in result.stderr
