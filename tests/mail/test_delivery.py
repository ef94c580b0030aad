"""The relay URL's schemes, TLS with certificate verification, credentials that never
reach a log line, and the settings' checks."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from authapi.cli import describe_invalid_settings
from authapi.config import Settings
from authapi.mail.delivery import DeliveryError, SMTPRelay
from authapi.mail.messages import MailTemplate, compose
from tests.support.clock import FakeClock
from tests.support.mail import (
    Certificates,
    Credentials,
    Inbox,
    start_server,
    throwaway_certificates,
)
from tests.support.servers import free_port

PASSWORD = "s3cret-relay-password"


def relay(tmp_path: Path, url: str, **overrides: object) -> SMTPRelay:
    values: dict[str, Any] = {"smtp_url": url, "smtp_timeout": 5, **overrides}
    settings = Settings(_env_file=None, data_dir=tmp_path, **values)
    return SMTPRelay(settings)


def message(tmp_path: Path) -> str:
    settings = Settings(_env_file=None, data_dir=tmp_path)
    mail = compose(settings, MailTemplate.PASSWORD_CHANGED, "to@example.com", FakeClock().now())
    return mail.as_string()


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return throwaway_certificates(tmp_path_factory.mktemp("tls"))


class TestSchemes:
    async def test_plain_smtp(self, tmp_path: Path) -> None:
        server = start_server(Inbox())
        try:
            await relay(tmp_path, f"smtp://127.0.0.1:{server.port}").deliver(
                uuid.uuid4(), "to@example.com", message(tmp_path)
            )
        finally:
            server.stop()
        assert [m["To"] for m in server.inbox.messages] == ["to@example.com"]

    async def test_starttls_with_credentials(
        self, tmp_path: Path, certificates: Certificates
    ) -> None:
        server = start_server(
            Inbox(), tls=certificates.server_context, credentials=Credentials("mailer", PASSWORD)
        )
        try:
            await relay(
                tmp_path,
                f"smtp+starttls://mailer:{PASSWORD}@127.0.0.1:{server.port}",
                smtp_ca_file=certificates.ca_file,
            ).deliver(uuid.uuid4(), "to@example.com", message(tmp_path))
            with pytest.raises(DeliveryError) as refused:
                await relay(
                    tmp_path,
                    f"smtp+starttls://mailer:wrong@127.0.0.1:{server.port}",
                    smtp_ca_file=certificates.ca_file,
                ).deliver(uuid.uuid4(), "to@example.com", message(tmp_path))
        finally:
            server.stop()
        assert len(server.inbox.messages) == 1
        assert "wrong" not in refused.value.reason

    async def test_implicit_tls(self, tmp_path: Path, certificates: Certificates) -> None:
        server = start_server(Inbox(), tls=certificates.server_context, implicit_tls=True)
        try:
            await relay(
                tmp_path, f"smtps://127.0.0.1:{server.port}", smtp_ca_file=certificates.ca_file
            ).deliver(uuid.uuid4(), "to@example.com", message(tmp_path))
        finally:
            server.stop()
        assert len(server.inbox.messages) == 1

    @pytest.mark.parametrize("scheme", ["smtps", "smtp+starttls"])
    async def test_an_unknown_certificate_is_refused(
        self, tmp_path: Path, certificates: Certificates, scheme: str
    ) -> None:
        """Without the CA file the system's CAs do not know the test CA: not sent."""
        server = start_server(
            Inbox(), tls=certificates.server_context, implicit_tls=scheme == "smtps"
        )
        try:
            with pytest.raises(DeliveryError) as refused:
                await relay(tmp_path, f"{scheme}://127.0.0.1:{server.port}").deliver(
                    uuid.uuid4(), "to@example.com", message(tmp_path)
                )
        finally:
            server.stop()
        assert not refused.value.permanent
        assert "CERTIFICATE_VERIFY_FAILED" in refused.value.reason
        assert server.inbox.messages == []


class TestCredentialsStaySecret:
    async def test_never_in_a_log_line_an_error_or_the_settings_repr(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG)
        url = f"smtp://mailer:{PASSWORD}@127.0.0.1:{free_port()}"
        settings = Settings(_env_file=None, data_dir=tmp_path, smtp_url=SecretStr(url))
        with pytest.raises(DeliveryError) as failed:
            await SMTPRelay(settings).deliver(uuid.uuid4(), "to@example.com", message(tmp_path))
        logging.getLogger("test").info("settings: %r %s", settings, settings)
        assert "settings: " in caplog.text
        assert PASSWORD not in caplog.text
        assert PASSWORD not in failed.value.reason
        assert PASSWORD not in repr(settings)

    @pytest.mark.parametrize(
        "url",
        [
            f"http://mailer:{PASSWORD}@relay.example",
            f"smtp://mailer:{PASSWORD}@",
            f"smtp://mailer:{PASSWORD}@relay.example:notaport",
        ],
    )
    def test_a_bad_url_is_refused_without_repeating_it(self, tmp_path: Path, url: str) -> None:
        with pytest.raises(ValidationError) as refused:
            Settings(_env_file=None, data_dir=tmp_path, smtp_url=SecretStr(url))
        # What `authapi` prints for invalid settings (pydantic's own text shows the input).
        described = describe_invalid_settings(refused.value)
        assert "AUTHAPI_SMTP_URL" in described
        assert PASSWORD not in described

    @pytest.mark.parametrize("sender", ["nobody", "a@b.example\r\nBcc: x@y.example"])
    def test_a_bad_sender_is_refused(self, tmp_path: Path, sender: str) -> None:
        with pytest.raises(ValidationError):
            Settings(_env_file=None, data_dir=tmp_path, mail_from=sender)
