"""`authapi mail send`: send what is due, then exit (or, with `--watch`, keep sending
until interrupted) — for operators, and for deployments whose senders are not the API
processes. Safe beside running instances: each mail goes to one sender (mail/sender.py)."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable

from authapi.clock import Clock
from authapi.config import Settings
from authapi.db import create_engine, create_sessionmaker
from authapi.mail.delivery import transport_for
from authapi.mail.sender import MailSender


async def send(settings: Settings, *, watch: bool) -> int:
    """The number of mails handed over (with `watch`, only when cancelled)."""
    engine = create_engine(settings)
    try:
        sender = MailSender(settings, Clock(), create_sessionmaker(engine), transport_for(settings))
        if watch:
            await sender.run_forever()
        return await sender.run_once()
    finally:
        await engine.dispose()


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    func: Callable[[argparse.Namespace], None],
) -> None:
    mail = commands.add_parser("mail", help="the mail outbox: send what is due")
    actions = mail.add_subparsers(dest="mail_command", required=True)
    send_parser = actions.add_parser("send", help="send the mails that are due, then exit")
    send_parser.add_argument(
        "--watch",
        action="store_true",
        help="keep sending as mail comes due (every AUTHAPI_MAIL_POLL_INTERVAL seconds)",
    )
    mail.set_defaults(func=func)


def run(settings: Settings, args: argparse.Namespace) -> int:
    return asyncio.run(send(settings, watch=args.watch))
