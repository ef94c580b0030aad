"""Signing keys from configuration, and the generated development key."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from pydantic import ValidationError

from authapi.config import Settings
from authapi.signing.keys import KeyConfigError, PrivateKey, load_keys, thumbprint
from tests.support.factories import bearer, registered_login
from tests.support.keys import KEK, write_pem, write_public_pem


def settings_for(tmp_path: Path, **values: object) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path / "data", **values)  # type: ignore[arg-type]


KEY_MAKERS: dict[str, Callable[[], PrivateKey]] = {
    "EdDSA": ed25519.Ed25519PrivateKey.generate,
    "ES256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "RS256": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
}


class TestConfiguredKeys:
    @pytest.mark.parametrize("algorithm", list(KEY_MAKERS))
    def test_pem_file_sets_the_algorithm(self, tmp_path: Path, algorithm: str) -> None:
        key = KEY_MAKERS[algorithm]()
        keys = load_keys(
            settings_for(tmp_path, signing_key_files=[write_pem(tmp_path / "k.pem", key)])
        )
        assert keys.signing.algorithm == algorithm
        assert keys.signing.kid == thumbprint(key.public_key())

    @pytest.mark.parametrize("algorithm", list(KEY_MAKERS))
    def test_jwk_file_with_its_own_kid(self, tmp_path: Path, algorithm: str) -> None:
        key = KEY_MAKERS[algorithm]()
        algo = jwt.get_algorithm_by_name(algorithm)
        jwk = json.loads(algo.to_jwk(key))
        jwk["kid"] = "key-2026-11"
        path = tmp_path / "k.json"
        path.write_text(json.dumps(jwk))
        keys = load_keys(settings_for(tmp_path, signing_key_files=[path]))
        assert keys.signing.kid == "key-2026-11"
        assert keys.signing.algorithm == algorithm

    def test_extra_public_keys_are_published_not_used(self, tmp_path: Path) -> None:
        signer = write_pem(tmp_path / "a.pem", ed25519.Ed25519PrivateKey.generate())
        old = write_public_pem(tmp_path / "b.pem", ec.generate_private_key(ec.SECP256R1()))
        keys = load_keys(settings_for(tmp_path, signing_key_files=f"{signer},{old}"))
        assert keys.signing.algorithm == "EdDSA"
        assert [k["alg"] for k in keys.jwks()["keys"]] == ["EdDSA", "ES256"]

    def test_weak_rsa_is_refused(self, tmp_path: Path) -> None:
        weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the weak key we refuse
        with pytest.raises(KeyConfigError, match="at least 2048 bits"):
            load_keys(
                settings_for(tmp_path, signing_key_files=[write_pem(tmp_path / "k.pem", weak)])
            )

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ('{"kty": "oct", "k": "c2VjcmV0"}', "symmetric"),
            ("not a key", "not a usable PEM key"),
            ('{"kty": "OKP"}', "not a usable JWK"),
        ],
    )
    def test_unusable_files_are_refused(self, tmp_path: Path, text: str, message: str) -> None:
        path = tmp_path / "k"
        path.write_text(text)
        with pytest.raises(KeyConfigError, match=message):
            load_keys(settings_for(tmp_path, signing_key_files=[path]))

    def test_other_curves_are_refused(self, tmp_path: Path) -> None:
        key = ec.generate_private_key(ec.SECP384R1())
        with pytest.raises(KeyConfigError, match="P-256"):
            load_keys(
                settings_for(tmp_path, signing_key_files=[write_pem(tmp_path / "k.pem", key)])
            )

    def test_first_key_must_be_private(self, tmp_path: Path) -> None:
        public = write_public_pem(tmp_path / "p.pem", ed25519.Ed25519PrivateKey.generate())
        with pytest.raises(KeyConfigError, match="private"):
            load_keys(settings_for(tmp_path, signing_key_files=[public]))


class TestDevelopmentKey:
    def test_generated_in_memory_only(self, tmp_path: Path) -> None:
        """It exists in plaintext nowhere: seeding stores it sealed (test_data_dir.py)."""
        first = load_keys(settings_for(tmp_path))
        second = load_keys(settings_for(tmp_path))
        assert first.signing.kid != second.signing.kid
        assert not (tmp_path / "data").exists()

    @pytest.mark.parametrize("algorithm", ["ES256", "RS256"])
    def test_algorithm_is_selectable(self, tmp_path: Path, algorithm: str) -> None:
        keys = load_keys(settings_for(tmp_path, signing_algorithm=algorithm))
        assert keys.signing.algorithm == algorithm


class TestProductionMode:
    def test_refuses_to_start_without_a_kek_and_secret(self, tmp_path: Path) -> None:
        with pytest.raises(ValidationError) as raised:
            settings_for(tmp_path, environment="production")
        assert "AUTHAPI_KEY_ENCRYPTION_KEY must be set" in str(raised.value)
        assert "AUTHAPI_REFRESH_TOKEN_SECRET must be set" in str(raised.value)

    @pytest.mark.parametrize("kek", ["change-me", " "])
    def test_refuses_a_placeholder_kek(self, tmp_path: Path, kek: str) -> None:
        with pytest.raises(ValidationError, match="AUTHAPI_KEY_ENCRYPTION_KEY"):
            settings_for(
                tmp_path,
                environment="production",
                key_encryption_key=kek,
                refresh_token_secret="x7" * 20,
            )

    def test_key_files_are_optional(self, tmp_path: Path) -> None:
        """The keys live in the database; files only seed an empty table."""
        settings = settings_for(
            tmp_path,
            environment="production",
            key_encryption_key=KEK,
            refresh_token_secret="x7" * 20,
        )
        with pytest.raises(KeyConfigError, match="authapi keys generate"):
            load_keys(settings)  # what seeding an empty table would find

    @pytest.mark.parametrize("secret", ["change-me", "short-but-real"])
    def test_refuses_placeholder_or_short_secret(self, tmp_path: Path, secret: str) -> None:
        key = write_pem(tmp_path / "k.pem", ed25519.Ed25519PrivateKey.generate())
        with pytest.raises(ValidationError, match="AUTHAPI_REFRESH_TOKEN_SECRET"):
            settings_for(
                tmp_path,
                environment="production",
                signing_key_files=[key],
                key_encryption_key=KEK,
                refresh_token_secret=secret,
            )

    def test_starts_with_real_configuration(self, tmp_path: Path) -> None:
        key = write_pem(tmp_path / "k.pem", ed25519.Ed25519PrivateKey.generate())
        settings = settings_for(
            tmp_path,
            environment="production",
            signing_key_files=[key],
            key_encryption_key=KEK,
            refresh_token_secret="x7" * 20,
        )
        assert load_keys(settings).signing.algorithm == "EdDSA"
        assert not (tmp_path / "data").exists()  # nothing generated


@pytest.fixture(scope="module")
def es256_key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_pem(
        tmp_path_factory.mktemp("keys") / "es256.pem", ec.generate_private_key(ec.SECP256R1())
    )


class TestConfiguredKeyEndToEnd:
    @pytest.fixture
    def settings_overrides(self, es256_key_file: Path) -> dict[str, object]:
        return {"signing_key_files": [es256_key_file]}

    async def test_tokens_are_signed_with_it(self, client: httpx.AsyncClient) -> None:
        _, tokens = await registered_login(client)
        assert jwt.get_unverified_header(tokens["access_token"])["alg"] == "ES256"
        assert (await client.get("/whoami", headers=bearer(tokens))).status_code == 200
        jwks = (await client.get("/.well-known/jwks.json")).json()
        assert jwks["keys"][0]["kty"] == "EC"
        assert "d" not in jwks["keys"][0]
