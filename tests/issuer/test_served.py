"""Without AUTHAPI_ISSUER, the issuer is the address `authapi serve` listens on, and a
request for another host is said once in the log."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from authapi.issuer.addresses import issuer_for_listen_address
from tests.support.servers import serving

METADATA = "/.well-known/oauth-authorization-server"
FOREIGN_HOST = "requests arrive for host"


class TestIssuerOfAServer:
    def test_metadata_names_the_port_it_serves(
        self, database_url: str, data_dir: Path, tmp_path: Path
    ) -> None:
        with (
            serving(database_url, data_dir, tmp_path) as server,
            httpx.Client(base_url=server.base_url, timeout=10.0) as http,
        ):
            document = http.get(METADATA).json()

        assert document["issuer"] == server.base_url  # http://127.0.0.1:<a free port>
        assert document["token_endpoint"] == f"{server.base_url}/token"
        assert document["jwks_uri"] == f"{server.base_url}/.well-known/jwks.json"

    def test_a_configured_issuer_wins(
        self, database_url: str, data_dir: Path, tmp_path: Path
    ) -> None:
        env = {"AUTHAPI_ISSUER": "https://auth.example.com"}
        with (
            serving(database_url, data_dir, tmp_path, env=env) as server,
            httpx.Client(base_url=server.base_url, timeout=10.0) as http,
        ):
            document = http.get(METADATA).json()

        assert document["token_endpoint"] == "https://auth.example.com/token"

    def test_another_host_is_logged_once(
        self, database_url: str, data_dir: Path, tmp_path: Path
    ) -> None:
        with (
            serving(database_url, data_dir, tmp_path) as server,
            httpx.Client(base_url=server.base_url, timeout=10.0) as http,
        ):
            port = server.base_url.rsplit(":", 1)[1]
            for _ in range(3):
                assert http.get("/.well-known/jwks.json").status_code == 200
            assert FOREIGN_HOST not in server.log()
            for _ in range(3):
                response = http.get("/.well-known/jwks.json", headers={"Host": f"localhost:{port}"})
                assert response.status_code == 200

        assert server.log().count(FOREIGN_HOST) == 1, server.log()
        assert f"'localhost:{port}'" in server.log()


@pytest.mark.parametrize(
    ("host", "issuer"),
    [
        ("127.0.0.1", "http://127.0.0.1:8000"),
        ("localhost", "http://localhost:8000"),
        ("::1", "http://[::1]:8000"),
        # Every interface is no address a client uses: the one this machine's clients do.
        ("0.0.0.0", "http://localhost:8000"),  # noqa: S104 - a name, not a bind
        ("::", "http://localhost:8000"),
    ],
)
def test_issuer_for_a_listen_address(host: str, issuer: str) -> None:
    assert issuer_for_listen_address(host, 8000) == issuer


class TestForeignHostWarningInProcess:
    """The app's issuer is http://localhost:8000; the test client calls testserver."""

    async def test_once_per_app_and_not_for_probes(
        self, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.WARNING, logger="authapi.issuer.hosts")
        assert (await client.get("/healthz")).status_code == 200
        assert FOREIGN_HOST not in caplog.text

        for _ in range(3):
            await client.get("/.well-known/jwks.json")

        assert caplog.text.count(FOREIGN_HOST) == 1
        assert "'testserver'" in caplog.text
        assert "the issuer is http://localhost:8000" in caplog.text

    async def test_silent_for_the_issuers_host(
        self, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.WARNING, logger="authapi.issuer.hosts")
        for host in ("localhost:8000", "LOCALHOST:8000"):
            await client.get("/.well-known/jwks.json", headers={"Host": host})

        assert FOREIGN_HOST not in caplog.text
