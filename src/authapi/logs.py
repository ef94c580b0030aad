"""Logging: one JSON object per line on stderr (or plain text), for authapi's loggers
and uvicorn's, each line of a request carrying its request id.

The request id lives in a context variable that the outermost middleware sets
(middleware.RequestContext); a log record factory copies it onto every record made
while it is set, so formatters, and pytest's caplog, see it as `record.request_id`.

Only authapi's own loggers, uvicorn's and alembic's follow `AUTHAPI_LOG_LEVEL`; every
other library logs at WARNING and above whatever the level. SQLAlchemy's engine logger,
in particular, would log every statement's parameters (password hashes among them) at
INFO: it never gets there through this setting.
"""

from __future__ import annotations

import json
import logging
import logging.config
import re
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

LogFormat = Literal["json", "text"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]

# The loggers AUTHAPI_LOG_LEVEL applies to; everything else is held at WARNING.
APP_LOGGERS = ("authapi", "uvicorn", "alembic")
ACCESS_LOGGER = "authapi.access"

REQUEST_ID_HEADER = "X-Request-ID"
# An incoming id is kept when it is this sane: short, and only characters that need no
# escaping anywhere it is shown (logs, headers, log search queries).
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:+/=-]{1,128}")

request_id: ContextVar[str | None] = ContextVar("authapi_request_id", default=None)


def accept_request_id(incoming: str | None) -> str:
    """The incoming `X-Request-ID` if it is sane, else a new random one."""
    if incoming is not None and _SANE_REQUEST_ID.fullmatch(incoming):
        return incoming
    return uuid.uuid4().hex


def install_record_factory() -> None:
    """Stamp every log record with the current request id (None outside a request).
    Idempotent: the app factory and the command line both call it."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "_authapi_request_id", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        record.request_id = request_id.get()
        return record

    factory._authapi_request_id = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


# The attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "request_id",
    "request",  # set by TextFormatter
    "color_message",
    "taskName",
}


# The date and time to the second of the last record formatted: consecutive lines share
# it, and formatting it anew for each one was a quarter of the cost of an access line.
_last_second: tuple[int, str] = (0, "1970-01-01T00:00:00")


def _timestamp(record: logging.LogRecord) -> str:
    """RFC 3339 in UTC, to the millisecond (2026-12-04T18:56:58.123Z)."""
    global _last_second
    second = int(record.created)
    cached = _last_second  # one read: another thread may replace it meanwhile
    if cached[0] != second:
        cached = (second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
        _last_second = cached
    millisecond = int((record.created - second) * 1000)
    return f"{cached[1]}.{millisecond:03d}Z"


# One encoder for every line (json.dumps with options builds one per call).
_ENCODER = json.JSONEncoder(default=str, ensure_ascii=False)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: timestamp (RFC 3339, UTC), level, logger, message,
    request_id, the record's `extra=` fields, and the traceback as `exception`."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or request_id.get(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRIBUTES and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return _ENCODER.encode(entry)


class TextFormatter(logging.Formatter):
    """Readable lines for a terminal: time, level, logger, [request id], message."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(request)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        current = getattr(record, "request_id", None) or request_id.get()
        record.request = f" [{current}]" if current else ""
        return super().format(record)


def config(log_format: LogFormat = "json", level: LogLevel = "INFO") -> dict[str, Any]:
    """A `logging.config.dictConfig` configuration: also uvicorn's `log_config`, so that
    every worker process it starts configures itself the same way."""
    formatter = JsonFormatter if log_format == "json" else TextFormatter
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"main": {"()": f"{formatter.__module__}.{formatter.__qualname__}"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "main",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": "WARNING", "handlers": ["stderr"]},
        # No handlers of their own: they propagate to the root's one handler.
        "loggers": {
            **{name: {"level": level, "handlers": [], "propagate": True} for name in APP_LOGGERS},
            "uvicorn.error": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.access": {"level": level, "handlers": [], "propagate": True},
        },
    }


def configure(log_format: LogFormat = "json", level: LogLevel = "INFO") -> None:
    install_record_factory()
    logging.config.dictConfig(config(log_format, level))
