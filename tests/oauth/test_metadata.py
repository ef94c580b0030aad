"""RFC 8414 authorization server metadata, checked with Authlib's validator."""

from __future__ import annotations

import httpx
import pytest
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata

METADATA = "/.well-known/oauth-authorization-server"


async def metadata(client: httpx.AsyncClient) -> dict[str, object]:
    response = await client.get(METADATA)
    assert response.status_code == 200, response.text
    document: dict[str, object] = response.json()
    return document


class TestMetadataDocument:
    async def test_passes_authlibs_validation(self, client: httpx.AsyncClient) -> None:
        document = await metadata(client)

        AuthorizationServerMetadata(document).validate()  # raises ValueError when invalid

    async def test_claims_no_front_channel(self, client: httpx.AsyncClient) -> None:
        document = await metadata(client)

        assert "authorization_endpoint" not in document
        assert document["response_types_supported"] == ["none"]
        grants = document["grant_types_supported"]
        assert isinstance(grants, list)
        assert not {"authorization_code", "implicit"} & set(grants)


class TestMetadataOfAnHttpsIssuer:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, object]:
        return {"issuer": "https://auth.example.com/"}

    async def test_every_url_is_under_the_issuer(self, client: httpx.AsyncClient) -> None:
        document = await metadata(client)

        AuthorizationServerMetadata(document).validate()
        assert document["issuer"] == "https://auth.example.com"  # RFC 8414 §3.3: no slash
        for name in ("token_endpoint", "jwks_uri", "revocation_endpoint"):
            assert str(document[name]).startswith("https://auth.example.com/"), name
