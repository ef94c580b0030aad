"""The `authapi` command: migrate, serve, create-user, prune, keys, issuer, mail."""

from __future__ import annotations

import argparse
import asyncio
import gc
import getpass
import logging
import os
import sys
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy.engine import make_url

from authapi import logs, metrics_export, migrate, prune
from authapi.clock import Clock
from authapi.config import Settings
from authapi.data_dir import DataDirError, secure_data_dir
from authapi.db import create_engine
from authapi.errors import DATABASE_UNAVAILABLE, EmailTaken
from authapi.issuer import commands as issuer_commands
from authapi.issuer.addresses import issuer_for_listen_address
from authapi.listen_address import AddressUnusable, check_address_free
from authapi.mail import commands as mail_commands
from authapi.mfa import commands as mfa_commands
from authapi.passkeys import relying_party
from authapi.passkeys.relying_party import RelyingPartyError
from authapi.sessions.rotation import load_refresh_token_key
from authapi.signing import commands as key_commands
from authapi.signing.keys import KeyConfigError
from authapi.signing.rollover import KeyChangeRefused, KeyChangeTooEarly
from authapi.users import commands as user_commands
from authapi.users.schemas import UserCreate

logger = logging.getLogger("authapi")


class CommandError(Exception):
    """Ends the command with this message and exit status `status` (1 by default)."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def describe_invalid_settings(exc: ValidationError) -> str:
    """One line: each problem after the variable it is about, never its value (it may
    be a password or a secret)."""
    problems = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        name = f"AUTHAPI_{str(error['loc'][0]).upper()}" if error["loc"] else "settings"
        problems.append(f"{name}: {error['msg'].removeprefix('Value error, ')}")
    return "invalid settings: " + "; ".join(problems)


def _settings() -> Settings:
    try:
        settings = Settings()
    except ValidationError as exc:
        raise CommandError(describe_invalid_settings(exc)) from None
    database = make_url(settings.resolved_database_url).database
    if settings.database_url and settings.is_sqlite and database:
        # Said plainly here: aiosqlite's own failure to open the file races the shutdown
        # of the event loop and can end in a traceback from its thread.
        folder = Path(database).parent
        if not folder.is_dir():
            raise CommandError(f"cannot use the database: the folder {folder} does not exist")
    return settings


def _secure_data_dir(settings: Settings) -> None:
    try:
        secure_data_dir(settings)
    except DataDirError as exc:
        raise CommandError(str(exc)) from None


def cmd_migrate(_args: argparse.Namespace) -> None:
    settings = _settings()
    if settings.is_sqlite:
        _secure_data_dir(settings)  # the database file is created 0600
    migrate.upgrade(settings.resolved_database_url)
    print("database is at the latest schema")  # noqa: T201


async def _schema_is_current(settings: Settings) -> bool:
    engine = create_engine(settings)  # the app's engine: also right behind a pooler
    try:
        async with engine.connect() as connection:
            current = await connection.run_sync(migrate.current_revision)
    finally:
        await engine.dispose()
    return current == migrate.head_revision()


def _serve_settings(args: argparse.Namespace) -> Settings:
    settings = _settings()
    if "issuer" in settings.model_fields_set:
        return settings
    # Unset, the issuer is the URL served here, so that tokens, the metadata and the
    # browser-mode origin check name the address clients reach. The workers read it
    # from the environment, like any setting.
    os.environ["AUTHAPI_ISSUER"] = issuer_for_listen_address(args.host, args.port)
    return _settings()


def cmd_serve(args: argparse.Namespace) -> None:
    settings = _serve_settings(args)
    try:
        check_address_free(args.host, args.port)
    except AddressUnusable as exc:
        raise CommandError(str(exc)) from None
    try:
        relying_party.from_settings(settings)  # passkey settings that contradict each other
    except RelyingPartyError as exc:
        raise CommandError(str(exc)) from None
    _secure_data_dir(settings)
    # Once, before the workers start: they must all find the same generated secrets.
    load_refresh_token_key(settings)
    if settings.is_sqlite:
        migrate.upgrade(settings.resolved_database_url)  # the embedded default just works
    elif not asyncio.run(_schema_is_current(settings)):
        raise CommandError("the database schema is not current: run `authapi migrate` first")
    # Seeds an empty signing-key table, and stops here with a message (not in every
    # worker with a traceback) on keys that cannot be used, e.g. a wrong key-encryption key.
    try:
        asyncio.run(key_commands.prepare(settings))
    except KeyConfigError as exc:
        raise CommandError(str(exc)) from None
    # Several workers: one folder where each writes its metrics, so /metrics adds them up.
    try:
        with metrics_export.multiprocess_dir(args.workers):
            _run_uvicorn(args, settings)
    finally:
        # The interpreter's exit would then collect garbage over every object this
        # process holds (the app, SQLAlchemy, Alembic: some 120,000), which took 1.2 s
        # to 1.5 s after a SIGTERM on two cores. Nothing left is garbage that matters:
        # exempt it all from those collections.
        gc.freeze()


def cmd_keys(args: argparse.Namespace) -> None:
    settings = _settings()
    _secure_data_dir(settings)  # a development key-encryption key may be written there
    if not asyncio.run(_schema_is_current(settings)):
        raise CommandError("the database schema is not current: run `authapi migrate` first")
    try:
        output = asyncio.run(key_commands.run(args, settings, Clock().now()))
    except KeyChangeTooEarly as exc:
        raise CommandError(str(exc), status=3) from None
    except (KeyChangeRefused, KeyConfigError) as exc:
        raise CommandError(str(exc)) from None
    print(output)  # noqa: T201


def cmd_issuer(args: argparse.Namespace) -> None:
    settings = _settings()
    if not asyncio.run(_schema_is_current(settings)):
        raise CommandError("the database schema is not current: run `authapi migrate` first")
    print(asyncio.run(issuer_commands.run(args, settings)))  # noqa: T201


def _run_uvicorn(args: argparse.Namespace, settings: Settings) -> None:
    import uvicorn

    uvicorn.run(
        "authapi.app:create_app_from_environment",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        # Off unless asked for: the right number depends on the deployment, and one too
        # low refuses healthy traffic.
        limit_concurrency=args.limit_concurrency,
        # Every worker configures its logging from this (JSON or text, on stderr).
        log_config=logs.config(settings.log_format, settings.log_level),
        # The app writes the access log itself (middleware.RequestContext): with the
        # request id, the route and the duration, and never the query string, which
        # uvicorn's own access line would print.
        access_log=False,
        # uvicorn[standard]'s fast event loop and HTTP parser (paced: connection_pacing.py),
        # named so that a missing one fails at start instead of falling back to asyncio/h11.
        loop="uvloop",
        http="authapi.connection_pacing:PacedHttpToolsProtocol",
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=10,
    )


def _read_password(email: str) -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass(f"Password for {email}: ")
    if getpass.getpass("Repeat it: ") != first:
        raise CommandError("the passwords differ")
    return first


def cmd_create_user(args: argparse.Namespace) -> None:
    settings = _settings()
    password = _read_password(args.email)
    try:
        body = UserCreate(email=args.email, password=password)
    except ValidationError as exc:
        problems = "; ".join(f"{err['loc'][0]}: {err['msg']}" for err in exc.errors())
        raise CommandError(problems) from None
    try:
        user_id = asyncio.run(user_commands.create_user(settings, body, args.role))
    except EmailTaken:
        raise CommandError(f"a user with email {body.email} already exists") from None
    print(f"created {args.role} {body.email} ({user_id})")  # noqa: T201


def cmd_prune(args: argparse.Namespace) -> None:
    settings = _settings()
    pruned = asyncio.run(prune.prune(settings, args.batch_size))
    print(f"deleted {pruned.sessions} ended sessions")  # noqa: T201
    print(  # noqa: T201
        f"deleted {pruned.audit_events} audit events older than "
        f"{settings.audit_retention_days} days"
    )
    print(f"deleted {pruned.mails} sent or failed mails")  # noqa: T201
    print(f"deleted {pruned.mail_tokens} expired mail tokens")  # noqa: T201
    print(f"deleted {pruned.mfa_tokens} expired mfa tokens")  # noqa: T201
    print(f"deleted {pruned.passkey_challenges} expired passkey challenges")  # noqa: T201


def cmd_mail(args: argparse.Namespace) -> None:
    settings = _settings()
    _secure_data_dir(settings)  # the embedded default writes mail there
    if not asyncio.run(_schema_is_current(settings)):
        raise CommandError("the database schema is not current: run `authapi migrate` first")
    sent = mail_commands.run(settings, args)
    print(f"sent {sent} mails")  # noqa: T201


def cmd_mfa_reset(args: argparse.Namespace) -> None:
    settings = _settings()
    if not asyncio.run(_schema_is_current(settings)):
        raise CommandError("the database schema is not current: run `authapi migrate` first")
    removed = asyncio.run(mfa_commands.reset(settings, args.email))
    if removed is None:
        raise CommandError(f"no user with email {args.email}")
    print(  # noqa: T201
        f"removed {removed.totp} TOTP authenticator(s), {removed.recovery_codes} recovery "
        f"codes and {removed.passkeys} passkeys of {args.email}; "
        f"ended {removed.sessions} sessions"
    )


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError("must be from 1 to 65535")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="authapi",
        description=__doc__,
        epilog=(
            "Settings come from AUTHAPI_* environment variables (and a .env file in the "
            "working directory): every one is in docs/configuration.md."
        ),
    )
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("migrate", help="bring the database to the latest schema").set_defaults(
        func=cmd_migrate
    )

    serve = commands.add_parser(
        "serve",
        help="run the API",
        description=(
            "Run the API (migrating the embedded SQLite database first). Without "
            "AUTHAPI_ISSUER the issuer is http://HOST:PORT, from the options below."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on; 0.0.0.0 or :: for every interface",
    )
    serve.add_argument("--port", type=_port, default=8000, help="TCP port to listen on")
    serve.add_argument(
        "--workers", type=_positive_int, default=1, help="worker processes (each one event loop)"
    )
    serve.add_argument(
        "--limit-concurrency",
        type=_positive_int,
        metavar="N",
        help=(
            "in each worker, answer a request with 503 at once, before the app sees it, "
            "when N connections (its own included) are open or N requests are in "
            "progress (uvicorn's limit_concurrency); unset, no limit"
        ),
    )
    serve.set_defaults(func=cmd_serve)

    user_commands.add_parser(commands, cmd_create_user)

    prune = commands.add_parser(
        "prune", help="delete ended sessions, old audit events, sent mail, expired mail tokens"
    )
    prune.add_argument("--batch-size", type=_positive_int, default=1000)
    prune.set_defaults(func=cmd_prune)

    key_commands.add_parser(commands, cmd_keys)
    issuer_commands.add_parser(commands, cmd_issuer)
    mail_commands.add_parser(commands, cmd_mail)
    mfa_commands.add_parser(commands, cmd_mfa_reset)
    return parser


def _configure_logging() -> None:
    try:
        settings = Settings()
    except ValidationError:
        logs.configure()  # the defaults; the command then says what is wrong
        return
    logs.configure(settings.log_format, settings.log_level)


def main(argv: list[str] | None = None) -> int:
    _configure_logging()
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except CommandError as exc:
        print(f"authapi: {exc}", file=sys.stderr)  # noqa: T201
        return exc.status
    except DATABASE_UNAVAILABLE as exc:
        # Driver messages name the host and the cause, never the password.
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"authapi: cannot use the database: {reason}", file=sys.stderr)  # noqa: T201
        return 1
    return 0
