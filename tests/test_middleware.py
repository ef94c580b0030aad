"""Size limits, secrets in URLs, and the headers every response carries."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from tests.support.factories import PASSWORD, bearer, register, registered_login


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
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["content-security-policy"] == "frame-ancestors 'none'"
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


HSTS = "max-age=31536000; includeSubDomains"


async def get_from(
    app: FastAPI, base_url: str, headers: dict[str, str], peer: str = "127.0.0.1"
) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))
    async with httpx.AsyncClient(transport=transport, base_url=base_url) as http:
        return await http.get("/healthz", headers=headers)


class TestHsts:
    """Only on answers that went out over HTTPS, as the connection or a trusted proxy says."""

    @pytest.fixture
    def settings_overrides(self) -> dict[str, object]:
        return {"hsts_max_age": 31536000, "trusted_proxies": ["10.0.0.0/8"]}

    @pytest.mark.parametrize(
        ("base_url", "peer", "forwarded_proto", "sent"),
        [
            ("https://testserver", "127.0.0.1", None, True),
            ("http://testserver", "127.0.0.1", None, False),
            # A client cannot claim HTTPS for itself: only a trusted proxy can.
            ("http://testserver", "127.0.0.1", "https", False),
            ("http://testserver", "10.0.0.5", "https", True),
            ("http://testserver", "10.0.0.5", "http", False),
            ("http://testserver", "10.0.0.5", None, False),
            # The value the nearest (trusted) hop wrote counts, not one the client added.
            ("http://testserver", "10.0.0.5", "https, http", False),
            ("http://testserver", "10.0.0.5", "HTTPS", True),
        ],
    )
    async def test_only_over_https(
        self,
        app: FastAPI,
        base_url: str,
        peer: str,
        forwarded_proto: str | None,
        sent: bool,
    ) -> None:
        headers = {"X-Forwarded-Proto": forwarded_proto} if forwarded_proto else {}
        response = await get_from(app, base_url, headers, peer)
        assert response.status_code == 200
        assert response.headers.get("strict-transport-security") == (HSTS if sent else None)

    @pytest.mark.parametrize("settings_overrides", [{}])
    async def test_never_unless_configured(self, app: FastAPI) -> None:
        response = await get_from(app, "https://testserver", {})
        assert "strict-transport-security" not in response.headers


class TestDocsPolicy:
    async def test_scripts_only_from_here_and_the_page_own_inline_one(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.get("/docs")
        policy = dict(
            directive.strip().split(" ", 1)
            for directive in response.headers["content-security-policy"].split(";")
        )
        assert policy["default-src"] == "'none'"
        assert policy["frame-ancestors"] == "'none'"
        assert response.headers["x-frame-options"] == "DENY"
        assert "unsafe-inline" not in response.headers["content-security-policy"]
        assert "unsafe-eval" not in response.headers["content-security-policy"]
        inline = re.findall(r"<script>(.*?)</script>", response.text, re.DOTALL)
        digests = [base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() for s in inline]
        assert policy["script-src"].split() == ["'self'"] + [f"'sha256-{d}'" for d in digests]
        for directive in ("style-src", "connect-src"):
            assert policy[directive] == "'self'"


class TestRefusedCorsPreflight:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, object]:
        return {"cors_origins": ["https://app.example"]}

    @pytest.mark.parametrize(
        ("origin", "method", "refused"),
        [
            ("https://evil.example", "POST", "origin"),
            ("https://app.example", "PUT", "method"),
            ("https://evil.example", "PUT", "origin, method"),
        ],
    )
    async def test_is_the_json_error_shape(
        self, client: httpx.AsyncClient, origin: str, method: str, refused: str
    ) -> None:
        response = await client.options(
            "/refresh", headers={"Origin": origin, "Access-Control-Request-Method": method}
        )
        assert response.status_code == 400
        assert response.headers["content-type"] == "application/json"
        body = response.json()
        assert set(body) == {"error", "error_description"}
        assert body["error"] == "invalid_request"
        assert f"{refused} not allowed" in body["error_description"]
        if "origin" in refused:
            assert "access-control-allow-origin" not in response.headers
        assert response.headers["cache-control"] == "no-store"
