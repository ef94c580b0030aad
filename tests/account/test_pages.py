"""The pages that mailed links open (account/pages.py), over HTTP: their headers, a GET
that is the same for every request and uses nothing up, and links that come from
configuration only. What they do in a browser: tests/browser/test_link_pages.py."""

from __future__ import annotations

import re
from urllib.parse import urljoin

import httpx
import pytest

from authapi.context import AppContext
from tests.support.factories import bearer, login, register
from tests.support.mail import Mailbox, SMTPServer, link_of, mailbox_overrides

PAGES = ["/email/verify", "/password/reset"]
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
HOSTILE_HEADERS = {
    "Host": "evil.example",
    "X-Forwarded-Host": "evil.example",
    "X-Forwarded-Proto": "https",
    "Forwarded": "host=evil.example;proto=https",
}
# What differs between two answers that are otherwise the same.
PER_REQUEST = {"x-request-id", "date"}


def same_answer(response: httpx.Response) -> tuple[int, bytes, list[tuple[str, str]]]:
    headers = sorted((k, v) for k, v in response.headers.items() if k not in PER_REQUEST)
    return response.status_code, response.content, headers


@pytest.mark.parametrize("path", PAGES)
class TestThePage:
    async def test_headers(self, client: httpx.AsyncClient, path: str) -> None:
        response = await client.get(path)
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert response.headers.get_list("content-security-policy") == [CSP]
        assert response.headers.get_list("cache-control") == ["no-store"]
        assert response.headers.get_list("referrer-policy") == ["no-referrer"]
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"

    async def test_no_inline_script_or_style(self, client: httpx.AsyncClient, path: str) -> None:
        html = (await client.get(path)).text
        scripts = re.findall(r"<script\b[^>]*>(.*?)</script>", html, re.DOTALL)
        assert scripts == [""]  # one script, and it is a file
        assert "<style" not in html
        assert not re.search(r"\s(style|on\w+)=", html)
        assert "<noscript>" in html  # without JavaScript, the page says it needs it

    async def test_its_script_and_style_sheet_load_from_here(
        self, client: httpx.AsyncClient, path: str
    ) -> None:
        html = (await client.get(path)).text
        assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
        assert len(assets) == 2
        for asset in assets:
            url = urljoin(f"http://testserver{path}", asset)
            assert url.startswith("http://testserver/account/static/"), url
            response = await client.get(url)
            assert response.status_code == 200, url
            assert response.headers["content-type"].split(";")[0] in (
                "text/javascript",
                "text/css",
            )

    async def test_is_the_same_whatever_the_request_says(
        self, client: httpx.AsyncClient, path: str
    ) -> None:
        plain = same_answer(await client.get(path))
        for variant in (
            await client.get(f"{path}#token=ev_{'A' * 43}"),  # never sent, by httpx either
            await client.get(f"{path}?utm_source=mail&x=%00"),
            await client.get(path, headers=HOSTILE_HEADERS),
            await client.get(path, headers={"Cookie": "a=b", "Referer": "https://evil.example/"}),
        ):
            assert same_answer(variant) == plain

    async def test_head_answers_as_get_does(self, client: httpx.AsyncClient, path: str) -> None:
        page = await client.get(path)
        head = await client.head(path)
        assert head.status_code == 200
        assert head.headers["content-security-policy"] == CSP
        assert head.headers["content-length"] == page.headers["content-length"]

    async def test_a_token_in_the_query_is_refused(
        self, client: httpx.AsyncClient, path: str
    ) -> None:
        response = await client.get(path, params={"token": f"ev_{'A' * 43}"})
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_request"

    async def test_is_an_html_page_in_the_openapi_document(
        self, client: httpx.AsyncClient, path: str
    ) -> None:
        operations = (await client.get("/openapi.json")).json()["paths"][path]
        assert set(operations) == {"get", "post"}
        assert set(operations["get"]["responses"]["200"]["content"]) == {"text/html"}


class TestOpeningALink:
    @pytest.fixture
    def settings_overrides(self, smtp_server: SMTPServer) -> dict[str, object]:
        # Even a proxy we trust does not choose where links point.
        return {**mailbox_overrides(smtp_server), "trusted_proxies": ["127.0.0.1/32"]}

    async def test_uses_nothing_up(self, client: httpx.AsyncClient, mailbox: Mailbox) -> None:
        user = await register(client)
        link = link_of(await mailbox.receive(user["email"]))
        token = link.partition("#token=")[2]
        # What a mail scanner does: fetch the link, even with the token in the query.
        assert (await client.get(link)).status_code == 200
        assert (await client.get("/email/verify", params={"token": token})).status_code == 400
        verified = await client.post("/email/verify", json={"token": token})
        assert verified.status_code == 200, verified.text

    async def test_links_ignore_host_and_forwarded_headers(
        self, client: httpx.AsyncClient, mailbox: Mailbox, context: AppContext
    ) -> None:
        user = await register(client)
        await mailbox.receive(user["email"])
        tokens = await login(client, user["email"])
        response = await client.post(
            "/email/verification",
            headers={**bearer(tokens), **HOSTILE_HEADERS},
        )
        assert response.status_code == 202
        link = link_of(await mailbox.receive(user["email"]))
        assert link.startswith(f"{context.settings.issuer}/email/verify#token=ev_")
        assert "evil" not in link
