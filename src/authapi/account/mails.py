"""The links and mails of the account flows."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from authapi.config import Settings
from authapi.mail import tokens
from authapi.mail.messages import MailTemplate, compose, expires_in
from authapi.mail.outbox import enqueue
from authapi.mail.tokens import MailTokenKey, Purpose
from authapi.users.models import User

# Where each link points, under AUTHAPI_APP_URL (the issuer by default, where
# account/pages.py answers them). The same paths as the POSTs that use the token up.
VERIFY_EMAIL_PATH = "/email/verify"
RESET_PASSWORD_PATH = "/password/reset"  # noqa: S105 - a path, not a password
# The mail of a link to the account's own address, and where the link points.
_LINK_MAILS = {
    Purpose.EMAIL_VERIFICATION: (MailTemplate.VERIFY_EMAIL, VERIFY_EMAIL_PATH),
    Purpose.PASSWORD_RESET: (MailTemplate.PASSWORD_RESET, RESET_PASSWORD_PATH),
}


def link(settings: Settings, path: str, token: str) -> str:
    """A link from configuration alone, never from a request's Host. The token is in
    the fragment: browsers never send it, so it reaches no server log or Referer, and a
    mail scanner that opens the link uses nothing up (only the page's POST does)."""
    return f"{settings.app_url or settings.issuer}{path}#token={token}"


async def send(
    db: AsyncSession,
    settings: Settings,
    template: MailTemplate,
    recipient: str,
    now: datetime,
    **variables: str,
) -> None:
    """Queue `template` for `recipient` in `db`'s transaction."""
    await enqueue(db, compose(settings, template, recipient, now, **variables), now)


async def send_link(
    db: AsyncSession,
    key: MailTokenKey,
    settings: Settings,
    user: User,
    purpose: Purpose,
    now: datetime,
) -> None:
    """Queue the mail of a new `purpose` link to `user`'s address (a verification or a
    reset link); the user's earlier links of that purpose stop working."""
    template, path = _LINK_MAILS[purpose]
    token = await tokens.issue(db, user, purpose, key=key, settings=settings, now=now)
    await send(
        db,
        settings,
        template,
        user.email,
        now,
        link=link(settings, path, token),
        expires_in=expires_in(purpose.ttl(settings)),
    )
