"""Signing-key rollover with no outage: the states, the waits, every instance picking up
a change by itself, and the keys encrypted at rest.

In-process tests drive time with the app's FakeClock. PyJWT checks `exp` and `iat`
against the real time, so a test that verifies tokens through the app issues them
while the fake clock is not ahead of the real one; where the fake clock must run far
ahead, tokens are checked the way a resource server holding that JWKS would (signature
and claims), with `exp` compared to the fake clock.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from asgi_lifespan import LifespanManager
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import select

from authapi.app import create_app
from authapi.config import Settings, SigningAlgorithm
from authapi.context import AppContext
from authapi.db import transaction
from authapi.signing import rollover
from authapi.signing.keys import KeyConfigError, PrivateKey, generate_key, load_key_file
from authapi.signing.models import KeyState, StoredSigningKey
from authapi.signing.reload import read_keys
from authapi.signing.rollover import MARGIN_SECONDS, KeyChangeRefused, KeyChangeTooEarly, Waits
from authapi.signing.sealing import load_key_encryption_key, seal, unseal
from tests.support.clock import FakeClock
from tests.support.database import clear_signing_keys
from tests.support.factories import bearer, login, refresh, registered_login
from tests.support.keys import KEK, write_pem, write_public_pem
from tests.support.servers import authapi_env, run_authapi, serving
from tests.support.settings import make_settings

JWKS_MAX_AGE = 10
RELOAD_INTERVAL = 5.0
PUBLISH_WAIT = JWKS_MAX_AGE + RELOAD_INTERVAL + MARGIN_SECONDS  # generate -> rollover
EXPIRE_WAIT = 300 + RELOAD_INTERVAL + MARGIN_SECONDS  # rollover -> retire (default TTL)
OTHER_KEK = bytes(range(32))


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {
        "jwks_max_age": JWKS_MAX_AGE,
        "key_reload_interval": RELOAD_INTERVAL,
        "rate_limit_enabled": False,  # many logins and refreshes from one address
    }


# --- the operator's steps, as `authapi keys` runs them, on the app's clock ---------


async def generate(
    context: AppContext, clock: FakeClock, algorithm: SigningAlgorithm = "EdDSA"
) -> str:
    kek = load_key_encryption_key(context.settings)
    async with transaction(context.sessionmaker) as db:
        row = await rollover.add_key(
            db, generate_key(algorithm), kek, clock.now(), Waits.from_settings(context.settings)
        )
    return row.kid


async def roll_over(
    context: AppContext, clock: FakeClock, *, force: bool = False, kek: bytes | None = None
) -> str:
    kek = kek or load_key_encryption_key(context.settings)
    async with transaction(context.sessionmaker) as db:
        promoted, _ = await rollover.roll_over(
            db, kek, clock.now(), Waits.from_settings(context.settings), force=force
        )
    return promoted.kid


async def retire(context: AppContext, clock: FakeClock, kid: str, *, force: bool = False) -> None:
    async with transaction(context.sessionmaker) as db:
        await rollover.remove(
            db, kid, clock.now(), Waits.from_settings(context.settings), force=force
        )


def kid_of(token: str | dict[str, Any]) -> str:
    value = token if isinstance(token, str) else token["access_token"]
    kid: str = jwt.get_unverified_header(value)["kid"]
    return kid


async def published(http: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    response = await http.get("/.well-known/jwks.json")
    assert response.status_code == 200
    return {jwk["kid"]: jwk for jwk in response.json()["keys"]}


@dataclass
class Instance:
    """One app instance: its HTTP client and its context."""

    http: httpx.AsyncClient
    context: AppContext

    async def reload(self) -> None:
        await self.context.signing_keys.reload()


@pytest.fixture
async def instances(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings, clock: FakeClock
) -> AsyncIterator[tuple[Instance, Instance]]:
    """Two instances on one database and one clock, reloading only when a test says so
    (so that a test can let one lag behind the other)."""
    other = create_app(settings, clock=clock)
    async with (
        LifespanManager(other),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=other), base_url="http://b") as http,
    ):
        pair = (Instance(client, app.state.context), Instance(http, other.state.context))
        for instance in pair:
            await instance.context.signing_keys.stop()
        yield pair


class TestKeyStates:
    async def test_jwks_publishes_next_current_and_retired_keys_and_only_current_signs(
        self, instances: tuple[Instance, Instance], clock: FakeClock
    ) -> None:
        (a, _) = instances
        _, tokens = await registered_login(a.http)
        old = kid_of(tokens)
        assert set(await published(a.http)) == {old}

        new = await generate(a.context, clock, "ES256")
        await a.reload()
        jwks = await published(a.http)
        assert set(jwks) == {old, new}
        assert jwks[new]["alg"] == "ES256"
        assert all("d" not in jwk for jwk in jwks.values())  # never private material
        tokens = await refresh_tokens(a.http, tokens)
        assert kid_of(tokens) == old  # a next key does not sign

        clock.advance(PUBLISH_WAIT)
        await roll_over(a.context, clock)
        await a.reload()
        assert set(await published(a.http)) == {old, new}  # the retired key stays
        tokens = await refresh_tokens(a.http, tokens)
        assert kid_of(tokens) == new
        assert jwt.get_unverified_header(tokens["access_token"])["alg"] == "ES256"

        clock.advance(EXPIRE_WAIT)
        await retire(a.context, clock, old)
        await a.reload()
        assert set(await published(a.http)) == {new}

    async def test_tokens_signed_before_a_rollover_verify_until_their_key_is_removed(
        self, instances: tuple[Instance, Instance], clock: FakeClock
    ) -> None:
        (a, _) = instances
        # The fake clock starts behind the real one by the first wait, so that tokens
        # issued after that wait are not "from the future" for PyJWT's iat check.
        clock.advance(-PUBLISH_WAIT)
        user, before = await registered_login(a.http)
        old = kid_of(before)
        new = await generate(a.context, clock)
        await a.reload()
        clock.advance(PUBLISH_WAIT)
        await roll_over(a.context, clock)
        await a.reload()
        after = await login(a.http, user["email"])
        assert kid_of(after) == new

        for tokens in (before, after):  # both verify, on this instance and by the JWKS
            assert (await a.http.get("/whoami", headers=bearer(tokens))).status_code == 200
        clock.advance(EXPIRE_WAIT - 1)  # the last moment a token of `old` may be valid
        with pytest.raises(KeyChangeTooEarly):
            await retire(a.context, clock, old)
        assert (await a.http.get("/whoami", headers=bearer(before))).status_code == 200

        clock.advance(1)
        await retire(a.context, clock, old)
        await a.reload()
        refused = await a.http.get("/whoami", headers=bearer(before))
        assert refused.status_code == 401
        assert 'error="invalid_token"' in refused.headers["www-authenticate"]
        assert (await a.http.get("/whoami", headers=bearer(after))).status_code == 200


async def refresh_tokens(http: httpx.AsyncClient, tokens: dict[str, Any]) -> dict[str, Any]:
    response = await refresh(http, tokens["refresh_token"])
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


class TestRefusals:
    async def test_roll_over_waits_until_resource_servers_can_have_the_next_key(
        self, context: AppContext, clock: FakeClock
    ) -> None:
        await context.signing_keys.stop()
        new = await generate(context, clock)
        clock.advance(PUBLISH_WAIT - 1)
        with pytest.raises(KeyChangeTooEarly, match="resource servers may not have it") as early:
            await roll_over(context, clock)
        rows = await read_keys(context.sessionmaker)
        assert [(row.kid, row.state) for row in rows][1] == (new, KeyState.NEXT)  # unchanged
        assert early.value.allowed_at == rows[1].created_at + timedelta(seconds=PUBLISH_WAIT)
        clock.advance(1)
        assert await roll_over(context, clock) == new

    async def test_retire_waits_until_every_token_of_the_key_has_expired(
        self, context: AppContext, clock: FakeClock
    ) -> None:
        old = context.access_tokens.keys.signing.kid
        await generate(context, clock)
        clock.advance(PUBLISH_WAIT)
        await roll_over(context, clock)
        # TTL + reload interval + margin after the rollover
        clock.advance(EXPIRE_WAIT - 1)
        with pytest.raises(KeyChangeTooEarly, match=f"tokens signed with {old} may be valid"):
            await retire(context, clock, old)
        clock.advance(1)
        await retire(context, clock, old)
        assert old not in {row.kid for row in await read_keys(context.sessionmaker)}

    @pytest.mark.parametrize("force", [False, True])
    async def test_the_current_key_is_never_retired(
        self, context: AppContext, clock: FakeClock, force: bool
    ) -> None:
        current = context.access_tokens.keys.signing.kid
        with pytest.raises(KeyChangeRefused, match="is the current signing key"):
            await retire(context, clock, current, force=force)
        assert [row.kid for row in await read_keys(context.sessionmaker)] == [current]

    async def test_force_skips_the_waits(self, context: AppContext, clock: FakeClock) -> None:
        old = context.access_tokens.keys.signing.kid
        new = await generate(context, clock)
        assert await roll_over(context, clock, force=True) == new
        await retire(context, clock, old, force=True)
        assert [row.kid for row in await read_keys(context.sessionmaker)] == [new]

    async def test_one_next_key_at_a_time_and_roll_over_needs_one(
        self, context: AppContext, clock: FakeClock
    ) -> None:
        with pytest.raises(KeyChangeRefused, match="no next key"):
            await roll_over(context, clock, force=True)
        pending = await generate(context, clock)
        with pytest.raises(KeyChangeRefused, match=f"there is a next key already, {pending}"):
            await generate(context, clock)
        # A next key signed nothing: it may go at once.
        await retire(context, clock, pending)
        assert pending not in {row.kid for row in await read_keys(context.sessionmaker)}

    async def test_unknown_kid_is_refused(self, context: AppContext, clock: FakeClock) -> None:
        with pytest.raises(KeyChangeRefused, match="there is no signing key nope"):
            await retire(context, clock, "nope", force=True)


@dataclass
class Observer:
    """Samples every instance's JWKS and checks each unexpired token against it, as a
    resource server holding that JWKS would (signature, typ, aud, iss; exp by the
    app's clock)."""

    clock: FakeClock
    settings: Settings
    instances: tuple[Instance, ...]
    sessions: list[tuple[Instance, dict[str, Any]]] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    samples: int = 0

    async def start_sessions(self) -> None:
        user, tokens = await registered_login(self.instances[0].http)
        self.sessions.append((self.instances[0], tokens))
        for instance in self.instances[1:]:
            self.sessions.append((instance, await login(instance.http, user["email"])))
        self.tokens.extend(tokens["access_token"] for _, tokens in self.sessions)

    async def issue(self) -> list[str]:
        """A new access token from every instance; their kids, in instance order."""
        for index, (instance, tokens) in enumerate(self.sessions):
            self.sessions[index] = (instance, await refresh_tokens(instance.http, tokens))
        new = [tokens["access_token"] for _, tokens in self.sessions]
        self.tokens.extend(new)
        return [kid_of(token) for token in new]

    async def sample(self, step: str) -> None:
        now = self.clock.now().timestamp()
        for index, instance in enumerate(self.instances):
            jwks = await published(instance.http)
            for token in self.tokens:
                claims = jwt.decode(token, options={"verify_signature": False})
                if claims["exp"] <= now:
                    continue
                jwk = jwks.get(kid_of(token))
                if jwk is None:
                    self.missing.append(f"{step}: instance {index} lacks {kid_of(token)}")
                    continue
                jwt.decode(  # raises if the published key does not verify it
                    token,
                    jwt.PyJWK(jwk),
                    algorithms=[jwk["alg"]],
                    audience=self.settings.audience,
                    issuer=self.settings.issuer,
                    options={"verify_exp": False, "verify_iat": False},
                )
        self.samples += 1

    async def step(self, name: str) -> list[str]:
        """Sample, issue on every instance, sample again: the kids just issued."""
        await self.sample(name)
        kids = await self.issue()
        await self.sample(f"{name}, then issued")
        return kids


class TestEveryInstanceDuringARollover:
    async def test_the_jwks_holds_the_key_of_every_unexpired_token_at_every_moment(
        self, instances: tuple[Instance, Instance], clock: FakeClock, settings: Settings
    ) -> None:
        a, b = instances
        watch = Observer(clock, settings, instances)
        await watch.start_sessions()
        old = kid_of(watch.tokens[0])
        assert await watch.step("start") == [old, old]

        new = await generate(a.context, clock)
        await watch.step("generated, no instance reloaded")
        await a.reload()
        await watch.step("generated, A reloaded")
        await b.reload()
        await watch.step("generated, both reloaded")
        for _ in range(3):  # the documented wait, sampled as it passes
            clock.advance(PUBLISH_WAIT / 3)
            assert await watch.step("waiting to roll over") == [old, old]

        await roll_over(a.context, clock)
        assert await watch.step("rolled over, no instance reloaded") == [old, old]
        await a.reload()
        # The moment that matters: A signs with the new key, B still with the old one.
        assert await watch.step("rolled over, A reloaded") == [new, old]
        await b.reload()
        assert await watch.step("rolled over, both reloaded") == [new, new]
        for _ in range(3):
            clock.advance(EXPIRE_WAIT / 3)
            await watch.step("waiting to retire")

        await retire(a.context, clock, old)
        await watch.step("retired, no instance reloaded")
        await a.reload()
        await watch.step("retired, A reloaded")
        await b.reload()
        await watch.step("retired, both reloaded")

        assert watch.missing == []
        assert watch.samples == 32  # 16 steps, before and after issuing
        assert {kid_of(token) for token in watch.tokens} == {old, new}
        for instance in instances:
            assert set(await published(instance.http)) == {new}

    async def test_rolling_over_before_every_instance_publishes_the_key_is_caught(
        self, instances: tuple[Instance, Instance], clock: FakeClock, settings: Settings
    ) -> None:
        """What the waits prevent, and proof that the observer above can fail."""
        a, _ = instances
        watch = Observer(clock, settings, instances)
        await watch.start_sessions()
        new = await generate(a.context, clock)
        await a.reload()
        await roll_over(a.context, clock, force=True)  # B has not even published it
        await a.reload()
        await watch.step("forced")
        assert watch.missing == [f"forced, then issued: instance 1 lacks {new}"]

    async def test_an_instance_picks_up_changes_within_the_reload_interval(
        self, app: FastAPI, clock: FakeClock, database_url: str, data_dir: Path
    ) -> None:
        interval = 0.2
        settings = make_settings(database_url, data_dir, key_reload_interval=interval)
        changer: AppContext = app.state.context
        other = create_app(settings, clock=clock)
        async with LifespanManager(other):
            context: AppContext = other.state.context
            old = context.access_tokens.keys.signing.kid

            new = await generate(changer, clock)
            assert await seconds_until(lambda: new in context.access_tokens.keys.by_kid) <= (
                interval + MARGIN_SECONDS
            )
            await roll_over(changer, clock, force=True)
            assert await seconds_until(lambda: context.access_tokens.keys.signing.kid == new) <= (
                interval + MARGIN_SECONDS
            )
            await retire(changer, clock, old, force=True)
            assert await seconds_until(lambda: old not in context.access_tokens.keys.by_kid) <= (
                interval + MARGIN_SECONDS
            )
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=other), base_url="http://b"
            ) as http:
                assert set(await published(http)) == {new}
                _, tokens = await registered_login(http)
                assert kid_of(tokens) == new

    async def test_a_failed_reload_keeps_the_last_good_keys_and_warns_once(
        self,
        app: FastAPI,
        clock: FakeClock,
        database_url: str,
        data_dir: Path,
        caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        caplog.set_level(logging.INFO, logger="authapi.signing.reload")
        settings = make_settings(database_url, data_dir, key_reload_interval=0.05)
        changer: AppContext = app.state.context
        await changer.signing_keys.stop()  # only the instance under test reloads
        other = create_app(settings, clock=clock)
        async with (
            LifespanManager(other),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=other), base_url="http://b"
            ) as http,
        ):
            context: AppContext = other.state.context
            reloads = count_reloads(context, monkeypatch)
            old = context.access_tokens.keys.signing.kid
            # A key this instance cannot decrypt becomes current (another KEK).
            async with transaction(changer.sessionmaker) as db:
                await rollover.add_key(
                    db,
                    generate_key("EdDSA"),
                    OTHER_KEK,
                    clock.now(),
                    Waits(timedelta(), timedelta()),
                )
            await roll_over(changer, clock, force=True, kek=OTHER_KEK)

            seen = len(reloads)
            await seconds_until(lambda: len(reloads) >= seen + 5)
            warnings = [
                record
                for record in caplog.records
                if record.name == "authapi.signing.reload" and record.levelno == logging.WARNING
            ]
            assert len(warnings) == 1, warnings
            assert "keeping the last good key set" in warnings[0].getMessage()
            assert "AUTHAPI_KEY_ENCRYPTION_KEY" in warnings[0].getMessage()
            _, tokens = await registered_login(http)
            assert kid_of(tokens) == old  # still signing, and still verifying
            assert (await http.get("/whoami", headers=bearer(tokens))).status_code == 200

            repaired = await generate(changer, clock)
            await roll_over(changer, clock, force=True)
            await seconds_until(lambda: context.access_tokens.keys.signing.kid == repaired)
            assert any("reload works again" in r.getMessage() for r in caplog.records)


