"""Handing a mail over: to the SMTP relay of `AUTHAPI_SMTP_URL`, or, with none, into an
`.eml` file in `<data dir>/mail/` (the embedded default: a laptop needs no mail server).

The relay URL may hold a password: it is a SecretStr, and nothing here logs it or puts
it in an error. Certificates are always verified (against `AUTHAPI_SMTP_CA_FILE` if
set, else the system's CAs).
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import uuid
from email.utils import parseaddr
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

import aiosmtplib

from authapi.config import Settings

logger = logging.getLogger(__name__)

DEFAULT_PORTS = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}


class DeliveryError(Exception):
    """The mail was not handed over. `permanent`: the relay refused it for good (5xx),
    trying again would not help."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


class Transport(Protocol):
    async def deliver(self, mail_id: uuid.UUID, recipient: str, message: str) -> None: ...

    async def close(self) -> None:
        """The sender's pass is over: let go of any connection held for it."""


# 421: the relay is closing the connection (a limit of mails or time per connection).
CLOSING = 421


class SMTPRelay:
    """One connection carries every mail of a sender's pass, until `close()`: the
    connect, greeting, EHLO, TLS handshake and login are paid once a pass, not once a
    mail. The relay's answer to each mail still comes back before the next is sent, so
    the sender writes each result as soon as it has it."""

    def __init__(self, settings: Settings) -> None:
        if settings.smtp_url is None:
            raise ValueError("AUTHAPI_SMTP_URL is not set")
        url = urlsplit(settings.smtp_url.get_secret_value())
        self._hostname = url.hostname or ""
        self._port = url.port or DEFAULT_PORTS[url.scheme]
        self._username = unquote(url.username) if url.username else None
        self._password = unquote(url.password) if url.password else None
        self._use_tls = url.scheme == "smtps"
        self._start_tls = url.scheme == "smtp+starttls"
        self._timeout = settings.smtp_timeout
        self._sender = parseaddr(settings.mail_from)[1]
        self._tls_context = ssl.create_default_context(
            cafile=str(settings.smtp_ca_file) if settings.smtp_ca_file else None
        )
        self._client: aiosmtplib.SMTP | None = None
        self._lock = asyncio.Lock()  # one mail at a time on the one connection

    async def deliver(self, mail_id: uuid.UUID, recipient: str, message: str) -> None:
        async with self._lock:
            kept = self._client is not None and self._client.is_connected
            try:
                await self._send(recipient, message)
            except Exception as exc:
                if not (kept and _connection_gone(exc)):
                    raise _delivery_error(exc) from None
                # The relay had closed the kept connection, most often before this mail
                # began. Had it gone after taking the message, the mail arrives twice,
                # as it would with the retry a failure otherwise leads to.
                try:
                    await self._send(recipient, message)
                except Exception as again:
                    raise _delivery_error(again) from None

    async def _send(self, recipient: str, message: str) -> None:
        client = self._client
        if client is None or not client.is_connected:
            self._client = None
            client = aiosmtplib.SMTP(
                hostname=self._hostname,
                port=self._port,
                username=self._username,
                password=self._password,
                use_tls=self._use_tls,
                # smtp:// is plain on purpose (a relay on the same host): no
                # opportunistic STARTTLS that a certificate problem would break.
                start_tls=self._start_tls,
                tls_context=self._tls_context,
                timeout=self._timeout,
            )
            try:
                await client.connect()  # greeting, EHLO, STARTTLS, AUTH
            except BaseException:
                client.close()
                raise
            self._client = client
        try:
            await client.sendmail(self._sender, [parseaddr(recipient)[1]], message)
        except (aiosmtplib.SMTPRecipientsRefused, aiosmtplib.SMTPResponseException) as exc:
            # An answer about this mail (aiosmtplib has reset the envelope): the
            # connection serves the next one, unless the relay said it is closing.
            if getattr(exc, "code", None) == CLOSING:
                self._drop()
            raise
        except BaseException:
            self._drop()  # a timeout or a broken connection: in an unknown state
            raise

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def close(self) -> None:
        async with self._lock:
            client, self._client = self._client, None
            if client is None or not client.is_connected:
                return
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                client.close()


def _connection_gone(exc: Exception) -> bool:
    """A failure that says the connection is gone, nothing about the mail: on a
    connection kept from an earlier mail (relays close idle or long-lived ones), the
    mail is tried once more on a new one."""
    # aiosmtplib.SMTPServerDisconnected is a ConnectionError, as are resets and broken pipes.
    return isinstance(exc, ConnectionError) or getattr(exc, "code", None) == CLOSING


def _delivery_error(exc: Exception) -> DeliveryError:
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [refusal.code for refusal in exc.recipients]
        return DeliveryError(
            f"recipient refused ({', '.join(map(str, codes))})",
            permanent=all(code >= 500 for code in codes),
        )
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return DeliveryError(
            f"relay answered {exc.code} {exc.message}"[:300], permanent=exc.code >= 500
        )
    if isinstance(exc, aiosmtplib.SMTPException | OSError | ssl.SSLError):
        return DeliveryError(f"relay unreachable: {type(exc).__name__}: {exc}"[:300])
    raise exc


class MailFolder:
    """The embedded default: one `.eml` file per mail, 0600 in a 0700 folder, named
    after the mail's id (so a mail tried twice is one file). The log line names the file,
    never its content: the link in it is a credential."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def deliver(self, mail_id: uuid.UUID, recipient: str, message: str) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.folder.chmod(0o700)
        path = self.folder / f"{mail_id}.eml"
        # Written beside it and renamed: whoever watches the folder sees whole mails only.
        partial = path.with_suffix(".partial")
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as file:
            file.write(message)
        partial.replace(path)
        logger.info("mail written to %s (no AUTHAPI_SMTP_URL set)", path)

    async def close(self) -> None:
        """Nothing held between mails."""


def transport_for(settings: Settings) -> Transport:
    if settings.smtp_url is not None:
        return SMTPRelay(settings)
    return MailFolder(settings.data_dir / "mail")
