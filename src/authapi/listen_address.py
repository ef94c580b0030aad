"""Whether `authapi serve` can listen where it is told to, asked before it starts."""

from __future__ import annotations

import errno
import socket


class AddressUnusable(Exception):
    """The message says which address and why, in one line."""


def check_address_free(host: str, port: int) -> None:
    """AddressUnusable if nothing could listen on `host`:`port` now, e.g. because
    another process does: said at once, instead of among uvicorn's start-up lines
    after the migrations ran."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except socket.gaierror as exc:
        raise AddressUnusable(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise AddressUnusable(
                    f"cannot listen on {host}:{port}: the address is already in use "
                    "(another server?); stop it or choose another --port"
                ) from None
            raise AddressUnusable(f"cannot listen on {host}:{port}: {exc.strerror}") from None