def count_reloads(context: AppContext, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """A list that grows by one at each reload the instance's background task makes."""
    reloader = context.signing_keys
    original = reloader.reload
    calls: list[float] = []

    async def counted() -> bool:
        calls.append(time.monotonic())
        return await original()

    monkeypatch.setattr(reloader, "reload", counted)
    return calls


async def seconds_until(condition: Callable[[], bool], within: float = 30.0) -> float:
    """Poll until `condition()` holds: how long that took; fails past `within`."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > within:
            pytest.fail(f"not within {within} s")
        await asyncio.sleep(0.01)
    return time.monotonic() - started


class TestKeysAtRest:
    async def test_the_table_holds_no_plaintext_private_key(
        self, context: AppContext, clock: FakeClock
    ) -> None:
        await context.signing_keys.stop()
        kid = await generate(context, clock, "ES256")
        await roll_over(context, clock, force=True)
        await context.signing_keys.reload()
        private = context.access_tokens.keys.signing.private_key
        assert context.access_tokens.keys.signing.kid == kid
        assert private is not None

        async with context.engine.connect() as connection:
            rows = (await connection.execute(select(StoredSigningKey.__table__))).all()
        stored = b"".join(
            value if isinstance(value, bytes) else str(value).encode()
            for row in rows
            for value in row
        )
        for secret in private_forms(private):
            assert secret not in stored
        [sealed] = [row.sealed_private_key for row in rows if row.kid == kid]
        kek = load_key_encryption_key(context.settings)
        assert private_forms(unseal(kek, kid, sealed)) == private_forms(private)

    def test_a_sealed_key_opens_only_with_its_kek_and_for_its_kid(self) -> None:
        key = generate_key("EdDSA")
        assert key.private_key is not None
        sealed = seal(bytes(32), key.kid, key.private_key)
        with pytest.raises(KeyConfigError, match="not the key it was encrypted under"):
            unseal(OTHER_KEK, key.kid, sealed)
        with pytest.raises(KeyConfigError, match="not the key it was encrypted under"):
            unseal(bytes(32), "another-kid", sealed)  # moved onto another row

    async def test_a_wrong_kek_stops_the_start_with_a_clear_message(
        self, app: FastAPI, settings: Settings, clock: FakeClock
    ) -> None:
        wrong = settings.model_copy(update={"key_encryption_key": SecretStr(KEK)})
        with pytest.raises(KeyConfigError) as raised:
            async with LifespanManager(create_app(wrong, clock=clock)):
                pass
        kid = app.state.context.access_tokens.keys.signing.kid
        assert str(raised.value) == (
            f"cannot decrypt the private part of signing key {kid}: "
            "AUTHAPI_KEY_ENCRYPTION_KEY is not the key it was encrypted under"
        )


def private_forms(private: PrivateKey) -> list[bytes]:
    """The private key as it could be written down: PKCS#8 DER and PEM, and the raw
    secret (Ed25519 seed, EC scalar)."""
    forms = [
        private.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    ]
    numbers = getattr(private, "private_numbers", None)
    if numbers is not None and hasattr(numbers(), "private_value"):
        forms.append(numbers().private_value.to_bytes(32, "big"))
    if hasattr(private, "private_bytes_raw"):
        forms.append(private.private_bytes_raw())
    return forms


@pytest.fixture(scope="module")
def key_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """What an existing deployment configured: a signing key and an older public key."""
    folder = tmp_path_factory.mktemp("configured")
    return [
        write_pem(folder / "signer.pem", ed25519.Ed25519PrivateKey.generate()),
        write_public_pem(folder / "old.pem", ec.generate_private_key(ec.SECP256R1())),
    ]


class TestSeeding:
    @pytest.fixture
    def settings_overrides(self, key_files: list[Path]) -> dict[str, object]:
        return {"signing_key_files": key_files}

    async def test_an_empty_table_is_seeded_from_the_configured_files(
        self, client: httpx.AsyncClient, context: AppContext, key_files: list[Path]
    ) -> None:
        signer, old = (load_key_file(path) for path in key_files)
        rows = await read_keys(context.sessionmaker)
        assert [(row.kid, row.state) for row in rows] == [
            (signer.kid, KeyState.CURRENT),
            (old.kid, KeyState.RETIRED),
        ]
        assert rows[1].sealed_private_key is None  # a public key stays one
        _, tokens = await registered_login(client)
        assert kid_of(tokens) == signer.kid
        assert set(await published(client)) == {signer.kid, old.kid}

    async def test_a_filled_table_is_kept_and_other_files_are_named_in_a_warning(
        self,
        context: AppContext,
        settings: Settings,
        clock: FakeClock,
        tmp_path: Path,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        other = write_pem(tmp_path / "other.pem", ed25519.Ed25519PrivateKey.generate())
        changed = settings.model_copy(update={"signing_key_files": [other]})
        app = create_app(changed, clock=clock)
        async with LifespanManager(app):
            restarted: AppContext = app.state.context
            assert restarted.access_tokens.keys.fingerprint == (
                context.access_tokens.keys.fingerprint
            )
        assert any(
            "the files only seed an empty key table" in record.getMessage()
            for record in caplog.records
        )


async def test_an_unreachable_database_at_start_leaves_the_configured_keys(
    tmp_path: Path,
) -> None:
    # A data directory of its own: no public keys read from a database before
    # (tests/test_health.py covers an instance that has them).
    data_dir = tmp_path
    settings = make_settings(
        "postgresql+asyncpg://postgres@127.0.0.1:9/nothing", data_dir, db_timeout=2
    )
    app = create_app(settings)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
    ):
        # In development a key of its own, in memory only: nothing was signed before it.
        assert len(await published(http)) == 1
    assert not list(data_dir.glob("*.pem"))


# --- real `authapi serve` processes, and a resource server using PyJWKClient -------

# Long enough against the time a CLI command takes (about a second) that a key removed
# too early would be caught with its tokens still live.
REAL_TTL = 4
REAL_MAX_AGE = 1
REAL_RELOAD_INTERVAL = 0.25
PROCEDURE_TIMEOUT = 60.0


class Traffic(threading.Thread):
    """A client and a resource server, for as long as the test runs: refreshes a session
    on every instance, and checks every token that has not expired (1) against each
    instance's JWKS as fetched just now, (2) with one PyJWKClient per instance, cache
    on, JWKS cached for the JWKS max-age, (3) on every instance's /whoami."""

    def __init__(self, base_urls: list[str], issuer: str) -> None:
        super().__init__(daemon=True)
        self.base_urls = base_urls
        self.issuer = issuer
        self.resource_servers = [
            jwt.PyJWKClient(f"{url}/.well-known/jwks.json", cache_keys=True, lifespan=REAL_MAX_AGE)
            for url in base_urls
        ]
        self.tokens: list[tuple[str, int]] = []  # (token, exp)
        self.latest: list[str | None] = [None] * len(base_urls)  # kid of the newest token
        self.issued_kids: set[tuple[int, str]] = set()  # (instance, kid)
        self.problems: list[str] = []
        self.samples = 0
        self._done = threading.Event()

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=PROCEDURE_TIMEOUT)

    def run(self) -> None:
        try:
            with ExitStack() as stack:
                https = [
                    stack.enter_context(httpx.Client(base_url=url, timeout=10.0))
                    for url in self.base_urls
                ]
                email = f"rotation-{time.monotonic_ns()}@example.com"
                password = "correct horse battery"
                registered = https[0].post("/users", json={"email": email, "password": password})
                assert registered.status_code == 201, registered.text
                refresh_tokens = [
                    http.post(
                        "/token",
                        data={"grant_type": "password", "username": email, "password": password},
                    ).json()["refresh_token"]
                    for http in https
                ]
                while not self._done.is_set():
                    for index, http in enumerate(https):
                        body = http.post("/refresh", json={"refresh_token": refresh_tokens[index]})
                        if body.status_code != 200:
                            self.problems.append(f"refresh on {index}: {body.text}")
                            return
                        refresh_tokens[index] = body.json()["refresh_token"]
                        token = body.json()["access_token"]
                        claims = jwt.decode(token, options={"verify_signature": False})
                        self.tokens.append((token, claims["exp"]))
                        self.latest[index] = kid_of(token)
                        self.issued_kids.add((index, kid_of(token)))
                    self._check(https)
                    self._done.wait(0.05)  # the pause between rounds
        except Exception as exc:  # noqa: BLE001 - reported by the test, not lost in a thread
            self.problems.append(f"traffic stopped: {exc!r}")

    def _check(self, https: list[httpx.Client]) -> None:
        now = time.time()
        live = [(token, exp) for token, exp in self.tokens if exp > now]
        self.tokens = live
        for index, http in enumerate(https):
            kids = {jwk["kid"] for jwk in http.get("/.well-known/jwks.json").json()["keys"]}
            for token, _ in live:
                if kid_of(token) not in kids:
                    self.problems.append(f"instance {index}'s JWKS lacks {kid_of(token)}")
            # The oldest token with a second still to live (the first to lose its key if
            # the key went too early; the second: so that it cannot expire on the way) and
            # the newest of every instance.
            oldest = [(token, exp) for token, exp in live if exp > now + 1][:1]
            for token, _ in oldest + live[-len(https) :]:
                if http.get("/whoami", headers=bearer(token)).status_code != 200:
                    self.problems.append(f"instance {index} refused a token of {kid_of(token)}")
        for index, resource_server in enumerate(self.resource_servers):
            for token, _ in live:
                try:
                    key = resource_server.get_signing_key_from_jwt(token)
                    jwt.decode(
                        token,
                        key,
                        algorithms=["EdDSA", "ES256", "RS256"],
                        audience="authapi",
                        issuer=self.issuer,
                        options={"verify_exp": False},  # expiry is checked above, once
                    )
                except jwt.PyJWTError as exc:
                    self.problems.append(f"resource server {index}: {exc}")
        self.samples += 1


