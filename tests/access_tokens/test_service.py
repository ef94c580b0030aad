"""Access tokens: RFC 9068 shape, and every forgery we know of answered with 401."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from authapi.context import AppContext
from authapi.signing.keys import PrivateKey
from tests.support.factories import bearer, registered_login


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(obj: dict[str, Any]) -> str:
    return b64(json.dumps(obj).encode())


def claims_of(context: AppContext, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": context.settings.issuer,
        "aud": context.settings.audience,
        "sub": "6b1f2c7e-59b4-4a8e-9d0e-3f1c2b4a5d6e",
        "exp": now + 300,
        "iat": now,
        "jti": "abc",
        "sid": "0d6c1f8e-2b3a-4c5d-8e9f-a0b1c2d3e4f5",
        "client_id": "authapi",
        "scope": "profile",
        "role": "admin",
        "amr": ["pwd"],
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def private_key(context: AppContext) -> PrivateKey:
    key = context.access_tokens.keys.signing.private_key
    assert key is not None
    return key


def sign(context: AppContext, claims: dict[str, Any], **header: Any) -> str:
    key = context.access_tokens.keys.signing
    headers = {"typ": "at+jwt", "kid": key.kid, **header}
    return jwt.encode(claims, private_key(context), algorithm=key.algorithm, headers=headers)


def unsigned(context: AppContext) -> str:
    header = {"alg": "none", "typ": "at+jwt", "kid": context.access_tokens.keys.signing.kid}
    return f"{segment(header)}.{segment(claims_of(context))}."


def hs256_with_public_key(context: AppContext) -> str:
    key = context.access_tokens.keys.signing
    header = {"alg": "HS256", "typ": "at+jwt", "kid": key.kid}
    secret = key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = f"{segment(header)}.{segment(claims_of(context))}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def tampered_payload(context: AppContext) -> str:
    header, _, signature = sign(context, claims_of(context, role="user")).split(".")
    return f"{header}.{segment(claims_of(context, role='admin'))}.{signature}"


def foreign_key(context: AppContext, kid: str) -> str:
    other = ed25519.Ed25519PrivateKey.generate()
    return jwt.encode(
        claims_of(context), other, algorithm="EdDSA", headers={"typ": "at+jwt", "kid": kid}
    )


def wrong_algorithm(context: AppContext) -> str:
    # A key of another type under our kid, and its algorithm in the header.
    other = ec.generate_private_key(ec.SECP256R1())
    kid = context.access_tokens.keys.signing.kid
    return jwt.encode(
        claims_of(context), other, algorithm="ES256", headers={"typ": "at+jwt", "kid": kid}
    )


FORGERIES: dict[str, Callable[[AppContext], str]] = {
    "alg none": unsigned,
    "HS256 with the public key as secret": hs256_with_public_key,
    "typ JWT": lambda c: sign(c, claims_of(c), typ="JWT"),
    "no typ": lambda c: jwt.encode(
        claims_of(c),
        private_key(c),
        algorithm="EdDSA",
        headers={"kid": c.access_tokens.keys.signing.kid, "typ": None},
    ),
    "wrong iss": lambda c: sign(c, claims_of(c, iss="https://evil.example")),
    "wrong aud": lambda c: sign(c, claims_of(c, aud="another-api")),
    "aud list": lambda c: sign(c, claims_of(c, aud=[c.settings.audience, "x"])),
    "missing aud": lambda c: sign(c, claims_of(c, aud=None)),
    "missing sub": lambda c: sign(c, claims_of(c, sub=None)),
    "non-uuid sub": lambda c: sign(c, claims_of(c, sub="admin")),
    "numeric sub": lambda c: sign(c, claims_of(c, sub=42)),
    "missing exp": lambda c: sign(c, claims_of(c, exp=None)),
    "expired": lambda c: sign(
        c, claims_of(c, exp=int(time.time()) - 1, iat=int(time.time()) - 301)
    ),
    "tampered payload": tampered_payload,
    "kid not ours": lambda c: foreign_key(c, "someone-elses-key"),
    "our kid, another key": lambda c: foreign_key(c, c.access_tokens.keys.signing.kid),
    "our kid, another algorithm": wrong_algorithm,
    "kid with path characters": lambda c: sign(c, claims_of(c), kid="../../etc/passwd"),
    "kid with SQL": lambda c: sign(c, claims_of(c), kid="' OR '1'='1"),
    "garbage": lambda c: "not-a-token",
    "oversized": lambda c: sign(c, claims_of(c, jti="x" * 5000)),
    # Well signed, but not claims we issue: each used to verify, and the next request
    # was a 500 (or, for another spelling of a sid, slipped past its revocation).
    "exp a string": lambda c: sign(c, claims_of(c, exp=str(int(time.time()) + 300))),
    "exp a float": lambda c: sign(c, claims_of(c, exp=time.time() + 300.5)),
    "iat a string": lambda c: sign(c, claims_of(c, iat=str(int(time.time())))),
    "nbf true": lambda c: sign(c, {**claims_of(c), "nbf": True}),
    "nbf a float string": lambda c: sign(c, {**claims_of(c), "nbf": "1.5"}),
    "jti a number": lambda c: sign(c, claims_of(c, jti=42)),
    "scope a list": lambda c: sign(c, claims_of(c, scope=["profile"])),
    "amr a string": lambda c: sign(c, claims_of(c, amr="pwd")),
    "amr with a number": lambda c: sign(c, claims_of(c, amr=["pwd", 1])),
    "sid in braces": lambda c: sign(c, claims_of(c, sid="{0d6c1f8e-2b3a-4c5d-8e9f-a0b1c2d3e4f5}")),
    "sid as a URN": lambda c: sign(
        c, claims_of(c, sid="urn:uuid:0d6c1f8e-2b3a-4c5d-8e9f-a0b1c2d3e4f5")
    ),
    "sid in capitals": lambda c: sign(c, claims_of(c, sid="0D6C1F8E-2B3A-4C5D-8E9F-A0B1C2D3E4F5")),
    "sid without hyphens": lambda c: sign(c, claims_of(c, sid="0d6c1f8e2b3a4c5d8e9fa0b1c2d3e4f5")),
    "sub in braces": lambda c: sign(c, claims_of(c, sub="{6b1f2c7e-59b4-4a8e-9d0e-3f1c2b4a5d6e}")),
}


class TestAccessTokenShape:
    async def test_header_and_claims(self, client: httpx.AsyncClient, context: AppContext) -> None:
        user, tokens = await registered_login(client)
        header = jwt.get_unverified_header(tokens["access_token"])
        assert header["typ"] == "at+jwt"
        assert header["alg"] == "EdDSA"
        assert header["kid"] in {k["kid"] for k in context.access_tokens.keys.jwks()["keys"]}
        claims = (await client.get("/whoami", headers=bearer(tokens))).json()
        assert set(claims) == {
            "iss",
            "aud",
            "sub",
            "exp",
            "iat",
            "jti",
            "sid",
            "client_id",
            "scope",
            "role",
            "amr",
        }
        assert claims["sub"] == user["id"]
        assert claims["exp"] - claims["iat"] == 300
        assert claims["role"] == "user"

    async def test_verifiable_with_the_jwks_alone(self, client: httpx.AsyncClient) -> None:
        user, tokens = await registered_login(client)
        jwks = (await client.get("/.well-known/jwks.json")).json()
        kid = jwt.get_unverified_header(tokens["access_token"])["kid"]
        jwk = next(k for k in jwks["keys"] if k["kid"] == kid)
        key = jwt.PyJWK(jwk)
        claims = jwt.decode(
            tokens["access_token"],
            key,
            algorithms=[jwk["alg"]],
            audience="authapi",
            issuer="http://localhost:8000",
        )
        assert claims["sub"] == user["id"]


class TestForgedTokens:
    @pytest.mark.parametrize("forgery", list(FORGERIES), ids=list(FORGERIES))
    async def test_refused_with_invalid_token(
        self, client: httpx.AsyncClient, context: AppContext, forgery: str
    ) -> None:
        token = FORGERIES[forgery](context)
        for path in ("/whoami", "/users/me", "/sessions"):
            response = await client.get(path, headers=bearer(token))
            assert response.status_code == 401, (path, response.text)
            assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
            assert response.json()["error"] == "invalid_token"

    async def test_a_well_signed_control_token_is_accepted(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        # Proves the forgeries above fail for their flaw, not for how they were made.
        response = await client.get("/whoami", headers=bearer(sign(context, claims_of(context))))
        assert response.status_code == 200

    async def test_refresh_token_as_bearer(self, client: httpx.AsyncClient) -> None:
        _, tokens = await registered_login(client)
        response = await client.get("/whoami", headers=bearer(tokens["refresh_token"]))
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'

    async def test_jku_x5u_jwk_headers_are_ignored(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        attacker = ed25519.Ed25519PrivateKey.generate()
        attacker_jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(attacker.public_key()))
        token = jwt.encode(
            claims_of(context),
            attacker,
            algorithm="EdDSA",
            headers={
                "typ": "at+jwt",
                "kid": context.access_tokens.keys.signing.kid,
                "jku": "http://127.0.0.1:9/jwks.json",
                "x5u": "http://127.0.0.1:9/cert.pem",
                "jwk": attacker_jwk,
            },
        )
        assert (await client.get("/whoami", headers=bearer(token))).status_code == 401

    @pytest.mark.parametrize(
        "authorization", ["", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "bearer"]
    )
    async def test_missing_or_other_scheme(
        self, client: httpx.AsyncClient, authorization: str
    ) -> None:
        response = await client.get("/whoami", headers={"Authorization": authorization})
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")


class TestDiscovery:
    async def test_jwks_has_public_keys_only(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/.well-known/jwks.json")
        assert response.status_code == 200
        assert response.headers["cache-control"] == "public, max-age=300"
        keys = response.json()["keys"]
        assert len(keys) == 1
        assert keys[0]["kty"] == "OKP"
        assert keys[0]["crv"] == "Ed25519"
        assert keys[0]["use"] == "sig"
        assert keys[0]["alg"] == "EdDSA"
        assert not {"d", "p", "q", "dp", "dq", "qi", "k"} & set(keys[0])

    async def test_rfc8414_metadata(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/.well-known/oauth-authorization-server")
        assert response.status_code == 200
        meta = response.json()
        assert meta["issuer"] == "http://localhost:8000"
        assert meta["token_endpoint"] == "http://localhost:8000/token"
        assert meta["jwks_uri"] == "http://localhost:8000/.well-known/jwks.json"
        assert meta["revocation_endpoint"] == "http://localhost:8000/revoke"
        assert meta["grant_types_supported"] == [
            "password",
            "refresh_token",
            "urn:authapi:params:oauth:grant-type:passkey",
            "urn:authapi:params:oauth:grant-type:mfa",
        ]
