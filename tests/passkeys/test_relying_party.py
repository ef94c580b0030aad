"""The relying party worked out from the settings, and the settings refused at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from authapi.config import Settings
from authapi.passkeys.relying_party import RelyingPartyError, from_settings
from tests.support.servers import authapi_env, free_port, run_authapi
from tests.support.settings import make_settings


def settings(tmp_path: Path, **values: object) -> Settings:
    return make_settings("sqlite+aiosqlite:///unused.db", tmp_path, **values)


class TestRelyingParty:
    def test_the_app_urls_host_and_origin(self, tmp_path: Path) -> None:
        rp = from_settings(
            settings(tmp_path, app_url="https://app.example.com/demo", mail_app_name="Example")
        )
        assert rp is not None
        assert (rp.id, rp.name, rp.origins) == (
            "app.example.com",
            "Example",
            ("https://app.example.com",),
        )

    def test_else_the_issuers(self, tmp_path: Path) -> None:
        rp = from_settings(settings(tmp_path, issuer="http://localhost:8000"))
        assert rp is not None
        assert (rp.id, rp.origins) == ("localhost", ("http://localhost:8000",))

    def test_a_parent_domain_and_more_origins(self, tmp_path: Path) -> None:
        rp = from_settings(
            settings(
                tmp_path,
                app_url="https://app.example.com",
                webauthn_rp_id="example.com",
                webauthn_origins="https://login.example.com",
            )
        )
        assert rp is not None
        assert rp.id == "example.com"
        assert rp.origins == ("https://app.example.com", "https://login.example.com")

    def test_a_derived_ip_address_leaves_passkeys_off(self, tmp_path: Path) -> None:
        assert from_settings(settings(tmp_path, issuer="http://127.0.0.1:8000")) is None

    @pytest.mark.parametrize(
        "values",
        [
            {"webauthn_rp_id": "127.0.0.1"},
            {"webauthn_rp_id": "other.com", "app_url": "https://app.example.com"},
            # A suffix of the text that is no parent domain.
            {"webauthn_rp_id": "ample.com", "app_url": "https://app.example.com"},
            {"app_url": "https://app.example.com", "webauthn_origins": "https://evil.com"},
            {"issuer": "http://[::1]:8000", "webauthn_origins": "http://localhost:3000"},
        ],
    )
    def test_contradicting_settings_are_refused(
        self, tmp_path: Path, values: dict[str, object]
    ) -> None:
        with pytest.raises(RelyingPartyError):
            from_settings(settings(tmp_path, **values))


class TestServeRefuses:
    def test_contradicting_passkey_settings_in_one_line(self, tmp_path: Path) -> None:
        env = {**authapi_env(None, tmp_path), "AUTHAPI_WEBAUTHN_RP_ID": "10.0.0.1"}
        result = run_authapi("serve", "--port", str(free_port()), env=env, cwd=tmp_path)
        assert result.returncode == 1
        assert result.stderr.startswith("authapi: AUTHAPI_WEBAUTHN_RP_ID must be a domain name")
        assert result.stderr.count("\n") == 1, result.stderr
