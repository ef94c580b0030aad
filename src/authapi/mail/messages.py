"""Mails as `EmailMessage`s, rendered from the templates.

Each mail is two files in `templates/`: `NAME.txt` (the subject on its first line, a
blank line, then the plain-text body) and `NAME.html` (the HTML body). They are
`string.Template`s (`${link}`); in the HTML part every value is escaped. A folder named
by `AUTHAPI_MAIL_TEMPLATES_DIR` replaces them file by file: a team brands what it
wants and keeps the rest. A template that names a variable the mail does not have
fails loudly (`KeyError`) rather than send a mail with a hole in it.
"""

from __future__ import annotations

import enum
import html
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from importlib import resources
from pathlib import Path
from string import Template

from authapi.config import Settings

MAX_LINE = 998  # characters, RFC 5322 §2.1.1


class MailTemplate(enum.StrEnum):
    """The mails the account flows send, and the variables each one needs beyond
    `app_name` and `email` (the recipient's address), which every mail has."""

    VERIFY_EMAIL = "verify_email"  # link, expires_in
    CONFIRM_EMAIL_CHANGE = "confirm_email_change"  # link, expires_in, new_email
    EMAIL_CHANGED = "email_changed"  # new_email: the notice to the old address
    PASSWORD_RESET = "password_reset"  # noqa: S105 - a template's name; link, expires_in
    PASSWORD_CHANGED = "password_changed"  # noqa: S105 - a template's name
    ACCOUNT_DELETED = "account_deleted"
    RECOVERY_CODE_USED = "recovery_code_used"  # remaining: how many codes are left
    SECOND_FACTORS_OFF = "second_factors_off"  # by_whom: "you" or "an administrator"


def _read(settings: Settings, name: str) -> str:
    if settings.mail_templates_dir is not None:
        replacement = Path(settings.mail_templates_dir) / name
        if replacement.is_file():
            return replacement.read_text(encoding="utf-8")
    return resources.files("authapi.mail").joinpath("templates", name).read_text(encoding="utf-8")


def expires_in(seconds: int) -> str:
    """A link's lifetime as a reader says it: "30 minutes", "24 hours"."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0 or unit == "minute":
            count = max(1, round(seconds / size))
            return f"{count} {unit}{'' if count == 1 else 's'}"
    raise AssertionError("unreachable")


def render(
    settings: Settings, template: MailTemplate, recipient: str, **variables: str
) -> tuple[str, str, str]:
    """(subject, text, html) of `template` for `recipient`."""
    values = {"app_name": settings.mail_app_name, "email": recipient, **variables}
    text = Template(_read(settings, f"{template.value}.txt")).substitute(values)
    subject, _, body = text.partition("\n")
    html_values = {name: html.escape(value) for name, value in values.items()}
    html_body = Template(_read(settings, f"{template.value}.html")).substitute(html_values)
    return subject.strip(), body.lstrip("\n"), html_body


def compose(
    settings: Settings, template: MailTemplate, recipient: str, now: datetime, **variables: str
) -> EmailMessage:
    """The mail, ready for the outbox: From, To, Subject, Date, Message-ID, and a
    plain-text part with an HTML alternative."""
    subject, text, html_body = render(settings, template, recipient, **variables)
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = recipient
    message["Subject"] = subject
    message["Date"] = format_datetime(now)
    domain = parseaddr(settings.mail_from)[1].rpartition("@")[2]
    message["Message-ID"] = make_msgid(domain=domain)
    # 7bit when it can be (ASCII, lines within RFC 5322's 998): the link then stays whole
    # in the raw message, where quoted-printable would cut it and escape its "=" (a
    # laptop's .eml files are read with grep, and some mail filters read raw text too).
    if text.isascii() and all(len(line) <= MAX_LINE for line in text.splitlines()):
        message.set_content(text, cte="7bit")
    else:
        message.set_content(text)
    message.add_alternative(html_body, subtype="html")
    return message
