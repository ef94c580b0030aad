"""Property tests: what must hold for every input, not just for the cases we thought of.

Each property is bounded (a few hundred examples at most) and derandomized, so CI runs
the same examples every time.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import quote

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from authapi.access_tokens.service import AccessTokens, AccessTokenSubject
from authapi.errors import InvalidScope, InvalidToken
from authapi.oauth.issuing import resolve_scope
from authapi.sessions.rotation import RefreshTokenClaims, RefreshTokenCodec
from authapi.signing.keys import KeySet, PrivateKey, SigningKey, algorithm_for, thumbprint
from authapi.users.emails import normalize_email
from tests.support.factories import bearer, login, register, update_user
from tests.support.settings import CHEAP_HASHES

PURE = settings(max_examples=300, deadline=None, derandomize=True, database=None)
# Through the app: each example is a request (or a few), on both databases.
HTTP = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# Any text at all, lone surrogates included (`st.text()` leaves those out).
any_text = st.text(st.characters())


@st.composite
def mutations(draw: st.DrawFn, token: str) -> str:
    """`token` changed in one way: a character replaced (by one of the token's own
    alphabet, so shape checks pass, or by anything), inserted or deleted, the token cut
    short or extended, or the case of a letter or of the whole token changed."""
    kind = draw(st.sampled_from(["replace", "insert", "delete", "truncate", "extend", "case"]))
    characters = st.one_of(st.sampled_from(BASE64URL + ".="), st.characters())
    if kind == "replace":
        index = draw(st.integers(0, len(token) - 1))
        new = draw(characters.filter(lambda c: c != token[index]))
        return token[:index] + new + token[index + 1 :]
    if kind == "insert":
        index = draw(st.integers(0, len(token)))
        return token[:index] + draw(characters) + token[index:]
    if kind == "delete":
        index = draw(st.integers(0, len(token) - 1))
        return token[:index] + token[index + 1 :]
    if kind == "truncate":
        return token[: draw(st.integers(0, len(token) - 1))]
    if kind == "extend":
        # Padding and separators first: base64 decoders tend to overlook them.
        tails = st.one_of(
            st.sampled_from(["=", "==", ".", " ", "\n", "\x00"]),
            st.text(characters, min_size=1, max_size=8),
        )
        return token + draw(tails)
    if draw(st.booleans()):
        mutated = draw(st.sampled_from([token.upper(), token.lower(), token.swapcase()]))
    else:
        letters = [i for i, c in enumerate(token) if c.isalpha()]
        index = draw(st.sampled_from(letters))
        mutated = token[:index] + token[index].swapcase() + token[index + 1 :]
    assume(mutated != token)
    return mutated


class TestRefreshTokenCodec:
    codec = RefreshTokenCodec(bytes(range(32)))
    generations = st.integers(min_value=0, max_value=2**63 - 1)

    @PURE
    @given(session_id=st.uuids(), generation=generations)
    def test_round_trip(self, session_id: uuid.UUID, generation: int) -> None:
        token = self.codec.encode(session_id, generation)
        assert token.startswith("rt_")
        assert self.codec.decode(token) == RefreshTokenClaims(session_id, generation)

    @PURE
    @given(text=any_text)
    def test_random_text_is_refused(self, text: str) -> None:
        assert self.codec.decode(text) is None

    @PURE
    @given(session_id=st.uuids(), generation=generations, data=st.data())
    def test_any_mutation_is_refused(
        self, session_id: uuid.UUID, generation: int, data: st.DataObject
    ) -> None:
        token = self.codec.encode(session_id, generation)
        mutated = data.draw(mutations(token))
        assert mutated != token
        assert self.codec.decode(mutated) is None

    @PURE
    @given(session_id=st.uuids(), generation=generations)
    def test_another_key_refuses_it(self, session_id: uuid.UUID, generation: int) -> None:
        token = self.codec.encode(session_id, generation)
        assert RefreshTokenCodec(bytes(range(1, 33))).decode(token) is None


def _key_set(private: PrivateKey) -> KeySet:
    public = private.public_key()
    key = SigningKey(
        kid=thumbprint(public),
        algorithm=algorithm_for(public),
        public_key=public,
        private_key=private,
    )
    return KeySet(signing=key, by_kid={key.kid: key})


KEY_SETS = {
    "EdDSA": _key_set(ed25519.Ed25519PrivateKey.generate()),
    "ES256": _key_set(ec.generate_private_key(ec.SECP256R1())),
    "RS256": _key_set(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
}


@pytest.fixture(params=sorted(KEY_SETS))
def access_tokens(request: pytest.FixtureRequest) -> AccessTokens:
    return AccessTokens(
        KEY_SETS[request.param],
        issuer="http://issuer.test",
        audience="authapi",
        client_id="authapi",
        ttl=300,
    )


SUBJECT = AccessTokenSubject(
    user_id=uuid.UUID("6b1f2c7e-59b4-4a8e-9d0e-3f1c2b4a5d6e"),
    session_id=uuid.UUID("0d6c1f8e-2b3a-4c5d-8e9f-a0b1c2d3e4f5"),
    role="user",
    scope="profile email",
    amr=("pwd",),
)


@pytest.fixture
def issued_token(access_tokens: AccessTokens) -> str:
    """One token for all the examples of a test, so that its mutations are reproducible."""
    return access_tokens.issue(SUBJECT, datetime.now(UTC))


class TestAccessTokenVerify:
    @settings(PURE, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(text=st.text(st.characters(), max_size=600))
    def test_random_text_is_invalid(self, access_tokens: AccessTokens, text: str) -> None:
        with pytest.raises(InvalidToken):
            access_tokens.verify(text)

    @settings(PURE, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(data=st.data())
    def test_only_the_untouched_token_verifies(
        self, access_tokens: AccessTokens, issued_token: str, data: st.DataObject
    ) -> None:
        token = issued_token
        issued = jwt.decode(token, options={"verify_signature": False})
        assert access_tokens.verify(token) == issued
        mutated = data.draw(mutations(token))
        try:
            claims = access_tokens.verify(mutated)
        except InvalidToken:
            return
        pytest.fail(f"a changed token was accepted: {mutated!r} -> {claims!r}")


# Local parts and domains that email-validator accepts, with non-ASCII letters and the
# case-sensitive corners of Unicode (ß, dotted and dotless i, Greek final sigma, ...).
_LOCAL_ALPHABET = st.sampled_from("abcxyzABCXYZ019.+-_!#$%&'*/=?^`{|}~" + "äÄßẞéÉıİiIσςΣǅǆǄﬀⅫΩΩµμ")
_emails_like = st.builds(
    "{}@{}".format,
    st.text(_LOCAL_ALPHABET, min_size=1, max_size=20),
    st.sampled_from(["example.com", "EXAMPLE.org", "exämple.net", "ÉXAMPLE.de", "a.b.co"]),
)
email_candidates = st.one_of(st.emails(), _emails_like, st.text(st.characters(), max_size=300))


def _normalized(raw: str) -> str | None:
    try:
        return normalize_email(raw)
    except ValueError:
        return None


class TestNormalizeEmail:
    @PURE
    @given(raw=email_candidates)
    def test_raises_only_value_error(self, raw: str) -> None:
        _normalized(raw)  # anything but a ValueError propagates and fails the test

    @PURE
    @given(raw=email_candidates)
    def test_idempotent(self, raw: str) -> None:
        """A normalized address is accepted again, and normalizes to itself."""
        once = _normalized(raw)
        assume(once is not None)
        assert _normalized(cast(str, once)) == once

    @PURE
    @given(raw=email_candidates)
    def test_case_insensitive(self, raw: str) -> None:
        """Addresses that differ only by case (the same once lowercased) are one address.
        Not every `upper()` is such a variant: "ı".upper() is "I", whose lowercase is "i"."""
        once = _normalized(raw)
        assume(once is not None)
        for variant in (raw.upper(), raw.lower(), raw.swapcase(), raw.title()):
            if variant.lower() == raw.lower():
                assert _normalized(variant) == once, variant


scope_tokens = st.text(
    st.characters(codec="ascii", min_codepoint=0x21, max_codepoint=0x7E, exclude_characters='"\\'),
    min_size=1,
    max_size=10,
)


class TestResolveScope:
    @PURE
    @given(
        allowed=st.lists(scope_tokens, unique=True, max_size=6),
        requested=st.one_of(
            st.none(),
            st.text(max_size=40),
            st.lists(scope_tokens, max_size=6).map(" ".join),
        ),
        data=st.data(),
    )
    def test_a_subset_of_allowed_in_its_order(
        self, allowed: list[str], requested: str | None, data: st.DataObject
    ) -> None:
        only_allowed: bool = data.draw(st.booleans())
        if allowed and only_allowed:
            # Often enough, a request made of allowed scopes only.
            chosen = data.draw(st.lists(st.sampled_from(allowed), min_size=1))
            requested = " ".join(chosen)
        try:
            granted = resolve_scope(requested, allowed)
        except InvalidScope:
            return
        tokens = granted.split()
        assert granted == " ".join(tokens)
        assert tokens == [scope for scope in allowed if scope in tokens]
        if requested is not None and requested.strip():
            assert set(tokens) == set(requested.split(" "))
        else:
            assert tokens == allowed


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"rate_limit_enabled": False, **CHEAP_HASHES}


FORM_ENDPOINTS = ["/token", "/revoke"]
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
form_fields = st.sampled_from(
    ["grant_type", "username", "password", "scope", "refresh_token", "token", "token_type_hint"]
)
form_values = st.one_of(
    st.sampled_from(["password", "refresh_token", "", "rt_", "user@example.com"]), st.text()
)


def assert_contract_answer(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error", "error_description"}, body
        assert all(isinstance(value, str) and value for value in body.values()), body


class TestFormBodies:
    @pytest.mark.parametrize("path", FORM_ENDPOINTS)
    @HTTP
    @given(form=st.dictionaries(st.one_of(form_fields, st.text()), form_values, max_size=6))
    async def test_any_form(
        self, client: httpx.AsyncClient, path: str, form: dict[str, str]
    ) -> None:
        assert_contract_answer(await client.post(path, data=form))

    @pytest.mark.parametrize("path", FORM_ENDPOINTS)
    @HTTP
    @given(body=st.binary(max_size=400))
    async def test_any_bytes(self, client: httpx.AsyncClient, path: str, body: bytes) -> None:
        assert_contract_answer(await client.post(path, content=body, headers=FORM))


def _surrogate_safe(text: str) -> str:
    """Percent-encoded, lone surrogates as the bytes they would be (no UTF-8)."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


