"""Handing a mail over: to the SMTP relay of `AUTHAPI_SMTP_URL`, or, with none, into an
`.eml` file in `<data dir>/mail/` (the embedded default: a laptop needs no mail server).

The relay URL may hold a password: it is a SecretStr, and nothing here logs it or puts
it in an error. Certificates are always verified (against `AUTHAPI_SMTP_CA_FILE` if
set, else the system's CAs).
"""

from __future__ import annotations

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


class SMTPRelay:
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

    async def deliver(self, mail_id: uuid.UUID, recipient: str, message: str) -> None:
        try:
            await aiosmtplib.send(
                message,
                sender=self._sender,
                recipients=[parseaddr(recipient)[1]],
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
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [refusal.code for refusal in exc.recipients]
            raise DeliveryError(
                f"recipient refused ({', '.join(map(str, codes))})",
                permanent=all(code >= 500 for code in codes),
            ) from None
        except aiosmtplib.SMTPResponseException as exc:
            raise DeliveryError(
                f"relay answered {exc.code} {exc.message}"[:300], permanent=exc.code >= 500
            ) from None
        except (aiosmtplib.SMTPException, OSError, ssl.SSLError) as exc:
            raise DeliveryError(f"relay unreachable: {type(exc).__name__}: {exc}"[:300]) from None


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


def transport_for(settings: Settings) -> Transport:
    if settings.smtp_url is not None:
        return SMTPRelay(settings)
    return MailFolder(settings.data_dir / "mail")
