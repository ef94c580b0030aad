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


async def deliver_once(smtp: SMTPRelay, tmp_path: Path) -> None:
    """One mail, then the connection closed, as a sender's pass ends."""
    try:
        await smtp.deliver(uuid.uuid4(), "to@example.com", message(tmp_path))
    finally:
        await smtp.close()


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return throwaway_certificates(tmp_path_factory.mktemp("tls"))


class TestSchemes:
    async def test_plain_smtp(self, tmp_path: Path) -> None:
        server = start_server(Inbox())
        try:
            await deliver_once(relay(tmp_path, f"smtp://127.0.0.1:{server.port}"), tmp_path)
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
            await deliver_once(
                relay(
                    tmp_path,
                    f"smtp+starttls://mailer:{PASSWORD}@127.0.0.1:{server.port}",
                    smtp_ca_file=certificates.ca_file,
                ),
                tmp_path,
            )
            with pytest.raises(DeliveryError) as refused:
                await deliver_once(
                    relay(
                        tmp_path,
                        f"smtp+starttls://mailer:wrong@127.0.0.1:{server.port}",
                        smtp_ca_file=certificates.ca_file,
                    ),
                    tmp_path,
                )
        finally:
            server.stop()
        assert len(server.inbox.messages) == 1
        assert "wrong" not in refused.value.reason

    async def test_implicit_tls(self, tmp_path: Path, certificates: Certificates) -> None:
        server = start_server(Inbox(), tls=certificates.server_context, implicit_tls=True)
        try:
            await deliver_once(
                relay(
                    tmp_path, f"smtps://127.0.0.1:{server.port}", smtp_ca_file=certificates.ca_file
                ),
                tmp_path,
            )
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
                await deliver_once(relay(tmp_path, f"{scheme}://127.0.0.1:{server.port}"), tmp_path)
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
            await deliver_once(SMTPRelay(settings), tmp_path)
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


class _OneMailPerConnection(Inbox):
    """A relay that takes one mail per connection and answers the next on it with 421:
    it is closing the connection (relays limit mails per connection)."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if getattr(session, "took_one", False):
            return "421 4.7.0 one mail per connection"
        session.took_one = True
        return await super().handle_DATA(server, session, envelope)


class TestOneConnection:
    async def test_mails_share_a_connection_until_closed(self, tmp_path: Path) -> None:
        server = start_server(Inbox())
        smtp = relay(tmp_path, f"smtp://127.0.0.1:{server.port}")
        try:
            for _ in range(3):
                await smtp.deliver(uuid.uuid4(), "to@example.com", message(tmp_path))
            await smtp.close()
            await smtp.deliver(uuid.uuid4(), "to@example.com", message(tmp_path))
            await smtp.close()
        finally:
            server.stop()
        assert len(server.inbox.messages) == 4
        assert server.inbox.connections == 2

    async def test_a_connection_the_relay_closed_is_replaced_for_the_mail(
        self, tmp_path: Path
    ) -> None:
        inbox = Inbox()
        server = start_server(inbox)
        smtp = relay(tmp_path, f"smtp://127.0.0.1:{server.port}")
        try:
            await smtp.deliver(uuid.uuid4(), "to@example.com", message(tmp_path))
            server.stop()  # the relay goes away with the kept connection, and comes back
            server = start_server(inbox, port=server.port)
            await smtp.deliver(uuid.uuid4(), "to@example.com", message(tmp_path))
            await smtp.close()
        finally:
            server.stop()
        assert len(inbox.messages) == 2
        assert inbox.connections == 2

    async def test_a_421_on_a_kept_connection_is_tried_on_a_new_one(self, tmp_path: Path) -> None:
        server = start_server(_OneMailPerConnection())
        smtp = relay(tmp_path, f"smtp://127.0.0.1:{server.port}")
        try:
            for recipient in ("a@example.com", "b@example.com", "c@example.com"):
                await smtp.deliver(uuid.uuid4(), recipient, message(tmp_path))
            await smtp.close()
        finally:
            server.stop()
        assert [m["To"] for m in server.inbox.messages] == ["to@example.com"] * 3
        assert server.inbox.connections == 3

    async def test_a_421_on_a_new_connection_is_a_failure_to_retry_later(
        self, tmp_path: Path
    ) -> None:
        server = start_server(Inbox(refuse=True, refusal="421 4.3.2 shutting down"))
        smtp = relay(tmp_path, f"smtp://127.0.0.1:{server.port}")
        try:
            with pytest.raises(DeliveryError) as refused:
                await smtp.deliver(uuid.uuid4(), "to@example.com", message(tmp_path))
            await smtp.close()
        finally:
            server.stop()
        assert not refused.value.permanent
        assert "421" in refused.value.reason
        assert server.inbox.connections == 1