def until_allowed(*args: str, env: dict[str, str], cwd: Path, refusals: list[str]) -> str:
    """Run `authapi keys ARGS` until it is allowed, as an operator following the README
    does: "not yet" (exit 3) is the only refusal expected. Its output."""
    deadline = time.monotonic() + PROCEDURE_TIMEOUT
    while True:
        result = run_authapi("keys", *args, env=env, cwd=cwd)
        if result.returncode == 0:
            return result.stdout
        assert result.returncode == 3, result.stderr
        refusals.append(result.stderr)
        if time.monotonic() > deadline:
            pytest.fail(f"`authapi keys {' '.join(args)}` still refused: {result.stderr}")


def wait_for(condition: Callable[[], bool], traffic: Traffic, what: str) -> float:
    """Seconds until `condition()` holds (the traffic goes on meanwhile); fails past
    the timeout or at the traffic's first problem."""
    started = time.monotonic()
    while not condition():
        assert not traffic.problems, traffic.problems[:5]
        if time.monotonic() - started > PROCEDURE_TIMEOUT:
            pytest.fail(f"not within {PROCEDURE_TIMEOUT} s: {what}")
        traffic.join(timeout=0.02)  # the pause between looks; ends early if traffic died
    return time.monotonic() - started


class TestResourceServersDuringARollover:
    def test_pyjwkclient_never_meets_an_unknown_kid(
        self, backend: str, database_urls: dict[str, str], data_dir: Path, tmp_path: Path
    ) -> None:
        database_url = database_urls[backend]
        asyncio.run(clear_signing_keys(database_url))
        settings = {
            "AUTHAPI_ACCESS_TOKEN_TTL": str(REAL_TTL),
            "AUTHAPI_JWKS_MAX_AGE": str(REAL_MAX_AGE),
            "AUTHAPI_KEY_RELOAD_INTERVAL": str(REAL_RELOAD_INTERVAL),
            "AUTHAPI_RATE_LIMIT_ENABLED": "false",
            "AUTHAPI_ISSUER": "http://localhost:8000",  # one for both instances
        }
        cli_env = {**authapi_env(database_url, data_dir), **settings}
        refusals: list[str] = []
        with ExitStack() as stack:
            servers = []
            for name in ("a", "b"):
                (tmp_path / name).mkdir()
                servers.append(
                    stack.enter_context(
                        serving(database_url, data_dir, tmp_path / name, env=settings)
                    )
                )
            traffic = Traffic([server.base_url for server in servers], "http://localhost:8000")
            traffic.start()
            stack.callback(traffic.stop)
            wait_for(lambda: traffic.samples >= 3, traffic, "traffic before the rollover")
            old = traffic.latest[0]

            # The documented procedure.
            run_authapi("keys", "generate", env=cli_env, cwd=tmp_path)
            new = next(key["kid"] for key in list_keys(cli_env, tmp_path) if key["state"] == "next")
            until_allowed("rollover", env=cli_env, cwd=tmp_path, refusals=refusals)
            picked_up = wait_for(
                lambda: traffic.latest == [new, new], traffic, "both instances signing with it"
            )
            until_allowed("retire", "--", str(old), env=cli_env, cwd=tmp_path, refusals=refusals)
            wait_for(
                lambda: all(old not in published_kids(server.base_url) for server in servers),
                traffic,
                "the old key gone from every JWKS",
            )
            samples = traffic.samples
            wait_for(lambda: traffic.samples >= samples + 3, traffic, "traffic after it")

        assert traffic.problems == []
        assert {(0, old), (1, old), (0, new), (1, new)} <= traffic.issued_kids
        assert [key["kid"] for key in list_keys(cli_env, tmp_path)] == [new]
        # Both instances signed with the new key within the stated bound of the rollover
        # (plus how often the traffic looks).
        assert picked_up <= REAL_RELOAD_INTERVAL + MARGIN_SECONDS + 1


def list_keys(env: dict[str, str], cwd: Path) -> list[dict[str, Any]]:
    result = run_authapi("keys", "list", "--json", env=env, cwd=cwd)
    assert result.returncode == 0, result.stderr
    keys: list[dict[str, Any]] = json.loads(result.stdout)
    return keys


def published_kids(base_url: str) -> set[str]:
    response = httpx.get(f"{base_url}/.well-known/jwks.json", timeout=10.0)
    return {jwk["kid"] for jwk in response.json()["keys"]}