# Values built to break the layers under the schema: control characters, NUL and lone
# surrogates, integers past 64 bits, instants a datetime cannot hold once in UTC, and
# things of the wrong type altogether.
hostile_text = st.one_of(
    st.sampled_from(
        [
            "\x00",
            "a\x00b",
            "\ud800",
            "x\udfff",
            "\x85",
            "\x1b[31m",
            "\r\n",
            "fe80::1%" + "a" * 80,
            "{0d6c1f8e-2b3a-4c5d-8e9f-a0b1c2d3e4f5}",
            "urn:uuid:0d6c1f8e-2b3a-4c5d-8e9f-a0b1c2d3e4f5",
        ]
    ),
    st.text(st.characters(), max_size=40),
)
hostile_numbers = st.one_of(
    st.sampled_from([2**63, 2**63 - 1, -(2**63) - 1, 2**64, 10**30, -1, 0]),
    st.integers(),
    st.floats(),
)
hostile_instants = st.sampled_from(
    [
        "9999-12-31T23:59:59-23:59",
        "0001-01-01T00:00:00+23:59",
        "0000-01-01T00:00:00Z",
        "10000-01-01T00:00:00Z",
        "2024-02-30T00:00:00Z",
        "2024-01-01T24:00:00Z",
        "2024-01-01T00:00:60Z",
        "2024-01-01T00:00:00+99:99",
    ]
)
hostile_scalars = st.one_of(hostile_text, hostile_numbers, hostile_instants)
hostile_values = st.one_of(
    hostile_scalars,
    st.none(),
    st.booleans(),
    st.lists(hostile_scalars, max_size=3),
    st.dictionaries(hostile_text, hostile_scalars, max_size=3),
)


