"""Size limits, secrets in URLs, and the headers every response carries."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.factories import PASSWORD, bearer, register, registered_login


class TestSizeLimits:
    async def test_oversized_declared_body_is_413(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/users",
            content=b"{" + b" " * 70_000 + b"}",
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 413
        assert response.json()["error"] == "request_too_large"
        assert response.headers["x-content-type-options"] == "nosniff"

    async def test_oversized_streamed_body_is_413(self, client: httpx.AsyncClient) -> None:
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(100):
                yield b"a=" + b"b" * 1000 + b"&"

        response = await client.post(
            "/token",
            content=chunks(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 413
        assert response.json()["error"] == "request_too_large"

    @pytest.mark.parametrize("length", ["-1", "abc", "99999999999999999999"])
    async def test_bad_content_length_is_refused(
        self, client: httpx.AsyncClient, length: str
    ) -> None:
        response = await client.post(
            "/refresh",
            content=b"{}",
            headers={"Content-Length": length, "Content-Type": "application/json"},
        )
        assert 400 <= response.status_code < 500

    async def test_oversized_headers_are_431(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/healthz", headers={"X-Padding": "x" * 20_000})
        assert response.status_code == 431
        assert response.json()["error"] == "request_too_large"

    async def test_oversized_bearer_token_is_401(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/whoami", headers=bearer("a" * 8000))
        assert response.status_code == 401

    async def test_normal_requests_pass(self, client: httpx.AsyncClient) -> None:
        _, tokens = await registered_login(client)
        assert (await client.get("/whoami", headers=bearer(tokens))).status_code == 200


class TestSecretsInTheUrl:
    @pytest.mark.parametrize(
        ("method", "path", "query"),
        [
            ("POST", "/token", "grant_type=password&username=a@example.com&password=secret123"),
            ("POST", "/token", "refresh_token=rt_abc"),
            ("POST", "/refresh", "refresh_token=rt_abc"),
            ("POST", "/revoke", "token=rt_abc"),
            ("GET", "/whoami", "access_token=eyJ"),
            ("GET", "/users/me", "access_token=eyJ"),
            ("POST", "/users", "password=secret123"),
        ],
    )
    async def test_are_refused(
        self, client: httpx.AsyncClient, method: str, path: str, query: str
    ) -> None:
        response = await client.request(method, f"{path}?{query}")
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_request"
        assert "URL" in response.json()["error_description"]

    async def test_even_alongside_a_valid_body(self, client: httpx.AsyncClient) -> None:
        user = await register(client)
        response = await client.post(
            f"/token?password={PASSWORD}",
            data={"grant_type": "password", "username": user["email"], "password": PASSWORD},
        )
        assert response.status_code == 400

    async def test_harmless_query_parameters_pass(self, client: httpx.AsyncClient) -> None:
        _, tokens = await registered_login(client)
        response = await client.get("/whoami?utm_source=x", headers=bearer(tokens))
        assert response.status_code == 200


class TestHeaders:
    @pytest.mark.parametrize("path", ["/healthz", "/nope", "/.well-known/jwks.json", "/whoami"])
    async def test_security_headers_on_every_response(
        self, client: httpx.AsyncClient, path: str
    ) -> None:
        response = await client.get(path)
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "strict-transport-security" not in response.headers  # not configured

    async def test_no_store_on_everything_with_tokens_or_user_data(
        self, client: httpx.AsyncClient
    ) -> None:
        user, tokens = await registered_login(client)
        responses = [
            await client.post("/users", json={"email": "x@example.com", "password": PASSWORD}),
            await client.post("/refresh", json={"refresh_token": tokens["refresh_token"]}),
            await client.get("/users/me", headers=bearer(tokens)),
            await client.get("/whoami", headers=bearer(tokens)),
            await client.get("/sessions", headers=bearer(tokens)),
            await client.get("/admin/audit", headers=bearer(tokens)),
            await client.post("/token", data={"grant_type": "password"}),
        ]
        for response in responses:
            assert response.headers["cache-control"] == "no-store", response.request.url

    async def test_jwks_is_cacheable(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/.well-known/jwks.json")
        assert response.headers["cache-control"].startswith("public, max-age=")

    @pytest.mark.parametrize("settings_overrides", [{"hsts_max_age": 31536000}])
    async def test_hsts_when_configured(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/healthz")
        assert (
            response.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
        )
