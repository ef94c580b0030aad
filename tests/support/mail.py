"""A real SMTP server in the test process (aiosmtpd), and a throwaway certificate
authority for its TLS."""

from __future__ import annotations

import datetime
import ipaddress
import re
import ssl
import threading
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authapi.config import Settings
from authapi.db import transaction
from authapi.mail.messages import MailTemplate, compose
from authapi.mail.models import OutboxMail
from authapi.mail.outbox import enqueue
from tests.support.clock import FakeClock
from tests.support.servers import free_port
from tests.support.settings import make_settings
from tests.support.waiting import wait_until


@dataclass
class Inbox:
    """What the server received; `refuse` makes it answer every mail with `refusal`,
    `refuse_to` the mails to these recipients. `connections`: the clients' EHLOs, one
    per connection."""

    messages: list[EmailMessage] = field(default_factory=list)
    refuse: bool = False
    refusal: str = "451 4.3.0 try again later"
    refuse_to: set[str] = field(default_factory=set)
    connections: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_EHLO(  # noqa: N802 - aiosmtpd's hook
        self, _server: Any, session: Any, _envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        with self.lock:
            self.connections += 1
        return responses

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802
        if self.refuse or self.refuse_to & set(envelope.rcpt_tos):
            return self.refusal
        parsed = message_from_bytes(envelope.original_content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        with self.lock:
            self.messages.append(parsed)
        return "250 OK"


@dataclass
class Credentials:
    username: str
    password: str

    def __call__(
        self, _server: Any, _session: Any, _envelope: Any, _mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == self.username
            and data.password.decode() == self.password
        )
        return AuthResult(success=ok)


@dataclass
class SMTPServer:
    inbox: Inbox
    port: int
    controller: Controller

    def stop(self) -> None:
        self.controller.stop()

    def start(self) -> None:
        self.controller.start()


def start_server(
    inbox: Inbox,
    *,
    tls: ssl.SSLContext | None = None,
    implicit_tls: bool = False,
    credentials: Credentials | None = None,
    port: int | None = None,
) -> SMTPServer:
    """A server on 127.0.0.1 (a free port unless given). With `tls`: STARTTLS required, or
    implicit TLS with `implicit_tls`; with `credentials`: AUTH required."""
    kwargs: dict[str, Any] = {}
    if tls is not None and implicit_tls:
        kwargs["ssl_context"] = tls
    elif tls is not None:
        kwargs.update(tls_context=tls, require_starttls=True)
    if credentials is not None:
        kwargs.update(authenticator=credentials, auth_required=True, auth_require_tls=True)
    port = port or free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    return SMTPServer(inbox, port, controller)


@pytest.fixture
def smtp_server() -> Iterator[SMTPServer]:
    """A plain SMTP server receiving into `smtp_server.inbox`."""
    server = start_server(Inbox())
    try:
        yield server
    finally:
        server.stop()


@dataclass(frozen=True)
class Certificates:
    ca_file: Path
    server_context: ssl.SSLContext


def throwaway_certificates(folder: Path) -> Certificates:
    """A CA of its own (its certificate in `ca_file`) and a server certificate it
    signed for 127.0.0.1 and localhost."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "authapi test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = folder / "ca.pem"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file = folder / "server.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file = folder / "server.key"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return Certificates(ca_file, context)


# What the outbox tests queue: a reset mail whose link must never reach a log.
LINK = "https://app.example/reset#token=pr_SECRETSECRETSECRET"


def relay_settings(settings: Settings, port: int, **overrides: object) -> Settings:
    assert settings.database_url is not None
    return make_settings(
        settings.database_url,
        settings.data_dir,
        smtp_url=f"smtp://127.0.0.1:{port}",
        smtp_timeout=5.0,
        **overrides,
    )


def reset_mail(settings: Settings, clock: FakeClock, recipient: str) -> EmailMessage:
    return compose(
        settings,
        MailTemplate.PASSWORD_RESET,
        recipient,
        clock.now(),
        link=LINK,
        expires_in="30 minutes",
    )


async def queue(
    maker: async_sessionmaker[AsyncSession], settings: Settings, clock: FakeClock, count: int = 1
) -> list[uuid.UUID]:
    async with transaction(maker) as db:
        mails = [
            await enqueue(db, reset_mail(settings, clock, f"user{n}@example.com"), clock.now())
            for n in range(count)
        ]
    return [mail.id for mail in mails]


async def rows(maker: async_sessionmaker[AsyncSession]) -> list[OutboxMail]:
    async with transaction(maker) as db:
        return list((await db.scalars(select(OutboxMail))).all())


@dataclass
class Mailbox:
    """The mail an app under test sent through `server` (its settings point there)."""

    server: SMTPServer

    async def receive(self, to: str, within: float = 10.0) -> EmailMessage:
        """The next mail to `to` (taken out of the inbox), once the app's sender has
        sent it; fails the test past `within` seconds."""
        inbox = self.server.inbox
        await wait_until(lambda: any(str(m["To"]) == to for m in inbox.messages), within)
        with inbox.lock:
            message = next(m for m in inbox.messages if str(m["To"]) == to)
            inbox.messages.remove(message)
        return message

    def to(self, recipient: str) -> list[EmailMessage]:
        """What is in the inbox for `recipient` now (left there)."""
        with self.server.inbox.lock:
            return [m for m in self.server.inbox.messages if str(m["To"]) == recipient]

    async def token(self, to: str) -> str:
        """The token in the link of the next mail to `to`."""
        return token_of(await self.receive(to))


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    # Typed on EmailMessage's parts by some typeshed versions only.
    content = part.get_content()  # type: ignore[attr-defined, unused-ignore]
    assert isinstance(content, str)
    return content


def link_of(message: EmailMessage) -> str:
    links: list[str] = re.findall(r"https?://\S+", text_of(message))
    assert len(links) == 1, links
    return str(links[0])


def token_of(message: EmailMessage) -> str:
    fragment = urllib.parse.urlsplit(link_of(message)).fragment
    return urllib.parse.parse_qs(fragment)["token"][0]


def mailbox_overrides(server: SMTPServer) -> dict[str, object]:
    """The settings of an app that sends its mail to `server`."""
    return {"smtp_url": f"smtp://127.0.0.1:{server.port}", "smtp_timeout": 5.0}


@pytest.fixture
def mailbox(smtp_server: SMTPServer) -> Mailbox:
    """For a test module whose `settings_overrides` include `mailbox_overrides(smtp_server)`."""
    return Mailbox(smtp_server)