def _as_text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _properties(document: dict[str, Any], media: dict[str, Any]) -> list[str]:
    schema = media.get("schema", {})
    if "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return sorted(schema.get("properties", {}))


@st.composite
def hostile_request(
    draw: st.DrawFn, document: dict[str, Any], path: str, method: str
) -> dict[str, Any]:
    """A request to one operation of the document, with hostile values in its path,
    its query, its body's fields (or as the whole body) and the headers that are stored."""
    operation = document["paths"][path][method]
    query: list[str] = []
    for parameter in operation.get("parameters", []):
        value = _surrogate_safe(_as_text(draw(hostile_scalars)))
        if parameter["in"] == "path":
            path = path.replace("{" + parameter["name"] + "}", value)
        elif parameter["in"] == "query" and draw(st.booleans()):
            query.append(f"{parameter['name']}={value}")
    headers: dict[str, str | bytes] = {
        "User-Agent": draw(st.binary(max_size=20)),
        "X-Forwarded-For": draw(hostile_text).encode("utf-8", "surrogatepass"),
    }
    content = b""
    for media_type, media in operation.get("requestBody", {}).get("content", {}).items():
        fields = {
            name: draw(hostile_values)
            for name in _properties(document, media)
            if draw(st.booleans())
        }
        headers["Content-Type"] = media_type
        if media_type == "application/json":
            body = draw(st.one_of(st.just(fields), hostile_values))
            content = json.dumps(body).encode()  # lone surrogates as JSON escapes
        else:
            pairs = [f"{name}={_surrogate_safe(_as_text(v))}" for name, v in fields.items()]
            content = "&".join(pairs).encode()
    return {
        "method": method.upper(),
        "url": path + ("?" + "&".join(query) if query else ""),
        "headers": headers,
        "content": content,
    }


class TestEveryOperation:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, object]:
        # X-Forwarded-For believed, so its values reach the sessions and the audit trail.
        return {
            "rate_limit_enabled": False,
            **CHEAP_HASHES,
            "trusted_proxies": ["127.0.0.1"],
        }

    @settings(HTTP, max_examples=25)
    @given(data=st.data())
    async def test_hostile_values_anywhere(
        self, client: httpx.AsyncClient, context: Any, data: st.DataObject
    ) -> None:
        """Every operation of the document in each example, as an admin (so that the
        checks of token and role are passed), with hostile values in every parameter
        and field: never a 5xx."""
        document = (await client.get("/openapi.json")).json()
        admin = await register(client)
        await update_user(context, admin, role="admin")
        for path, methods in document["paths"].items():
            for method in methods:
                request = data.draw(hostile_request(document, path, method))
                # A fresh session each time: the previous request may have ended it.
                request["headers"].update(bearer(await login(client, admin["email"])))
                response = await client.request(**request)
                assert response.status_code < 500, (request, response.text)
                if response.status_code >= 400 and response.content:
                    assert set(response.json()) == {"error", "error_description"}, response.text
