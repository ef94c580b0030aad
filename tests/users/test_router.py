"""Registration, the caller's profile, and a password change."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from authapi.context import AppContext
from authapi.users.models import User
from tests.support.factories import (
    PASSWORD,
    bearer,
    login,
    new_email,
    refresh_works,
    register,
    registered_login,
    two_sessions,
    update_user,
    user_count,
)


class TestRegistration:
    async def test_creates_a_user(self, client: httpx.AsyncClient, context: AppContext) -> None:
        response = await client.post(
            "/users", json={"email": "new@example.com", "password": PASSWORD}
        )
        assert response.status_code == 201
        body = response.json()
        assert set(body) == {
            "id",
            "email",
            "email_verified",
            "mfa_enabled",
            "role",
            "is_active",
            "created_at",
        }
        assert body["role"] == "user"
        assert body["is_active"] is True
        uuid.UUID(body["id"])
        async with context.sessionmaker() as db:
            stored = await db.get(User, uuid.UUID(body["id"]))
        assert stored is not None
        assert stored.password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
        assert PASSWORD not in response.text

    @pytest.mark.parametrize(
        ("first", "second"),
        [
            ("alice@example.com", "ALICE@EXAMPLE.COM"),
            ("alice@example.com", " alice@example.com "),
            ("zoë@example.com", "zoe\u0308@example.com"),  # composed vs decomposed
            ("ﬁ@example.com", "fi@example.com"),  # NFKC ligature
            ("bob@bücher.example", "bob@xn--bcher-kva.example"),  # IDNA
        ],
    )
    async def test_one_mailbox_one_account(
        self, client: httpx.AsyncClient, context: AppContext, first: str, second: str
    ) -> None:
        await register(client, email=first)
        response = await client.post("/users", json={"email": second, "password": PASSWORD})
        assert response.status_code == 409
        assert response.json()["error"] == "email_taken"
        assert await user_count(context) == 1

    async def test_the_same_registration_20_times_at_once_creates_one_account(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        # Those past the address's registration limit get 429; the others hash (let in one
        # per turn of the event loop, hashing_admission.py) and the database's unique
        # address decides which one is created.
        body = {"email": new_email(), "password": PASSWORD}
        responses = await asyncio.gather(*(client.post("/users", json=body) for _ in range(20)))
        statuses = [response.status_code for response in responses]
        assert statuses.count(201) == 1, statuses
        assert set(statuses) <= {201, 409, 429}, statuses
        assert await user_count(context) == 1
        await login(client, body["email"])

    @pytest.mark.parametrize("password", ["x" * 8, "x" * 128, "🔐" * 8, "        spaces  "])
    async def test_accepts_any_password_of_8_to_128_characters(
        self, client: httpx.AsyncClient, password: str
    ) -> None:
        user = await register(client, password=password)
        await login(client, user["email"], password)

    @pytest.mark.parametrize(
        "body",
        [
            {"email": "a@example.com", "password": "x" * 7},
            {"email": "a@example.com", "password": "x" * 129},
            {"email": "not-an-email", "password": PASSWORD},
            {"email": "a@example.com"},
            {"password": PASSWORD},
            {"email": "a@" + "x" * 300 + ".com", "password": PASSWORD},
            {"email": 42, "password": PASSWORD},
            {"email": "a@example.com", "password": PASSWORD, "role": "admin"},
            [],
            "a string",
        ],
    )
    async def test_bad_input_is_422_and_creates_nothing(
        self, client: httpx.AsyncClient, context: AppContext, body: object
    ) -> None:
        response = await client.post("/users", json=body)
        assert response.status_code == 422
        assert response.json()["error"] == "invalid_request"
        assert response.json()["error_description"]
        assert PASSWORD not in response.text  # input is never echoed
        assert await user_count(context) == 0

    async def test_legacy_hashes_verify_and_are_upgraded(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        from passlib.hash import argon2, bcrypt, pbkdf2_sha256

        legacy = {
            "bcrypt": bcrypt.using(rounds=4).hash(PASSWORD),
            "pbkdf2": pbkdf2_sha256.hash(PASSWORD),
            "cheap argon2id": argon2.using(type="ID", memory_cost=8192, time_cost=1).hash(PASSWORD),
        }
        for name, old_hash in legacy.items():
            user = await register(client)
            await update_user(context, user, password_hash=old_hash)
            await login(client, user["email"])
            async with context.sessionmaker() as db:
                stored = await db.get(User, uuid.UUID(user["id"]))
            assert stored is not None
            assert stored.password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$"), name

    async def test_bcrypt_ignores_nothing_past_72_bytes(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        from passlib.hash import bcrypt

        long_password = "a" * 72 + "tail one"
        user = await register(client)
        await update_user(context, user, password_hash=bcrypt.using(rounds=4).hash("a" * 72))
        response = await client.post(
            "/token",
            data={"grant_type": "password", "username": user["email"], "password": long_password},
        )
        assert response.json()["error"] == "invalid_grant"


class TestMe:
    async def test_profile(self, client: httpx.AsyncClient) -> None:
        user, tokens = await registered_login(client)
        response = await client.get("/users/me", headers=bearer(tokens))
        assert response.status_code == 200
        assert response.json() == user
        assert response.headers["cache-control"] == "no-store"

    async def test_disabled_user_is_refused(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        user, tokens = await registered_login(client)
        await update_user(context, user, is_active=False)
        response = await client.get("/users/me", headers=bearer(tokens))
        assert response.status_code == 401

    async def test_needs_a_token(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/users/me")
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"] == "invalid_token"


class TestPasswordChange:
    async def test_ends_other_sessions_keeps_this_one(self, client: httpx.AsyncClient) -> None:
        user, mine, other = await two_sessions(client)
        response = await client.post(
            "/users/me/password",
            json={"current_password": PASSWORD, "new_password": "a brand new secret"},
            headers=bearer(mine),
        )
        assert response.status_code == 204
        assert not await refresh_works(client, other)
        assert await refresh_works(client, mine)
        # The new password works, the old one no longer does.
        await login(client, user["email"], "a brand new secret")
        old = await client.post(
            "/token",
            data={"grant_type": "password", "username": user["email"], "password": PASSWORD},
        )
        assert old.json()["error"] == "invalid_grant"

    async def test_wrong_current_password_changes_nothing(self, client: httpx.AsyncClient) -> None:
        user, mine, other = await two_sessions(client)
        response = await client.post(
            "/users/me/password",
            json={"current_password": "not my password", "new_password": "a brand new secret"},
            headers=bearer(mine),
        )
        assert response.status_code == 403
        assert response.json()["error"] == "invalid_credentials"
        assert await refresh_works(client, other)
        await login(client, user["email"])

    @pytest.mark.parametrize("new_password", ["short", "x" * 129])
    async def test_new_password_must_have_a_valid_length(
        self, client: httpx.AsyncClient, new_password: str
    ) -> None:
        user, mine, _ = await two_sessions(client)
        response = await client.post(
            "/users/me/password",
            json={"current_password": PASSWORD, "new_password": new_password},
            headers=bearer(mine),
        )
        assert response.status_code == 422
        assert response.json()["error"] == "invalid_request"
        await login(client, user["email"])
